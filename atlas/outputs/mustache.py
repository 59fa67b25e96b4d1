"""A small Mustache renderer for the subset Watcher's action templates use, to dry-run watches without Watcher."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from atlas.errors import TemplateError

_TAG = re.compile(r"\{\{\s*([#^/]?)\s*([^}]+?)\s*\}\}")


def render_mustache(template: str, context: Mapping[str, Any]) -> str:
    """Render variables `{{a.b.0.c}}`, sections `{{#list}}...{{/list}}` and inverted sections `{{^x}}...{{/x}}`.

    Like Watcher: dotted names descend into objects and list indexes, a missing name renders as nothing, a section
    repeats over a list and renders once for any other truthy value, and values are not HTML-escaped.
    """
    out, rest = _render(template, [context], 0, None)
    if rest != len(template):
        raise TemplateError(f"unbalanced Mustache section at offset {rest}")
    return out


def _render(template: str, stack: list[Any], pos: int, closing: str | None) -> tuple[str, int]:
    out: list[str] = []
    while True:
        match = _TAG.search(template, pos)
        if match is None:
            if closing is not None:
                raise TemplateError(f"Mustache section {closing!r} is never closed")
            out.append(template[pos:])
            return "".join(out), len(template)
        out.append(template[pos : match.start()])
        kind, name = match.group(1), match.group(2)
        pos = match.end()
        if kind == "/":
            if name != closing:
                raise TemplateError(f"Mustache closes {name!r} where {closing!r} is open")
            return "".join(out), match.start()
        if kind in ("#", "^"):
            value = _lookup(stack, name)
            items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
            truthy = bool(value) and value is not False
            if kind == "^":
                items, truthy = [None], not truthy
            end = pos
            for item in items if truthy else [None]:
                body, end = _render(template, stack + ([item] if kind == "#" else []), pos, name)
                if truthy:
                    out.append(body)
            pos = _TAG.search(template, end).end()  # type: ignore[union-attr]  # _render found the closing tag
            continue
        out.append(_text(_lookup(stack, name)))


def _lookup(stack: list[Any], name: str) -> Any:
    if name == ".":
        return stack[-1]
    head, *rest = name.split(".")
    for scope in reversed(stack):
        found, value = _child(scope, head)
        if found:
            for part in rest:
                found, value = _child(value, part)
                if not found:
                    return None
            return value
    return None


def _child(scope: Any, key: str) -> tuple[bool, Any]:
    if isinstance(scope, Mapping) and key in scope:
        return True, scope[key]
    if isinstance(scope, Sequence) and not isinstance(scope, str) and key.isdigit() and int(key) < len(scope):
        return True, scope[int(key)]
    return False, None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True)
    return str(value)
