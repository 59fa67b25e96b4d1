"""The house's shape, read from the source with ast: module size, the layers imports follow, no two-way imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ATLAS = Path(__file__).resolve().parents[2] / "atlas"
MAX_LINES = 400

# Lowest first: a module may import from its own layer (never both ways) and from the layers before it. A module
# belongs to the layer of the longest name here that is it or its package (`atlas.outputs` holds atlas/outputs/*).
# Outputs sit below the job and the read side: they render records (alerts, the report, watches, charts) and never
# drive the job; the job notifies through them and the read side builds the report's data for them.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "basics",
        (
            "atlas",
            "atlas.errors",
            "atlas.clock",
            "atlas.records",
            "atlas.scoring",
            "atlas.masking",
            "atlas.files",
            "atlas.addresses",
            "atlas.deadline",
            "atlas.setting_values",
            "atlas.settings",
            "atlas.settings_text",
            "atlas.presets",
            "atlas.templating",
        ),
    ),
    (
        "Elasticsearch access",
        (
            "atlas.es_server",
            "atlas.es_errors",
            "atlas.es_transport",
            "atlas.es_client",
            "atlas.es_bulk",
            "atlas.indices",
            "atlas.results",
            "atlas.state",
            "atlas.store",
            "atlas.distributions",
            "atlas.embedded",
            "atlas.embedded_nodes",
        ),
    ),
    (
        "stages",
        (
            "atlas.queries",
            "atlas.surprise",
            "atlas.threshold",
            "atlas.events",
            "atlas.influencers",
            "atlas.grouping",
            "atlas.evaluate",
            "atlas.reference",
            "atlas.simulate",
            "atlas.ingest",
        ),
    ),
    ("outputs", ("atlas.outputs", "atlas.listing")),
    ("read side and alerting", ("atlas.findings", "atlas.alerting")),
    ("job", ("atlas.job",)),
    (
        "entry points",
        (
            "atlas.demo",
            "atlas.cli",
            "atlas.cli_support",
            "atlas.cli_es",
            "atlas.cli_data",
            "atlas.cli_outputs",
            "atlas.__main__",
        ),
    ),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ATLAS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ATLAS.rglob("*.py"))}


def imported_modules(name: str) -> set[str]:
    """The atlas modules the module `name` imports anywhere in its file."""
    path = MODULES[name]
    return imports_in(path.read_text(encoding="utf-8"), name if path.name == "__init__.py" else name.rpartition(".")[0])


def imports_in(source: str, package: str) -> set[str]:
    """The atlas modules a source imports, at module level or inside functions: `from atlas import x` counts as
    atlas.x when x is a module, `from atlas.x import y` as atlas.x (atlas.x.y when that is a module); a relative
    import is resolved against `package`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join([*parts[: len(parts) - node.level + 1], node.module or ""]) if node.level else node.module
            base = (base or "").strip(".")
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return {m for m in found if m in MODULES}


def layer_of(name: str) -> int:
    """The index in LAYERS of the layer holding `name`: the one with the longest matching prefix."""
    matches = [
        (len(prefix), k)
        for k, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if name == prefix or name.startswith(prefix + ".")
    ]
    if not matches:
        raise AssertionError(f"{name} is in no layer: add it to LAYERS in tests/unit/test_layering.py")
    return max(matches)[1]


def test_every_module_is_in_a_layer() -> None:
    for name in MODULES:
        layer_of(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_from_a_higher_layer(name: str) -> None:
    upward = {m: LAYERS[layer_of(m)][0] for m in imported_modules(name) if layer_of(m) > layer_of(name)}
    assert not upward, f"{name} ({LAYERS[layer_of(name)][0]}) imports from higher layers: {upward}"


def test_no_two_modules_import_each_other() -> None:
    imports = {name: imported_modules(name) - {name} for name in MODULES}
    both_ways = sorted((a, b) for a, found in imports.items() for b in found if a < b and a in imports[b])
    assert not both_ways


def test_no_module_is_over_the_line_limit() -> None:
    counts = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    over = {name: n for name, n in counts.items() if n > MAX_LINES}
    assert not over, f"split these along their responsibilities (at most {MAX_LINES} lines): {over}"


def test_the_import_reader_sees_every_kind_of_import() -> None:
    """The checks above are only as good as the reader: an import inside a function counts too."""
    source = (
        "import atlas.clock\nfrom atlas import job, records\nfrom atlas.outputs import notify\n"
        "def late():\n    from atlas.findings import read_findings\n    from . import grouping\n"
    )
    assert imports_in(source, "atlas") == {
        "atlas.clock", "atlas.job", "atlas.records", "atlas.outputs.notify", "atlas.findings", "atlas.grouping"
    }  # fmt: skip
    assert layer_of("atlas.outputs.notify") == layer_of("atlas.listing") < layer_of("atlas.job")
