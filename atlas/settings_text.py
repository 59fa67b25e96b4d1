"""Settings as text: the commented atlas.yml `atlas init` writes, the masked values `atlas config show` prints, and
the `--set KEY VALUE` overrides read from the command line."""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import yaml

from atlas.clock import format_duration
from atlas.errors import ConfigError
from atlas.masking import MASK, mask
from atlas.setting_values import closest, declared_bounds
from atlas.settings import Settings, load_settings, sections


def plain_value(value: Any) -> Any:
    """A setting value as YAML/JSON would spell it (durations as `1h`, tuples as lists)."""
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple):
        return [plain_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain_value(v) for k, v in value.items()}
    return value


def effective_settings(s: Settings) -> dict[str, dict[str, Any]]:
    """The settings as plain data for display, secrets replaced by a mask (or null when unset)."""
    shown: dict[str, dict[str, Any]] = {}
    for name, _ in sections():
        section = getattr(s, name)
        shown[name] = {}
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if f.metadata.get("secret") and value is not None:
                value = MASK
            elif f.metadata.get("urls"):
                value = tuple(map(mask, value)) if isinstance(value, tuple) else mask(value)
            shown[name][f.name] = plain_value(value)
    return shown


def render_config_file(overrides: Mapping[str, Any] | None = None) -> str:
    """A commented atlas.yml holding every setting at its default, or at its value in `overrides` (dotted keys, a
    preset's: validated first); loading it gives those settings. The environment is not written into it."""
    lines = [
        "# atlas configuration. Every key is shown at its default; delete what you do not change.",
        "# Secrets are never read from this file: set them in the environment variables named below.",
    ]
    chosen = overrides or {}
    preset, defaults = load_settings(None, chosen) if chosen else Settings(), Settings()
    for name, cls in sections():
        lines += ["", f"{name}:"]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            source = preset if f"{name}.{f.name}" in chosen else defaults
            value = getattr(getattr(source, name), f.name)
            env = f.metadata.get("env")
            bounds = declared_bounds(f, hints[f.name])
            help_text = f.metadata["help"] + (f"; {bounds.describe()}" if bounds else "")
            help_text += f" (environment: {env})" if env else ""
            lines.append(f"  # {help_text}")
            if f.metadata.get("secret"):
                lines.append(f"  # {f.name}: set {env} instead")
                continue
            dumped = yaml.safe_dump({f.name: plain_value(value)}, default_flow_style=True)
            lines.append("  " + dumped.strip()[1:-1].strip())
    return "\n".join(lines) + "\n"


def parse_assignments(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """`--set KEY VALUE` pairs as `load_settings` overrides. VALUE is text as the environment gives it: a number,
    a duration, true/false, a name; a list as `a,b,c` or JSON (`[90, 99]`), a mapping as JSON; `null` clears a
    setting that may be null. Secrets are refused: they are read only from the environment."""
    fields = {f"{name}.{f.name}": (f, typing.get_type_hints(cls)[f.name]) for name, cls in sections()
              for f in dataclasses.fields(cls)}  # fmt: skip
    overrides: dict[str, Any] = {}
    for key, text in pairs:
        if key not in fields:
            raise ConfigError(f"--set: unknown setting {key!r} ({closest(key, list(fields))})")
        spec, hint = fields[key]
        if spec.metadata.get("secret"):
            raise ConfigError(f"--set {key}: secrets are read only from the environment ({spec.metadata['env']})")
        overrides[key] = _from_text(text, hint, f"--set {key}")
    return overrides


def _from_text(text: str, hint: Any, where: str) -> Any:
    """A setting's value from command-line text, for `_coerce` to check."""
    args = typing.get_args(hint)
    if type(None) in args and text.strip() == "null":
        return None
    base = next((a for a in args if a is not type(None)), hint) if type(None) in args else hint
    origin = typing.get_origin(base)
    if origin is tuple and not text.lstrip().startswith("["):
        return [item.strip() for item in text.split(",")] if text.strip() else []
    if origin in (tuple, Mapping, dict):
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            raise ConfigError(f"{where}: not JSON (a list as a,b,c or [..], a mapping as {{..}})") from None
    return text
