"""Figures of atlas's handling of bad input and faults: the bad-input corpus (tests/corpus.py) run through the CLI,
counted, and the fault tests on real Elasticsearch nodes run and counted.

    python bench/faults.py [--skip-es]

Prints: bad inputs tried, clean errors (one `Error:` line, the expected exit code), tracebacks (goal 0), canary
leaks (goal 0), and for the fault tests (a node killed during a backfill and an hourly run on a 3-node cluster, a
killed atlas process, the flood-stage read-only block, bad cluster answers, wrong credentials and certificates) how
many were injected and survived. `--skip-es` runs only the corpus (no Elasticsearch needed).
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
]


def run_corpus() -> None:
    tried: Counter[str] = Counter()
    clean: Counter[str] = Counter()
    tracebacks, leaks, escapes = 0, 0, []
    started = time.monotonic()
    for case in all_inputs():
        with tempfile.TemporaryDirectory() as directory:
            code, printed = run_bad_input(case, Path(directory))
        tried[case.kind] += 1
        errors = [line for line in printed.strip().splitlines() if line.startswith("Error")]
        has_traceback = "Traceback" in printed
        tracebacks += has_traceback
        leaks += any(canary in printed for canary in CANARIES)
        if code == case.exit_code and len(errors) == 1 and not has_traceback:
            clean[case.kind] += 1
        else:
            escapes.append(f"{case.kind}: {case.name} (exit {code})")
    print(f"bad inputs tried: {sum(tried.values())} in {time.monotonic() - started:.1f} s")
    for kind in sorted(tried):
        print(f"  {kind:<7} {tried[kind]:>4} tried, {clean[kind]:>4} clean one-line errors")
    print(f"tracebacks: {tracebacks}")
    print(f"canary leaks: {leaks}")
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
