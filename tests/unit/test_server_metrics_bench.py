"""bench/server_metrics.py's parts on tiny synthetic machines (never the data set): which machines it may open, the
atlas CSV it writes, the labels and steps it scores, the scorer, the atlas answers it reads and the peers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

from atlas.clock import parse_instant
from atlas.ingest.csv_file import check_csv_files
from atlas.settings import load_settings

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import server_metrics  # noqa: E402
import smd  # noqa: E402
import smd_ml  # noqa: E402
import smd_peers  # noqa: E402

FIVE = timedelta(minutes=5)


def tiny(train: int = 10, test: int = 10, labels: list[int] | None = None, interpretation: tuple = ()) -> smd.Machine:
    """Column c01 counts the rows, c02 is 100 + row, the rest 0."""
    values = np.zeros((train + test, 38))
    values[:, 0] = np.arange(train + test)
    values[:, 1] = 100 + np.arange(train + test)
    marks = np.array(labels if labels is not None else [0] * test, dtype=np.int8)
    return smd.Machine("machine-1-2", values[:train], values[train:], marks, interpretation)


@pytest.mark.parametrize("name", smd.HELD_OUT)
def test_held_out_machines_are_refused_by_name(name: str) -> None:
    with pytest.raises(smd.SmdError, match=f"{name} is held out"):
        smd.check_machines(["machine-1-2", name])
    with pytest.raises(smd.SmdError, match="held out"):
        smd.machine_paths(Path("/nonexistent"), name)


@pytest.mark.parametrize("name", ["machine-1-9", "machine-4-1", "../train/machine-1-2", "machine-1-2.txt"])
def test_names_outside_the_development_set_are_refused(name: str) -> None:
    with pytest.raises(smd.SmdError, match="not one of the 24 machines"):
        smd.check_machines([name])


def test_the_development_set_is_24_machines_in_two_groups() -> None:
    assert len(smd.MACHINES) == 24 and not set(smd.MACHINES) & set(smd.HELD_OUT)
    assert smd.check_machines(["machine-3-10", "machine-1-2"]) == ["machine-3-10", "machine-1-2"]
    assert all(n.startswith(("machine-1-", "machine-2-")) for n in smd.DEVELOPMENT)
    assert all(n.startswith("machine-3-") for n in smd.UNSEEN)


def test_the_bench_refuses_a_held_out_machine_before_reading_anything(tmp_path: Path) -> None:
    for part in ("train", "test", "test_label", "interpretation_label"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "machine-2-1.txt").write_text("not data\n")
    done = subprocess.run(
        [sys.executable, str(BENCH / "server_metrics.py"), "--data", str(tmp_path), "--config", "/dev/null",
         "--work", str(tmp_path / "work"), "--machines", "machine-1-2", "machine-2-1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "Error: machine-2-1 is held out for an independent check of atlas: it is never opened or scored"
    )
    assert not (tmp_path / "work").exists()


def test_a_missing_machine_is_reported_and_the_others_go_on(tmp_path: Path) -> None:
    for part in ("train", "test", "test_label"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "machine-1-2.txt").write_text("0\n")
    (tmp_path / "interpretation_label").mkdir()
    assert smd.missing_parts(tmp_path, "machine-1-2") == []
    assert smd.missing_parts(tmp_path, "machine-1-3") == ["train", "test", "test_label"]


def test_read_machine_and_its_interpretation_labels(tmp_path: Path) -> None:
    for part in ("train", "test", "test_label", "interpretation_label"):
        (tmp_path / part).mkdir()
    row = ",".join(["0.5"] * 38)
    (tmp_path / "train" / "machine-3-2.txt").write_text(f"{row}\n{row}\n")
    (tmp_path / "test" / "machine-3-2.txt").write_text(f"{row}\n{row}\n{row}\n")
    (tmp_path / "test_label" / "machine-3-2.txt").write_text("0\n1\n1\n")
    (tmp_path / "interpretation_label" / "machine-3-2.txt").write_text("1-2:1,38\n")
    machine = smd.read_machine(tmp_path, "machine-3-2")
    assert machine.train.shape == (2, 38) and machine.test.shape == (3, 38)
    assert machine.labels.tolist() == [0, 1, 1]
    assert machine.interpretation == ((1, 2, frozenset({"c01", "c38"})),)
    (tmp_path / "test_label" / "machine-3-2.txt").write_text("0\n1\n")
    with pytest.raises(smd.SmdError, match="2 labels for 3 test rows"):
        smd.read_machine(tmp_path, "machine-3-2")


@pytest.mark.parametrize(
    ("layout", "metric", "series"), [("host", "machine-1-2", "c02"), ("column", "c02", "machine-1-2")]
)
def test_csv_rows_are_train_then_test_one_minute_apart(tmp_path: Path, layout: str, metric: str, series: str) -> None:
    path = tmp_path / "m.csv"
    smd.write_csv(tiny(train=2, test=1), layout, path)
    with check_csv_files([path]) as checked:  # atlas's own CSV reader accepts it
        samples = list(checked.samples())
    assert len(samples) == 3 * 38
    row2 = [s for s in samples if (s.metric, s.series) == (metric, series)]
    assert [(s.timestamp, s.value) for s in row2] == [
        (parse_instant("2024-01-01T00:00:00Z"), 100.0),
        (parse_instant("2024-01-01T00:01:00Z"), 101.0),
        (parse_instant("2024-01-01T00:02:00Z"), 102.0),  # the test row follows the train rows
    ]


def test_labelled_runs_become_intervals_of_the_test_rows() -> None:
    machine = tiny(train=10, test=10, labels=[0, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    assert smd.label_runs(machine.labels) == [(1, 2), (8, 9)]
    truth = smd.truth_intervals(machine)
    assert [(i.start, i.end, i.metric) for i in truth] == [
        (parse_instant("2024-01-01T00:11:00Z"), parse_instant("2024-01-01T00:13:00Z"), "machine-1-2"),
        (parse_instant("2024-01-01T00:18:00Z"), parse_instant("2024-01-01T00:20:00Z"), "machine-1-2"),
    ]


def test_scored_steps_are_the_window_ends_whose_step_overlaps_the_test_rows() -> None:
    machine = tiny(train=12, test=9)  # test rows are minutes 12 to 20
    ends = smd.scored_steps(machine, FIVE)
    assert ends == [parse_instant(f"2024-01-01T00:{m:02d}:00Z") for m in (15, 20, 25)]
    assert smd.step_of_row(np.array([0, 4, 5, 12, 20]), FIVE).tolist() == [1, 1, 2, 3, 5]


def test_score_group_uses_atlas_evaluate_rules_and_hit_rate() -> None:
    # 40 test minutes (8 steps); labelled rows 10-19 (steps ending 00:55 and 01:00 after 40 train minutes).
    labels = [0] * 10 + [1] * 10 + [0] * 20
    machine = tiny(train=40, test=40, labels=labels, interpretation=((10, 19, frozenset({"c01", "c02"})),))
    at = lambda m: parse_instant("2024-01-01T00:00:00Z") + timedelta(minutes=m)  # noqa: E731
    found = smd.Detection(
        frozenset({at(55), at(60), at(65), at(75)}),
        {at(55): {"c01": 2.0, "c05": 1.0, "c07": 0.5}, at(60): {"c02": 0.4}},
    )
    row = smd.score_group([machine], {"machine-1-2": found}, FIVE)
    # run 55-65 overlaps 2 labelled steps: credit min(3, 3) = 3; run 75 is a false event.
    assert (row["tp"], row["fp"], row["fn"]) == (3, 1, 0)
    assert (row["found"], row["incidents"], row["false_events"]) == (1, 1, 1)
    assert row["false_per_day"] == pytest.approx(1 / (40 / 1440))
    assert row["hitrate150"] == pytest.approx(0.5)  # top 3 of c01 2.0, c05 1.0, c07 0.5, c02 0.4: c01 only
    unnamed = smd.score_group([machine], {"machine-1-2": smd.Detection(found.ends, {})}, FIVE)
    assert unnamed["hitrate150"] is None and unnamed["f1"] == row["f1"]


def test_atlas_events_become_window_ends_and_column_weights() -> None:
    machine = tiny()
    rows = [
        {"metric": "machine-1-2", "start": "2024-01-01T00:10:00Z", "end": "2024-01-01T00:20:00Z",
         "influencers": [{"field": "series", "value": "c03", "share": 0.75},
                         {"field": "series", "value": "c04", "share": 0.25}]},
        {"metric": "machine-9-9", "start": "2024-01-01T00:10:00Z", "end": "2024-01-01T00:10:00Z", "influencers": []},
    ]  # fmt: skip
    found = server_metrics.events_by_machine(rows, [machine], FIVE)["machine-1-2"]
    assert sorted(found.ends) == [parse_instant(f"2024-01-01T00:{m}:00Z") for m in (10, 15, 20)]
    assert found.influence[parse_instant("2024-01-01T00:15:00Z")] == {"c03": 0.75, "c04": 0.25}
    grouped = [{"group": "host=machine-1-2", "start": "2024-01-01T00:05:00Z", "end": "2024-01-01T00:05:00Z",
                "metrics": [{"metric": "c09", "score": 80}]}]  # fmt: skip
    by_host = server_metrics.groups_by_machine(grouped, [machine], FIVE)["machine-1-2"]
    assert by_host.influence == {parse_instant("2024-01-01T00:05:00Z"): {"c09": 80.0}}


def test_the_job_is_named_after_the_effective_settings(tmp_path: Path) -> None:
    short, full = tmp_path / "short.yml", tmp_path / "full.yml"
    short.write_text("surprise:\n  step: 5m\n  interval: 5m\n")
    full.write_text("surprise:\n  interval: 5m\n  step: 5m\n  baseline_window: 24\nsource:\n  index: elsewhere\n")
    other = tmp_path / "other.yml"
    other.write_text("surprise:\n  step: 5m\n  interval: 5m\n  normalization: zscore\n")
    jobs = [
        server_metrics.derived_config(p, "host", "i", "http://h:1", ["machine-1-2"])[1] for p in (short, full, other)
    ]
    assert jobs[0] == jobs[1] != jobs[2]
    text, _ = server_metrics.derived_config(short, "column", "i", "http://h:1", ["machine-1-2"])
    assert "field: host" in text and "index: i" in text and "prefix: smd-bench" in text


def test_a_set_on_top_of_the_config_is_measured_and_names_the_job_like_the_file_it_equals(tmp_path: Path) -> None:
    base, day = tmp_path / "base.yml", tmp_path / "day.yml"
    base.write_text("surprise:\n  interval: 5m\n  step: 5m\n  normalization: zscore\n  scale_window: 1152\n")
    day.write_text("surprise:\n  interval: 5m\n  step: 5m\n  normalization: zscore\n  scale_window: 288\n")
    overrides = server_metrics.assignments(["surprise.scale_window=288"])
    text, job = server_metrics.derived_config(base, "host", "i", "http://h:1", ["machine-1-2"], overrides)
    assert job == server_metrics.derived_config(day, "host", "i", "http://h:1", ["machine-1-2"])[1]
    assert job != server_metrics.derived_config(base, "host", "i", "http://h:1", ["machine-1-2"])[1]
    assert load_settings(None, server_metrics._dotted(yaml.safe_load(text))).surprise.scale_window == 288
    ten = server_metrics.assignments(["surprise.step=10m"])
    assert server_metrics.measured_step(base, ten) == timedelta(minutes=10)
    for bad, message in ((["surprise.scale_window"], "expected KEY=VALUE"), (["surprise.nope=1"], "unknown setting")):
        with pytest.raises(server_metrics.SmdError, match=message):
            server_metrics.assignments(bad)
    with pytest.raises(server_metrics.SmdError, match=r"^--set: .*scale_window"):
        server_metrics.derived_config(base, "host", "i", "u", ["machine-1-2"], {"surprise.scale_window": "-4"})
    broken = tmp_path / "broken.yml"
    broken.write_text("surprise:\n  scale_window: -4\n")
    with pytest.raises(server_metrics.SmdError, match=rf"^--config {re.escape(str(broken))}: .*scale_window"):
        server_metrics.measured_step(broken, ten)
    with pytest.raises(server_metrics.SmdError, match=r"with --set: surprise.step 90s is not whole minutes"):
        server_metrics.measured_step(base, server_metrics.assignments(["surprise.step=90s", "surprise.interval=30s"]))
    empty = tmp_path / "empty-section.yml"
    empty.write_text("surprise:\n  interval: 5m\n  step: 5m\n  normalization: zscore\nthreshold:\n")
    text, _ = server_metrics.derived_config(
        empty, "host", "i", "http://h:1", ["machine-1-2"], {"threshold.sigmas": "4"}
    )
    assert load_settings(None, server_metrics._dotted(yaml.safe_load(text))).threshold.sigmas == 4.0


def test_trailing_z_excludes_the_current_row_and_flat_history() -> None:
    values = np.array([[1.0, 5.0], [3.0, 5.0], [1.0, 5.0], [3.0, 5.0], [10.0, 6.0]])
    z = smd_peers.trailing_z(values, 4)
    assert np.isnan(z[:4]).all()
    assert z[4, 0] == pytest.approx(8.0)  # |10 - 2| / 1
    assert np.isnan(z[4, 1])  # the history of column 2 is flat: no z
    assert smd_peers.aggregate(z, "max").tolist()[4] == pytest.approx(8.0)


def test_bucket_means_and_flagged_rows_map_onto_the_step_grid() -> None:
    means = smd_peers.bucket_means(np.arange(12, dtype=float).reshape(-1, 1), 5)
    assert means[:, 0].tolist() == [2.0, 7.0, 10.5]
    flags = np.array([False, True, False, True])
    detection = smd_peers.flagged_detection(flags, np.array([0, 3, 5, 7]), FIVE, None)
    assert detection.ends == frozenset({parse_instant("2024-01-01T00:05:00Z"), parse_instant("2024-01-01T00:10:00Z")})


def test_flagged_rows_weigh_their_columns_by_z_summed_per_step() -> None:
    z = np.array([[1.0, np.nan], [2.0, 3.0], [0.5, 0.0], [4.0, 1.0]])
    flags = np.array([True, True, False, True])
    found = smd_peers.flagged_detection(flags, np.array([0, 1, 2, 5]), FIVE, z)
    assert found.influence == {
        parse_instant("2024-01-01T00:05:00Z"): {"c01": 3.0, "c02": 3.0},  # rows 0 and 1; row 2 is not flagged
        parse_instant("2024-01-01T00:10:00Z"): {"c01": 4.0, "c02": 1.0},
    }


def test_aggregate_is_numpys_max_and_90th_percentile_of_the_present_columns() -> None:
    rng = np.random.default_rng(7)
    z = rng.exponential(size=(200, 38))
    z[rng.random(z.shape) < 0.3] = np.nan
    z[5] = np.nan
    z[6, 1:] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = {"max": np.nanmax(z, axis=1), "p90": np.nanpercentile(z, 90, axis=1)}
    for how, wanted in expected.items():
        np.testing.assert_allclose(smd_peers.aggregate(z, how), wanted, rtol=1e-12, equal_nan=True)


def test_scores_summed_per_machine_equal_one_evaluation_of_all_machines() -> None:
    from atlas import evaluate

    one = tiny(train=40, test=40, labels=[0] * 10 + [1] * 10 + [0] * 20)
    two = smd.Machine("machine-3-2", one.train, one.test, np.array([1] * 5 + [0] * 35, dtype=np.int8), ())
    at = lambda m: parse_instant("2024-01-01T00:00:00Z") + timedelta(minutes=m)  # noqa: E731
    found = {
        one.name: smd.Detection(frozenset({at(55), at(75)}), {}),
        two.name: smd.Detection(frozenset({at(45), at(50), at(60)}), {}),
    }
    row = smd.score_group([one, two], found, FIVE)
    truth = smd.truth_intervals(one) + smd.truth_intervals(two)
    points = [a for m in (one, two) for a in smd.detected_points(m.name, found[m.name].ends)]
    steps = {m.name: smd.scored_steps(m, FIVE) for m in (one, two)}
    whole = evaluate.evaluate(truth, points, steps, FIVE)["all"].as_json()
    assert (row["tp"], row["fp"], row["fn"], row["f1"]) == (whole["tp"], whole["fp"], whole["fn"], whole["f1"])
    assert row["pa_f1"] == whole["point_adjusted"]["f1"] and row["incidents"] == 2 and row["false_events"] == 2


def test_ml_peer_feeds_5_minute_means_in_time_order_train_rows_first() -> None:
    machine = tiny(train=10, test=7)  # 17 rows: buckets of rows 0-4, 5-9, 10-14 and 15-16
    lines = [json.loads(line) for line in smd_ml.records(machine)]
    assert len(lines) == 4 * 38
    c01 = [r for r in lines if r["column"] == "c01"]
    origin = int(smd.ORIGIN.timestamp())
    assert [(r["time"] - origin) // 60 for r in c01] == [4, 9, 14, 16]  # the bucket's last row
    assert [r["value"] for r in c01] == [2.0, 7.0, 12.0, 15.5]
    assert [r["doc_count"] for r in c01] == [5, 5, 5, 2]
    assert [r["column"] for r in lines[:38]] == list(smd.COLUMNS)
    assert [json.loads(x)["value"] for x in smd_ml.records(machine, 5, 5)][:2] == [7.0, 107.0]
    body = smd_ml.job_body("machine-1-2")["analysis_config"]
    assert body["bucket_span"] == "5m" and body["summary_count_field_name"] == "doc_count"
    assert body["detectors"] == [{"function": "mean", "field_name": "value", "partition_field_name": "column"}]


def test_ml_buckets_at_the_cut_become_scored_window_ends_with_record_weights() -> None:
    machine = tiny(train=12, test=9)  # test rows are minutes 12 to 20: scored ends 00:15, 00:20, 00:25
    at = lambda m: parse_instant("2024-01-01T00:00:00Z") + timedelta(minutes=m)  # noqa: E731
    buckets = [
        smd_ml.Bucket(at(5), 90.0, {"c01": 80.0}),  # train rows only: not scored
        smd_ml.Bucket(at(10), 75.0, {"c02": 60.0, "c03": 10.0}),
        smd_ml.Bucket(at(15), 74.9, {"c04": 70.0}),
        smd_ml.Bucket(at(20), 50.0, {}),
    ]
    critical = smd_ml.detection(machine, buckets, "bucket", smd_ml.CUTS["critical"], FIVE)
    assert critical.ends == frozenset({at(15)}) and critical.influence == {at(15): {"c02": 60.0, "c03": 10.0}}
    major = smd_ml.detection(machine, buckets, "bucket", smd_ml.CUTS["major"], FIVE)
    assert major.ends == frozenset({at(15), at(20), at(25)}) and at(25) not in major.influence
    hourly = smd_ml.detection(machine, buckets, "bucket", 50.0, timedelta(hours=1))
    assert hourly.ends == frozenset({at(60)})
    records = smd_ml.detection(machine, buckets, "record", smd_ml.CUTS["major"], FIVE)
    assert records.ends == frozenset({at(15), at(20)})  # c02 60 in 00:10-00:15, c04 70 in 00:15-00:20
    assert smd_ml.detection(machine, buckets, "record", smd_ml.CUTS["critical"], FIVE).ends == frozenset()


def test_ml_is_a_peer_name() -> None:
    assert server_metrics._peer_names(["ml", "gaussian"]) == ["ml", "gaussian"]
    assert "ml" in server_metrics._peer_names(["all"])
    with pytest.raises(smd.SmdError, match="'mlx' is not all, none or one of gaussian, iforest, ml"):
        server_metrics._peer_names(["mlx"])
