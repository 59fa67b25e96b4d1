"""The wheel ships the query templates and the pom.xml of the embedded Elasticsearch."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_templates_and_pom(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("queries", "watches"):
        templates = {p.name for p in (ROOT / folder).glob("*.j2")}
        assert templates, folder
        assert {f"atlas/{folder}/{t}" for t in templates} <= names
    assert "atlas/pom.xml" in names
    assert any(n.endswith("entry_points.txt") for n in names)
