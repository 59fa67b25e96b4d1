"""Settings as text: the commented atlas.yml `atlas init` writes and the masked values `atlas config show` prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import yaml

from atlas.clock import format_duration
from atlas.masking import MASK, mask
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
    for name, _ in sections():
        lines += ["", f"{name}:"]
        for f in dataclasses.fields(getattr(defaults, name)):
            source = preset if f"{name}.{f.name}" in chosen else defaults
            value = getattr(getattr(source, name), f.name)
            env = f.metadata.get("env")
            help_text = f.metadata["help"] + (f" (environment: {env})" if env else "")
            lines.append(f"  # {help_text}")
            if f.metadata.get("secret"):
                lines.append(f"  # {f.name}: set {env} instead")
                continue
            dumped = yaml.safe_dump({f.name: plain_value(value)}, default_flow_style=True)
            lines.append("  " + dumped.strip()[1:-1].strip())
    return "\n".join(lines) + "\n"
