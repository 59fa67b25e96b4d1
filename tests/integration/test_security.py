"""Security on a real node: Elasticsearch 6.8.23 with x-pack security, TLS on HTTP signed by a CA made here, a
native user with a password and an API key. `setup`, `simulate`, `ingest csv` and `run` work with each credential;
a wrong password or key, an untrusted certificate and `verify_certs: false` each end as a user expects, with one
line; no secret ever appears in atlas's output or in any file of the test's directory."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from elasticsearch import Elasticsearch

from atlas.embedded_nodes import NodeOptions
from tests.es_nodes import running_node

pytestmark = pytest.mark.integration

PORT = 9293
VERSION = "6.8.23"
USER = "atlas_writer"
RUN_AT = "2024-01-03T12:00:00Z"  # 60 simulated hours from 2024-01-01 hold complete 24 h windows before it


@dataclass(frozen=True)
class SecureNode:
    url: str
    ca: Path
    password: str  # of USER
    api_key_id: str
    api_key: str  # the raw key Elasticsearch returned
    encoded_key: str  # base64 of id:api_key, what ATLAS_ES_API_KEY holds

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password, self.api_key, self.encoded_key)


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def openssl(directory: Path, *args: str) -> None:
    proc = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"openssl {args[0]} failed: {proc.stderr}"


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server key and certificate it signed for 127.0.0.1 (and localhost): ca.crt, node.key, node.crt."""
    if (
        shutil.which("openssl") is None
        or subprocess.run(["openssl", "version"], capture_output=True, check=False).returncode != 0
    ):
        pytest.fail("the openssl command is needed to make the test certificates (apt-get install openssl)")
    openssl(
        directory,
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=atlas-test-ca"),
        *("-keyout", "ca.key", "-out", "ca.crt"),
    )
    openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "node.key")
    openssl(directory, "req", "-new", "-key", "node.key", "-subj", "/CN=127.0.0.1", "-out", "node.csr")
    (directory / "node.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    openssl(
        directory,
        *("x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2"),
        *("-extfile", "node.ext", "-out", "node.crt"),
    )
    return directory / "ca.crt", directory / "node.key", directory / "node.crt"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureNode]:
    ca, key, cert = make_certificates(tmp_path_factory.mktemp("certs"))
    elastic_password = "elastic-" + secrets.token_urlsafe(16)
    options = NodeOptions(
        settings={
            "xpack.security.enabled": True,
            "xpack.security.http.ssl.enabled": True,
            # Relative to the node's config dir: its security manager refuses to read files outside it.
            "xpack.security.http.ssl.key": "node.key",
            "xpack.security.http.ssl.certificate": "node.crt",
            "xpack.security.http.ssl.certificate_authorities": ["ca.crt"],
        },
        keystore={"bootstrap.password": elastic_password},
        config_files={"node.key": key, "node.crt": cert, "ca.crt": ca},
        probe_user=("elastic", elastic_password),
        probe_ca=ca,
    )
    with running_node(VERSION, PORT, options) as (url, _):
        admin = Elasticsearch(url, http_auth=("elastic", elastic_password), ca_certs=str(ca), timeout=60)
        password = "pw-" + secrets.token_urlsafe(16)
        admin.security.put_user(username=USER, body={"password": password, "roles": ["superuser"]})
        created = admin.security.create_api_key(body={"name": "atlas-test"})
        encoded = base64.b64encode(f"{created['id']}:{created['api_key']}".encode()).decode()
        yield SecureNode(url, ca, password, created["id"], created["api_key"], encoded)
        admin.close()


@pytest.fixture(scope="module")
def admin(node: SecureNode) -> Iterator[Elasticsearch]:
    client = Elasticsearch(node.url, http_auth=(USER, node.password), ca_certs=str(node.ca), timeout=60)
    yield client
    client.close()


def write_config(
    directory: Path, node: SecureNode, prefix: str, *, user: bool, ca: bool = True, verify: bool = True
) -> Path:
    es: dict[str, object] = {"urls": [node.url]}
    if user:
        es["username"] = USER
    if ca:
        es["ca_certs"] = str(node.ca)
    if not verify:
        es["verify_certs"] = False
    config = {"es": es, "source": {"index": f"{prefix}-metrics"}, "results": {"prefix": prefix}}
    path = directory / "atlas.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def atlas(config: Path, *args: str, env: Mapping[str, str]) -> Outcome:
    """atlas as a user runs it, in its own process: what it prints, warnings included, is what the user sees."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    # HOME in the test's directory: whatever atlas might write there is scanned for secrets too.
    proc = subprocess.run(
        [sys.executable, "-m", "atlas", "--config", str(config), *args],
        env={**inherited, "HOME": str(config.parent), "ATLAS_HOME": str(config.parent / "atlas-home"), **env},
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def assert_no_secret(node: SecureNode, directory: Path, outcomes: list[Outcome], *extra: str) -> None:
    """No password or key, raw or encoded, in any output or in any file under the test's directory."""
    texts = {f"output {i}": o.stdout + o.stderr for i, o in enumerate(outcomes)}
    texts |= {str(p): p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file()}
    for secret in (*node.secrets, *extra):
        leaked = [where for where, text in texts.items() if secret in text]
        assert not leaked, f"a secret appears in {leaked}"


def one_error_line(outcome: Outcome, code: int = 1) -> str:
    assert outcome.code == code, outcome
    assert outcome.stdout == ""
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), outcome.stderr
    return lines[0]


def credentials(node: SecureNode, kind: str) -> tuple[bool, dict[str, str]]:
    """Whether the config names the user, and the environment holding the secret."""
    if kind == "password":
        return True, {"ATLAS_ES_PASSWORD": node.password}
    return False, {"ATLAS_ES_API_KEY": node.encoded_key}


@pytest.mark.parametrize("kind", ["password", "api-key"])
def test_setup_simulate_ingest_and_run_work_with_each_credential(
    node: SecureNode, admin: Elasticsearch, tmp_path: Path, kind: str
) -> None:
    prefix = f"atlas-sec-{kind}"
    user, env = credentials(node, kind)
    config = write_config(tmp_path, node, prefix, user=user)
    (tmp_path / "m.csv").write_text(
        "timestamp,metric,series,value\n2024-03-01T00:00:00Z,disk,h1,0.5\n1709254800,disk,h2,0.75\n"
    )
    steps = [
        ["setup"],
        ["simulate", "--metrics", "2", "--queries", "5", "--nodes", "1", "--hours", "60", "--truth", "truth.csv"],
        ["ingest", "csv", str(tmp_path / "m.csv"), "--index", f"{prefix}-csv"],
        ["run", "--at", RUN_AT],
        ["-v", "run", "--at", RUN_AT],  # debug logging of a second run: nothing new to do, but every request logged
        ["config", "show"],
    ]
    outcomes = []
    for step in steps:
        outcome = atlas(config, *step, env=env)
        assert outcome.code == 0, (step, outcome.stderr)
        outcomes.append(outcome)
    assert json.loads(outcomes[0].stdout)["indices"] == dict.fromkeys(
        [f"{prefix}-surprise", f"{prefix}-anomalies", f"{prefix}-state"], "created"
    )
    assert json.loads(outcomes[1].stdout)["indexed"] == 2 * 5 * 60
    assert json.loads(outcomes[2].stdout)["indexed"] == 2
    assert admin.count(index=f"{prefix}-surprise")["count"] > 0  # run computed and wrote windows
    shown = json.loads(outcomes[-1].stdout)["es"]
    assert (shown["password"], shown["api_key"]) == (("********", None) if user else (None, "********"))
    assert_no_secret(node, tmp_path, outcomes)
    # Nor in what atlas wrote to Elasticsearch.
    for index in (f"{prefix}-surprise", f"{prefix}-anomalies", f"{prefix}-state"):
        stored = json.dumps(admin.search(index=index, body={"size": 1000})["hits"]["hits"])
        assert not any(secret in stored for secret in node.secrets), index


@pytest.mark.parametrize("kind", ["password", "api-key"])
def test_wrong_credentials_are_one_line_saying_they_were_refused(node: SecureNode, tmp_path: Path, kind: str) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(16)
    if kind == "password":
        user, env = True, {"ATLAS_ES_PASSWORD": wrong}
    else:
        wrong = base64.b64encode(f"{node.api_key_id}:{wrong}".encode()).decode()
        user, env = False, {"ATLAS_ES_API_KEY": wrong}
    config = write_config(tmp_path, node, "atlas-sec-wrong", user=user)
    outcomes = [atlas(config, *command, env=env) for command in (["setup"], ["run", "--at", RUN_AT])]
    for outcome in outcomes:
        line = one_error_line(outcome)
        assert f"{node.url} refused the credentials (HTTP 401)" in line, line
    verbose = atlas(config, "-v", "setup", env=env)  # the cause chain and debug logs must not leak it either
    assert verbose.code == 1
    assert_no_secret(node, tmp_path, [*outcomes, verbose], wrong)


def test_an_untrusted_certificate_is_one_line_naming_tls(node: SecureNode, tmp_path: Path) -> None:
    config = write_config(tmp_path, node, "atlas-sec-untrusted", user=True, ca=False)
    env = {"ATLAS_ES_PASSWORD": node.password}
    outcomes = [atlas(config, *command, env=env) for command in (["setup"], ["run", "--at", RUN_AT])]
    for outcome in outcomes:
        line = one_error_line(outcome)
        assert "TLS handshake" in line and "certificate verify failed" in line and "es.ca_certs" in line, line
    assert_no_secret(node, tmp_path, outcomes)


def test_verify_certs_false_works_without_a_warning(node: SecureNode, admin: Elasticsearch, tmp_path: Path) -> None:
    prefix = "atlas-sec-noverify"
    config = write_config(tmp_path, node, prefix, user=False, ca=False, verify=False)
    env = {"ATLAS_ES_API_KEY": node.encoded_key}
    steps = [
        ["setup"],
        ["simulate", "--metrics", "2", "--queries", "5", "--nodes", "1", "--hours", "60"],
        ["run", "--at", RUN_AT],
    ]
    outcomes = [atlas(config, *step, env=env) for step in steps]
    for step, outcome in zip(steps, outcomes, strict=True):
        assert outcome.code == 0, (step, outcome.stderr)
        assert "warn" not in outcome.stderr.lower() and "verif" not in outcome.stderr.lower(), outcome.stderr
    assert admin.count(index=f"{prefix}-surprise")["count"] > 0
    assert_no_secret(node, tmp_path, outcomes)


@pytest.mark.parametrize(
    ("ca_file", "code", "expected"),
    [
        ("missing.pem", 2, "Error: es.ca_certs: {ca} does not exist; name the PEM file of the CA that signed"),
        (".", 2, "Error: es.ca_certs: {ca} is a directory; name the PEM file of the CA that signed"),
        ("garbage.pem", 1, "TLS handshake with {url} failed (es.ca_certs holds no PEM certificate)"),
    ],
    ids=["missing", "directory", "not-a-certificate"],
)
def test_an_unusable_ca_file_is_one_line_naming_es_ca_certs(
    node: SecureNode, tmp_path: Path, ca_file: str, code: int, expected: str
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    config = write_config(tmp_path, node, "atlas-sec-ca-file", user=True)
    ca = str(tmp_path / ca_file)
    env = {"ATLAS_ES_PASSWORD": node.password, "ATLAS_ES_CA_CERTS": ca}  # the environment overrides the file
    outcome = atlas(config, "setup", env=env)
    assert expected.format(ca=ca, url=node.url) in one_error_line(outcome, code)
    assert_no_secret(node, tmp_path, [outcome])


def test_plain_http_to_the_tls_port_says_to_use_https(node: SecureNode, tmp_path: Path) -> None:
    config = write_config(tmp_path, node, "atlas-sec-plain-http", user=True)
    plain = node.url.replace("https://", "http://")
    config.write_text(config.read_text().replace(node.url, plain))
    outcome = atlas(config, "setup", env={"ATLAS_ES_PASSWORD": node.password})
    assert one_error_line(outcome) == (
        f"Error: checking index atlas-sec-plain-http-surprise: cannot reach Elasticsearch at {plain} (ProtocolError,"
        " tried 4 times); if it serves HTTPS, its URL must start with https://"
    )
    assert_no_secret(node, tmp_path, [outcome])
