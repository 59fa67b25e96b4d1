"""The single Jinja environment over queries/ and watches/: render a template, parse it, return a dict."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from atlas.errors import TemplateError

_PACKAGE = Path(__file__).resolve().parent


def template_dirs() -> list[Path]:
    """Where queries/ and watches/ are: inside the installed package, else at the top of a source checkout."""
    found = []
    for name in ("queries", "watches"):
        for base in (_PACKAGE, _PACKAGE.parent):
            if (base / name).is_dir():
                found.append(base / name)
                break
    if not found:
        raise TemplateError(f"no queries/ directory found next to {_PACKAGE}; the installation is incomplete")
    return found


def to_json(value: Any) -> str:
    """The `json` filter: strict JSON for one value; undefined names, NaN and numpy/pandas objects fail loudly."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    module = type(value).__module__.split(".")[0]
    if module in ("numpy", "pandas"):
        raise TemplateError(f"{type(value).__name__} reached a template; convert it to int, float or str first")
    try:
        return json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TemplateError(f"cannot render {value!r} as JSON: {exc}") from exc


@cache
def environment() -> jinja2.Environment:
    """The one Jinja environment of atlas (StrictUndefined, no autoescape, the `json` and `painless` filters)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs()]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["json"] = to_json
    env.filters["painless"] = painless_line
    return env


def painless_line(text: str) -> str:
    """The `painless` filter: a script written one statement group a line, as the one line Elasticsearch gets (the
    lines stripped and joined with single spaces)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def declared_variables(name: str) -> set[str]:
    """The names a template's first-line comment `{# vars: a, b #}` declares."""
    source = template_source(name)
    first = source.splitlines()[0] if source else ""
    if not (first.startswith("{# vars:") and first.endswith("#}")):
        raise TemplateError(f"{name}: the first line must be a `{{# vars: ... #}}` comment")
    return {v.strip() for v in first[len("{# vars:") : -2].split(",") if v.strip()}


def undeclared_variables(name: str) -> set[str]:
    """The names a template actually uses from its caller."""
    return set(meta.find_undeclared_variables(environment().parse(template_source(name))))


def template_source(name: str) -> str:
    env = environment()
    assert env.loader is not None
    return env.loader.get_source(env, name)[0]


def render_text(name: str, **variables: Any) -> str:
    """Render template `name` with `variables` as plain text (for text that is not JSON, like Mustache messages)."""
    try:
        return environment().get_template(name).render(**variables)
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"template {name} not found in {', '.join(map(str, template_dirs()))}") from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{name}: {exc.message}") from exc


def render_json(name: str, **variables: Any) -> dict[str, Any]:
    """Render template `name` with `variables`, parse the result as JSON and return the object."""
    text = render_text(name, **variables)
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"{name}: rendered text is not JSON: {exc.msg}\n{_excerpt(text, exc)}") from exc
    if not isinstance(parsed, dict):
        raise TemplateError(f"{name}: rendered JSON must be an object, got {type(parsed).__name__}")
    return parsed


def _excerpt(text: str, exc: json.JSONDecodeError) -> str:
    lines = text.splitlines()
    first, last = max(exc.lineno - 4, 0), min(exc.lineno + 3, len(lines))
    out = []
    for number in range(first, last):
        out.append(f"{number + 1:5d} | {lines[number]}")
        if number + 1 == exc.lineno:
            out.append("      | " + " " * (exc.colno - 1) + "^")
    return "\n".join(out)
