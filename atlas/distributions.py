"""The Elasticsearch and OpenSearch distributions atlas can run, fetched from Maven Central with mvn and unpacked,
modules added."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from atlas.errors import ConfigError, EsUnavailable, ToolMissing

DEFAULT_VERSION = "7.10.2"


@dataclass(frozen=True)
class Module:
    """A standard module that a distribution's Maven zip leaves out: the jars mvn copies for it, and its descriptor."""

    name: str
    classname: str
    jar_prefixes: tuple[str, ...]
    policy: str


@dataclass(frozen=True)
class Distribution:
    """One server version as atlas runs it: the pom.xml profile that fetches it and the modules it adds.

    `version` is what `atlas es start --version` names: the bare number for Elasticsearch, `opensearch-<number>`
    for OpenSearch, whose scripts, config file, environment variables and Java packages are named after it."""

    version: str
    modules: tuple[Module, ...] = ()
    has_xpack: bool = False
    product: str = "elasticsearch"
    default_port: int = 9250

    @property
    def number(self) -> str:
        return self.version.removeprefix(f"{self.product}-")

    @property
    def major(self) -> int:
        return int(self.number.split(".")[0])

    @property
    def is_opensearch(self) -> bool:
        return self.product == "opensearch"

    @property
    def product_name(self) -> str:
        return "OpenSearch" if self.is_opensearch else "Elasticsearch"

    @property
    def title(self) -> str:
        """`Elasticsearch 7.10.2`, `OpenSearch 2.19.6`: for messages."""
        return f"{self.product_name} {self.number}"

    @property
    def profile(self) -> str:
        return self.version if self.is_opensearch else f"es-{self.version}"

    @property
    def home_name(self) -> str:
        """The directory the distribution's zip unpacks to (`elasticsearch-7.10.2`, `opensearch-2.19.6`)."""
        return f"{self.product}-{self.number}"

    @property
    def env_prefix(self) -> str:
        """Of the launcher's environment variables: ES_PATH_CONF, OPENSEARCH_PATH_CONF."""
        return "OPENSEARCH" if self.is_opensearch else "ES"


_PAINLESS_7 = Module(
    name="lang-painless",
    classname="org.elasticsearch.painless.PainlessPlugin",
    jar_prefixes=("lang-painless-", "scripting-painless-spi-", "antlr4-runtime-", "asm-"),
    # Painless compiles scripts to classes in a class loader of its own, and finds whitelisted classes through
    # the loader that loaded it; the grants of Elastic's own policy for this module.
    policy='grant {\n  permission java.lang.RuntimePermission "createClassLoader";\n'
    '  permission java.lang.RuntimePermission "getClassLoader";\n};\n',
)

_PAINLESS_OPENSEARCH_2 = Module(
    name="lang-painless",
    classname="org.opensearch.painless.PainlessPlugin",
    jar_prefixes=("lang-painless-", "opensearch-scripting-painless-spi-", "antlr4-runtime-", "asm-"),
    policy=_PAINLESS_7.policy,  # OpenSearch's policy for the module grants the same two permissions
)

DISTRIBUTIONS = {
    "7.10.2": Distribution("7.10.2", modules=(_PAINLESS_7,)),  # integ-test-zip with lang-painless added
    "6.8.23": Distribution("6.8.23", has_xpack=True),  # the full distribution, run with a trial licence
    "8.19.9": Distribution("8.19.9", has_xpack=True),  # integ-test-zip: no painless, no aggregations module
    # OpenSearch's integ-test-zip with its lang-painless added; its own port, so that it runs beside 7.10.2's node
    "opensearch-2.19.6": Distribution(
        "opensearch-2.19.6", modules=(_PAINLESS_OPENSEARCH_2,), product="opensearch", default_port=9240
    ),
}


def distribution(version: str) -> Distribution:
    """The distribution of one version atlas knows; ConfigError naming the known ones otherwise."""
    if version not in DISTRIBUTIONS:
        raise ConfigError(f"--version must be one of {', '.join(DISTRIBUTIONS)}, got {version!r}")
    return DISTRIBUTIONS[version]


def ensure_distribution(dist: Distribution, dist_dir: Path) -> Path:
    """Fetch (mvn), unpack and complete one version in dist_dir unless already there; returns its home directory."""
    home = dist_dir / dist.home_name
    launcher = home / "bin" / dist.product
    if launcher.is_file():
        return home
    dist_dir.mkdir(parents=True, exist_ok=True)
    download = dist_dir / f"download-{dist.version}"
    archive = download / f"{dist.home_name}.zip"
    if not zipfile.is_zipfile(archive):
        _fetch(dist, download, archive)
    # Unpack beside the target and rename, so a half-unpacked tree is never taken for a distribution.
    partial = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dist_dir))
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = zf.extract(info, partial)
                mode = (info.external_attr >> 16) & 0o7777
                if mode:  # zipfile drops permissions, and bin/* must stay executable
                    os.chmod(target, mode)
        for module in dist.modules:
            _install_module(partial / home.name, module, dist, download)
        try:
            (partial / home.name).rename(home)
        except OSError:
            if not launcher.is_file():  # not a concurrent unpack that won
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(download, ignore_errors=True)
    return home


def _fetch(dist: Distribution, download: Path, archive: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissing("mvn not found: install Maven (apt-get install maven)")
    here = Path(__file__).resolve().parent
    pom = next((p for p in (here / "pom.xml", here.parent / "pom.xml") if p.is_file()), here / "pom.xml")
    cmd = [mvn, "-q", "-B", "-f", str(pom), "-P", dist.profile, "dependency:copy-dependencies"]
    proc = subprocess.run([*cmd, f"-DoutputDirectory={download}"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not zipfile.is_zipfile(archive):
        lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        errors = [line for line in lines if "ERROR" in line] or lines
        reason = errors[0][:300] if errors else f"exit code {proc.returncode}"
        raise EsUnavailable(f"mvn could not fetch {dist.title} (profile {dist.profile} of {pom}): {reason}")


def _install_module(es_home: Path, module: Module, dist: Distribution, download: Path) -> None:
    """Put a module's jars, its plugin descriptor and its security policy into modules/<name>/."""
    jars = sorted(p for p in download.glob("*.jar") if p.name.startswith(module.jar_prefixes))
    if not any(p.name.startswith(module.jar_prefixes[0]) for p in jars):
        raise EsUnavailable(f"mvn did not fetch the {module.name} module jar of {dist.title} into {download}")
    target = es_home / "modules" / module.name
    target.mkdir(parents=True, exist_ok=True)
    for jar in jars:
        shutil.copyfile(jar, target / jar.name)
    descriptor = {
        "description": f"{dist.product_name}'s {module.name} module",
        "version": dist.number,
        "name": module.name,
        "classname": module.classname,
        "java.version": "11" if dist.is_opensearch else "1.8",
        f"{dist.product}.version": dist.number,
        "extended.plugins": "",
        "has.native.controller": "false",
    }
    (target / "plugin-descriptor.properties").write_text("".join(f"{k}={v}\n" for k, v in descriptor.items()))
    (target / "plugin-security.policy").write_text(module.policy)
