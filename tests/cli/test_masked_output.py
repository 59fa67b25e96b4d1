"""The CLI's two last-resort printers mask too: a log record (the Elasticsearch client's, urllib3's) is one masked
line, its exception by type and text; a bug's traceback is printed masked, with exit code 1."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from atlas import cli as cli_module
from atlas.cli import StderrHandler

URL = "http://elastic:canary-out-pw@h:9200"


def test_a_log_record_is_one_masked_line(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise ConnectionError(f"cannot connect to {URL}/_search")
    except ConnectionError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("elasticsearch", logging.WARNING, __file__, 1, "GET %s [status:N/A]", (URL,), exc_info)
    StderrHandler().emit(record)
    err = capsys.readouterr().err
    assert err == (
        "GET http://********@h:9200 [status:N/A] (ConnectionError: cannot connect to http://********@h:9200/_search)\n"
    )


def test_a_bugs_traceback_is_printed_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"a bug holding {URL}")

    monkeypatch.setattr(cli_module.cli, "main", broken)
    with pytest.raises(SystemExit) as exited:
        cli_module.main()
    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert err.startswith("Traceback (most recent call last):")
    assert "RuntimeError: a bug holding http://********@h:9200" in err
    assert "canary-out-pw" not in err
