"""Peak resident memory of a command, measured so that the test process's own size does not count."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Linux carries a process's memory high-water mark across exec, and a child spawned by the (large) test process
# starts with the test process's: so a small launcher forks the command and reports the command's ru_maxrss.
_LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(json.dumps({"code": os.waitstatus_to_exitcode(status), "maxrss_kib": usage.ru_maxrss}) + "\\n")
"""


@dataclass(frozen=True)
class Measured:
    code: int
    stdout: str
    stderr: str
    peak_mb: float


def run_measured(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Measured:
    """Run `command` (its first item an absolute path) and measure its peak RSS in MB (stderr read up to 1 MiB)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, *command],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate()
    *lines, report = err.decode(errors="replace").rstrip("\n").split("\n")
    measured = json.loads(report)
    stderr = "\n".join(lines) + "\n" if lines else ""
    return Measured(int(measured["code"]), out.decode(), stderr, measured["maxrss_kib"] / 1024)
