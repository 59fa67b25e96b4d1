"""Figures of atlas's handling of bad input and faults: the bad-input corpus (tests/corpus.py) run through the CLI,
counted, and the fault tests on real Elasticsearch nodes run and counted.

    python bench/faults.py [--skip-es]

Prints: cases tried, clean errors (one `Error:` line, the expected exit code), tracebacks, canary leaks, half-writes
(a failed command leaving a file made or changed: a temporary file, a partial output, a replaced input) and waits
past their bound (a case taking longer than its own bound, e.g. a named pipe's 10 s wait plus start-up), each with
the goal 0; and for the fault tests (a node killed during a backfill and an hourly run on a 3-node cluster, a killed
atlas process, the flood-stage read-only block, bad cluster answers, wrong credentials and certificates, an index
mapping the value as long, a CSV cut or grown during its import, a server trickling a byte a second, the collectd
listener's slow sender and malformed posts, SIGTERM during a backfill) how many were injected and survived.
`--skip-es` runs only the corpus (no Elasticsearch needed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ holds the corpus

from tests.cli.test_corpus import run_bad_input  # noqa: E402
from tests.corpus import CANARIES, all_inputs  # noqa: E402

FAULT_TESTS = [
    "tests/integration/test_cluster_faults.py",
    "tests/integration/test_es_answers.py",
    "tests/integration/test_security.py",
    "tests/integration/test_job.py::test_a_killed_backfill_run_again_leaves_what_one_clean_run_leaves",
    "tests/integration/test_job.py::test_one_run_after_72_hours_of_downtime_catches_up_like_a_backfill",
    "tests/integration/test_setup.py",
    "tests/integration/test_io_bounds.py",
]


def run_corpus() -> None:
    tried: Counter[str] = Counter()
    clean: Counter[str] = Counter()
    tracebacks, leaks, half_writes, late, escapes = 0, 0, 0, 0, []
    started = time.monotonic()
    for case in all_inputs():
        with tempfile.TemporaryDirectory() as directory:
            outcome = run_bad_input(case, Path(directory))
        tried[case.kind] += 1
        printed = outcome.printed
        errors = [line for line in printed.strip().splitlines() if line.startswith("Error")]
        has_traceback = "Traceback" in printed
        tracebacks += has_traceback
        leaks += any(canary in printed for canary in CANARIES)
        half_writes += bool(outcome.changed)
        late += outcome.seconds > case.bound_s
        if outcome.code == case.exit_code and len(errors) == 1 and not has_traceback:
            clean[case.kind] += 1
        else:
            escapes.append(f"{case.kind}: {case.name} (exit {outcome.code})")
        if outcome.changed:
            escapes.append(f"{case.kind}: {case.name} left {', '.join(outcome.changed)} made or changed")
        if outcome.seconds > case.bound_s:
            escapes.append(f"{case.kind}: {case.name} took {outcome.seconds:.1f} s (bound {case.bound_s:g} s)")
    print(f"cases tried: {sum(tried.values())} in {time.monotonic() - started:.1f} s")
    for kind in sorted(tried):
        print(f"  {kind:<8} {tried[kind]:>4} tried, {clean[kind]:>4} clean one-line errors")
    print(f"clean errors: {sum(clean.values())}")
    print(f"tracebacks: {tracebacks}")
    print(f"canary leaks: {leaks}")
    print(f"half-writes: {half_writes}")
    print(f"waits past their bound: {late}")
    for escape in escapes:
        print(f"  escaped: {escape}")


def run_fault_tests() -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *FAULT_TESTS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()
    print(f"faults injected (tests): {summary} in {time.monotonic() - started:.0f} s")
    for path in FAULT_TESTS:
        print(f"  {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-es", action="store_true", help="only the bad-input corpus")
    args = parser.parse_args()
    run_corpus()
    if not args.skip_es:
        run_fault_tests()


if __name__ == "__main__":
    main()
