"""Under -v the Elasticsearch client and urllib3 log every request a real node answers; a password in the URL, in
each form the client accepts, never shows in those records, in the error line or in its cause chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import cli

pytestmark = pytest.mark.integration

CANARY = "canary-log-pw-5e1"
FORMS = {
    "plain": f"elastic:{CANARY}",
    "'@' in it": f"elastic:{CANARY}@{CANARY}",
    "':' in it": f"elastic:{CANARY}:{CANARY}",
    "%-escapes in it": f"elastic:{CANARY}%2F%40{CANARY}",
}


@pytest.mark.parametrize("userinfo", FORMS.values(), ids=FORMS.keys())
def test_request_logs_of_a_real_node_never_show_the_password(
    userinfo: str, es_url: str, index_name: str, tmp_path: Path
) -> None:
    config = tmp_path / "atlas.yml"
    config.write_text(f"results:\n  prefix: {index_name}\n")  # no results index of this prefix: an error follows
    url = es_url.replace("://", f"://{userinfo}@", 1)
    args = ["-v", "--config", str(config), "--es-url", url, "anomalies", "--from", "2024-01-01T00:00:00Z"]
    result = CliRunner().invoke(cli, args, env={"ATLAS_ES_PASSWORD": "", "ATLAS_ES_API_KEY": ""})
    printed = result.stdout + result.stderr
    host = es_url.split("://", 1)[1]
    assert f"{host}/" in printed and "[status:" in printed, printed  # the client's request records were shown
    assert "Error: " in printed and "caused by:" in printed, printed
    assert CANARY not in printed
    assert "Traceback" not in printed
