"""The influencers of an anomaly event: which series, and which values of each series field, made it, with shares."""

from __future__ import annotations

from collections.abc import Sequence

from atlas.queries import SERIES_KEY_SEPARATOR
from atlas.records import Anomaly, Influencer

SERIES = "series"  # the `field` of an influencer that is a whole series key


def event_influencers(anomalies: Sequence[Anomaly], series_fields: Sequence[str]) -> tuple[Influencer, ...]:
    """The series and series-field values behind the points of one event, each with its share (0 to 1).

    A series' share is the sum of its window surprise S(q, T) over the event's points where it is among the top
    series, divided by the sum of every top series' S(q, T) over those points. A field value's share is the sum of
    the shares of the series whose key holds that value (keys of several fields are split on `|`, in the order of
    `series_fields`; a key that does not split into one part per field counts for no field). With one series
    field the series are the values, so only the series are listed. When every top surprise is 0, the series
    share equally. Order: series by share descending (then key), then each field's values likewise.
    """
    totals: dict[str, float] = {}
    for anomaly in anomalies:
        for top in anomaly.top_series:
            totals[top.series] = totals.get(top.series, 0.0) + max(top.surprise, 0.0)
    if not totals:
        return ()
    whole = sum(totals.values())
    shares = {k: (v / whole if whole > 0 else 1.0 / len(totals)) for k, v in totals.items()}
    found = _ranked(SERIES, shares)
    if len(series_fields) > 1:
        for position, field in enumerate(series_fields):
            by_value: dict[str, float] = {}
            for key, share in shares.items():
                parts = key.split(SERIES_KEY_SEPARATOR)
                if len(parts) == len(series_fields):
                    by_value[parts[position]] = by_value.get(parts[position], 0.0) + share
            found.extend(_ranked(field, by_value))
    return tuple(found)


def field_shares(influencers: Sequence[Influencer], field: str, series_fields: Sequence[str]) -> dict[str, float]:
    """The shares of `field`'s values among `influencers` (with one series field, the series are its values)."""
    wanted = SERIES if list(series_fields) == [field] else field
    return {i.value: i.share for i in influencers if i.field == wanted}


def format_influencers(influencers: Sequence[Influencer], limit: int = 3) -> str:
    """`query_3 40%, query_7 22%; node=node_0 100%`: the first `limit` series, then each field's first values;
    shares under 0.5% (written 0%) are left out."""
    parts: list[str] = []
    shown = [i for i in influencers if round(100 * i.share) > 0]
    for field in dict.fromkeys(i.field for i in shown):
        chosen = [i for i in shown if i.field == field][:limit]
        prefix = "" if field == SERIES else f"{field}="
        parts.append(", ".join(f"{prefix}{i.value} {round(100 * i.share)}%" for i in chosen))
    return "; ".join(parts)


def _ranked(field: str, shares: dict[str, float]) -> list[Influencer]:
    return [Influencer(field, k, v) for k, v in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))]
