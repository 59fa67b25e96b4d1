"""How one setting is declared and read: its bounds, the YAML file (no repeated keys, no aliases), a raw value
coerced to the declared type, URL and cloud-id checks, and the closest known names for a misspelt one."""

from __future__ import annotations

import base64
import dataclasses
import difflib
import math
import re
import types
import typing
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from atlas import files
from atlas.clock import LONGEST, format_duration, parse_duration
from atlas.errors import ConfigError, DataError
from atlas.masking import mask


@dataclass(frozen=True)
class Bounds:
    """The range a number or a duration (or each item of a list of them) must lie in: `low` to `high` inclusive,
    `low` itself excluded when `above`."""

    low: float | timedelta
    high: float | timedelta
    above: bool = False

    def holds(self, value: Any) -> bool:
        return (self.low < value if self.above else self.low <= value) and bool(value <= self.high)

    def describe(self) -> str:
        low, high = (_bound_text(v) for v in (self.low, self.high))
        return f"> {low} and <= {high}" if self.above else f"between {low} and {high}"


def _bound_text(value: float | timedelta) -> str:
    if isinstance(value, timedelta):
        return duration_text(value)
    return str(int(value)) if value == int(value) else f"{value:g}"


def duration_text(value: timedelta) -> str:
    """A duration as a message shows it: long ones in days (3650d, not 87600h)."""
    whole_days = value >= timedelta(days=7) and value % timedelta(days=1) == timedelta(0)
    return f"{value.days}d" if whole_days else format_duration(value) if value else "0s"


DURATION = Bounds(timedelta(0), LONGEST)  # every duration setting unless it says otherwise


def setting(
    default: Any,
    help: str,
    *,
    env: str | None = None,
    secret: bool = False,
    urls: bool = False,
    bounds: Bounds | None = None,
) -> Any:
    """Declare one setting: its default, help text, the range of a number or duration (its items' for a list) and,
    optionally, the environment variable that overrides it.

    A secret is read only from its environment variable, never from the file, and is masked when shown. A setting
    of `urls` holds URL(s) whose credentials are masked wherever they are shown (`atlas.masking`).
    """
    meta = {"help": help, "env": env, "secret": secret, "urls": urls, "bounds": bounds}
    if isinstance(default, (list, dict)):
        frozen = tuple(default) if isinstance(default, list) else types.MappingProxyType(default)
        return field(default_factory=lambda: frozen, metadata=meta)
    return field(default=default, metadata=meta)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # An alias repeats a node by reference; a few nested ones expand to more than memory once written out.
        if self.check_event(yaml.AliasEvent):
            line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]
            raise ConfigError(f"{self.name}:{line}: YAML aliases (*name) are not accepted in atlas.yml")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"{self.name}:{line}: the key {key!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_file(path: Path) -> Any:
    """The YAML document of the configuration file at `path` ({} when empty); ConfigError naming file:line."""
    try:
        text = files.read_text(path, "configuration")
    except DataError as exc:  # the file's own problem is a configuration error here
        raise ConfigError(str(exc)) from exc
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = str(path)
        try:
            return loader.get_single_data() or {}
        finally:
            loader.dispose()
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply") from exc
    except yaml.YAMLError as exc:
        # file:line:column and the problem, never YAML's own text: it quotes the line, which may hold a password.
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None


def build_section(
    name: str, cls: type[Any], raw: Any, overrides: dict[str, Any], environ: Mapping[str, str], every_key: Sequence[str]
) -> Any:
    """One section's dataclass from the file's mapping `raw`, then the environment, then `overrides` (dotted keys);
    `every_key` (all settings' dotted keys) feeds the suggestion for an unknown key."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            dotted_keys = [f"{name}.{k}" for k in fields]
            raise ConfigError(f"unknown key {name}.{key} ({closest(f'{name}.{key}', dotted_keys, every_key)})")
    values: dict[str, Any] = {}
    for key, spec in fields.items():
        dotted = f"{name}.{key}"
        env = spec.metadata.get("env")
        if spec.metadata.get("secret") and key in raw:
            raise ConfigError(f"{dotted}: secrets are read only from the environment ({env}), not from the file")
        bounds = declared_bounds(spec, hints[key])
        if key in raw:
            values[key] = coerce(raw[key], hints[key], dotted, bounds)
        if env and environ.get(env):
            values[key] = coerce(listed(environ[env], hints[key]), hints[key], env, bounds)
        if dotted in overrides:
            values[key] = coerce(listed(overrides[dotted], hints[key]), hints[key], dotted, bounds)
    return cls(**values)


def listed(value: Any, hint: Any) -> Any:
    """A list setting given as text (environment, command line) is comma-separated."""
    return value.split(",") if hint == tuple[str, ...] and isinstance(value, str) else value


def coerce(value: Any, hint: Any, where: str, bounds: Bounds | None = None) -> Any:
    """Check `value` against the declared type `hint` (and a number's or duration's `bounds`); return it in that
    type or raise ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        return coerce(value, next(a for a in args if a is not type(None)), where, bounds)
    if value is None:
        raise ConfigError(f"{where}: must not be empty")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is tuple:
        items = value if isinstance(value, list) else None
        if items is None:
            raise ConfigError(f"{where}: must be a list, got {value!r}")
        return tuple(coerce(item, args[0], f"{where}[{i}]", bounds) for i, item in enumerate(items))
    if origin in (Mapping, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must be a mapping, got {value!r}")
        if args[1] is str:
            for k, v in value.items():
                if not isinstance(k, str) or not isinstance(v, str) or not v:
                    raise ConfigError(f"{where}.{k}: must map a name to a field name, got {v!r}")
        return types.MappingProxyType(dict(value))
    if hint is timedelta:
        if not isinstance(value, timedelta):
            try:
                value = parse_duration(str(value))
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
        return _within(value, bounds or DURATION, where)
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if hint in (int, float):
        return _number(value, hint, where, bounds)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        if _CONTROL.search(value):
            raise ConfigError(f"{where}: must not hold control characters (newline, tab, NUL, escape...)")
        return value
    raise TypeError(f"unsupported setting type {hint!r} at {where}")


# Numbers as text (the environment, --set, a quoted YAML value): ASCII only, so neither 'inf', 'nan', '0x10' nor
# Unicode digits ('²', '١٢', which Python's int() and float() read) pass.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,4})?")


def _number(value: Any, hint: type[int] | type[float], where: str, bounds: Bounds | None) -> int | float:
    """The one check of every numeric setting, however it is spelled (YAML number, quoted text, environment,
    --set): a number of the declared kind (never a boolean), finite, within its declared `bounds`."""
    kind = "a whole number" if hint is int else "a finite number"
    if isinstance(value, str):
        text = value.strip()
        if not (_INT_TEXT if hint is int else _FLOAT_TEXT).fullmatch(text):
            raise ConfigError(f"{where}: must be {kind}, got {value!r}")
        value = int(text) if hint is int else float(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and not isinstance(value, int)):
        raise ConfigError(f"{where}: must be {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # .inf, .nan, 1e309
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    if bounds is None:
        raise TypeError(f"the numeric setting {where} declares no bounds")
    _within(value, bounds, where)  # before float(): an int of 400 digits does not fit a float
    return float(value) if hint is float else value


def _within(value: Any, bounds: Bounds, where: str) -> Any:
    if not bounds.holds(value):
        shown = duration_text(value) if isinstance(value, timedelta) else f"{value!r}"
        shown = shown if len(shown) <= 40 else shown[:20] + "..." + shown[-5:]
        raise ConfigError(f"{where}: must be {bounds.describe()}, got {shown}")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_url(url: str, where: str) -> None:
    """A URL atlas can connect to: http(s), a host, a port in range, nothing after the host that looks like the rest
    of a password; the message shows the URL masked and never the parser's own text (it may quote a password's
    piece as a port)."""
    shown = mask(url)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise ConfigError(f"{where}: {shown!r} is not a URL (a bad IPv6 address)") from None
    require(parts.scheme in ("http", "https"), f"{where}: {shown!r} must start with http:// or https://")
    require(
        "@" not in urllib.parse.urlunsplit(("", "", parts.path, parts.query, parts.fragment)),
        f"{where}: {shown!r} has an '@' after its host; percent-encode '/', '?', '#' and '@' in a user or password"
        " (%2F, %3F, %23, %40)",
    )
    require(not re.search(r"\s", url), f"{where}: {shown!r} holds a space; percent-encode it (%20)")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: {shown!r} is not a URL (its port is not a number from 1 to 65535)") from None
    require(bool(parts.hostname), f"{where}: {shown!r} names no host")
    require(port is None or port > 0, f"{where}: {shown!r} has port 0")


def check_cloud_id(cloud_id: str) -> None:
    """Elastic Cloud ids are `<name>:<base64 of host$es-id$kibana-id>`."""
    name, sep, encoded = cloud_id.partition(":")
    try:
        decoded = base64.b64decode(encoded.encode(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        decoded = ""
    parts = decoded.split("$")
    require(
        bool(name and sep and len(parts) >= 2 and all(parts[:2])),
        "es.cloud_id: not an Elastic Cloud id (<name>:<base64 text>, as the deployment's page shows it)",
    )


def closest(name: str, known: Sequence[str], wider: Sequence[str] = ()) -> str:
    """`did you mean ...?` with the known names closest to `name` (difflib, whole or by the key after the section),
    looked for in `known` then `wider`; else the list of `known` names."""
    for names in (known, wider):
        # A shared section (`threshold.`) makes every key of it look alike: keys are compared after the section.
        ratios = {n: (_likeness(name.rpartition(".")[2], n.rpartition(".")[2]), _likeness(name, n)) for n in names}
        best = max((r[0] for r in ratios.values()), default=0.0)
        ranked = sorted(ratios, key=lambda n: ratios[n], reverse=True)
        matches = [n for n in ranked if ratios[n][0] >= max(0.6, best - 0.05)][:3]
        if matches:
            return "did you mean " + " or ".join(matches) + "?"
    return f"known: {', '.join(known)}" if len(known) <= 20 else "atlas config show lists every setting"


def _likeness(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


def declared_bounds(spec: dataclasses.Field[Any], hint: Any) -> Bounds | None:
    """The bounds a setting's value (or each of its items) keeps: declared, or DURATION for any duration."""
    bounds: Bounds | None = spec.metadata.get("bounds")
    return bounds or (DURATION if timedelta in (hint, *typing.get_args(hint)) else None)
