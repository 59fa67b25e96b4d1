"""Surprise computation, in one package; data flows one way, down this list:

- source.py: which metrics to watch, and whether the source's documents have the configured fields
- window.py: the per-window form: one window's surprise of every metric as its plan says, top series, combined score
- scan.py: the one-scan form: a backfill's windows from one scan of each metric's series partitions
- series.py: one metric's window surprise asked in parts of its series (listing the series, asking each part)
- plan.py: the bucket Budget (data, passed in), the RequestPlan of a run's windows, asking in parts
- summary.py: a metric's WindowSurprise from every series' window surprise, as percentiles_bucket computes it

The requests themselves are templates in queries/, rendered and read by atlas/queries.py.
"""

from atlas.surprise.plan import DEFAULT_BUDGET, Budget, RequestPlan, plan_requests, window_buckets_per_series
from atlas.surprise.scan import WindowComputer, scan_surprise, scanning_computer
from atlas.surprise.source import check_source_fields, resolve_metrics
from atlas.surprise.summary import exact_percentile
from atlas.surprise.window import compute_combined_surprise, compute_top_series, compute_window_surprise

__all__ = [
    "DEFAULT_BUDGET",
    "Budget",
    "RequestPlan",
    "WindowComputer",
    "check_source_fields",
    "compute_combined_surprise",
    "compute_top_series",
    "compute_window_surprise",
    "exact_percentile",
    "plan_requests",
    "resolve_metrics",
    "scan_surprise",
    "scanning_computer",
    "window_buckets_per_series",
]
