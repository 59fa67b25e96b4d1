"""Compile Elasticsearch's standard modules lang-painless and aggregations from Elastic's source into a distribution."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from atlas.errors import EsUnavailable, ToolMissing

# Elastic's source at the distribution's tag, as the Go module proxy serves any GitHub tag (a registry CI reaches).
# Pinned by content: the proxy's zips are immutable, so a different hash means a different or damaged download.
_SOURCE_MODULE = "github.com/elastic/elasticsearch"
SOURCE_URL = "{proxy}/" + _SOURCE_MODULE + "/@v/v{version}+incompatible.zip"
SOURCE_SHA256 = "3350361da5da58ea00e38f97d9e39dc6c6aa4fa0727f5c12a4d9eda816315802"
_DEFAULT_PROXY = "https://proxy.golang.org"


@dataclass(frozen=True)
class _Module:
    name: str
    module_name: str  # the Java module, as module-info.java declares it
    classname: str
    description: str
    extends: str
    sources: str  # below the source tree's root
    jars: tuple[str, ...]  # prefixes of the mvn-fetched jars this module ships and compiles against


_SPI = "modules/lang-painless/spi/src/main/java"
_MODULES = (
    _Module(
        name="lang-painless",
        module_name="org.elasticsearch.painless",
        classname="org.elasticsearch.painless.PainlessPlugin",
        description="An easy, safe and fast scripting language for Elasticsearch",
        extends="",
        sources="modules/lang-painless/src/main",
        jars=("asm-", "antlr4-runtime-"),
    ),
    _Module(
        name="aggregations",
        module_name="org.elasticsearch.aggs",
        classname="org.elasticsearch.aggregations.AggregationsPlugin",
        description='Adds "built in" aggregations to Elasticsearch.',
        extends="lang-painless",
        sources="modules/aggregations/src/main",
        jars=(),
    ),
)


def install_modules(es_home: Path, version: str, jar_dir: Path, java_home: Path, work_dir: Path) -> None:
    """Build lang-painless (with its SPI) and aggregations into es_home/modules; jar_dir holds asm and antlr."""
    javac = java_home / "bin" / "javac"
    if not javac.is_file():
        raise ToolMissing(f"javac not found in {java_home}: install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    with tempfile.TemporaryDirectory(prefix=".modules-", dir=work_dir) as tmp:
        build = Path(tmp)
        source = _unpack_sources(_download_source(version, build / "source.zip"), build / "src", version)
        lib = es_home / "lib"
        spi_jar = build / f"elasticsearch-scripting-painless-spi-{version}.jar"
        _compile(java_home, [lib], source / _SPI, None, spi_jar)
        for module in _MODULES:
            jars = sorted(p for p in jar_dir.glob("*.jar") if p.name.startswith(module.jars)) if module.jars else []
            target = es_home / "modules" / module.name
            target.mkdir(parents=True)
            main = source / module.sources
            jar = target / f"{module.name}-{version}.jar"
            _compile(java_home, [lib, *jars, spi_jar], main / "java", main / "resources", jar)
            for jar in jars:
                shutil.copy2(jar, target / jar.name)
            policy = main / "plugin-metadata" / "entitlement-policy.yaml"
            if policy.is_file():
                shutil.copy2(policy, target / policy.name)
            (target / "plugin-descriptor.properties").write_text(_descriptor(module, version))
        (es_home / "modules" / "lang-painless" / "spi").mkdir()
        shutil.copy2(spi_jar, es_home / "modules" / "lang-painless" / "spi" / spi_jar.name)


def _download_source(version: str, target: Path) -> Path:
    proxy = next((p for p in os.environ.get("GOPROXY", "").split(",") if p.startswith("http")), _DEFAULT_PROXY)
    url = SOURCE_URL.format(proxy=proxy.rstrip("/"), version=version)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, open(target, "wb") as out:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise EsUnavailable(f"could not download Elasticsearch {version} source from {url}: {exc}") from exc
    if digest.hexdigest() != SOURCE_SHA256:
        got = digest.hexdigest()
        raise EsUnavailable(f"Elasticsearch {version} source from {url} has sha256 {got}, not the pinned one")
    return target


def _unpack_sources(archive: Path, target: Path, version: str) -> Path:
    """Extract only the two modules' main sources; returns the source tree's root."""
    prefix = f"{_SOURCE_MODULE}@v{version}+incompatible/"  # a Go module zip holds everything below module@version/
    wanted = ("modules/lang-painless/", "modules/aggregations/")
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            rel = name.removeprefix(prefix)
            if rel.startswith(wanted) and "/src/main/" in rel and not name.endswith("/"):
                zf.extract(name, target)
    archive.unlink()
    return target / prefix


def _compile(java_home: Path, module_path: list[Path], sources: Path, resources: Path | None, jar: Path) -> None:
    classes = jar.parent / (jar.stem + "-classes")
    files = sorted(str(p) for p in sources.rglob("*.java"))
    javac = [str(java_home / "bin" / "javac"), "-nowarn", "-proc:none", "--release", "17", "-encoding", "UTF-8"]
    path = os.pathsep.join(map(str, module_path))
    _run([*javac, "--module-path", path, "-d", str(classes), *files], f"compiling {sources}")
    if resources is not None and resources.is_dir():
        shutil.copytree(resources, classes, dirs_exist_ok=True)
    packer = str(java_home / "bin" / "jar")
    _run([packer, "--create", "--file", str(jar), "-C", str(classes), "."], f"packing {jar.name}")
    shutil.rmtree(classes)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise EsUnavailable(f"{what} failed: {lines[0] if lines else f'exit code {proc.returncode}'}")


def _descriptor(module: _Module, version: str) -> str:
    fields = {
        "description": module.description,
        "version": version,
        "name": module.name,
        "java.version": "17",
        "elasticsearch.version": version,
        "classname": module.classname,
        "modulename": module.module_name,
        "extended.plugins": module.extends,
        "has.native.controller": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in fields.items())
