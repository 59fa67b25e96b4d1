"""Where alerts go, checked when settings load: a Slack webhook URL, an SMTP host, email addresses."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from atlas.errors import ConfigError

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LOOPBACK_NAMES = ("localhost",)


def is_host(text: str) -> bool:
    """Whether `text` is a host name (letters, digits, hyphens in dot-separated labels) or an IP address."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    name = text[:-1] if text.endswith(".") else text
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def check_host(host: str, where: str) -> None:
    """An SMTP server's host: a name or an IP address, without scheme or port (the port has its own setting)."""
    if not is_host(host):
        raise ConfigError(f"{where}: {host!r} is not a host name or IP address (no scheme, no port)")


def check_address(address: str, where: str) -> None:
    """An email address as atlas writes it into From and To: local-part@host, no display name."""
    local, at, domain = address.rpartition("@")
    if not (at and len(address) <= 254 and _LOCAL_PART.fullmatch(local) and is_host(domain)):
        raise ConfigError(f"{where}: {address!r} is not an email address (name@host)")


def check_webhook(url: str, where: str) -> None:
    """A Slack webhook: https:// with a host (http:// only to this machine, e.g. a local relay). The URL is a
    secret: the message names the setting, never the value."""
    problem = f"{where}: must be an https:// URL with a host (the value is a secret and is not shown)"
    try:
        parts = urllib.parse.urlsplit(url)
        port, host = parts.port, parts.hostname or ""
    except ValueError:
        raise ConfigError(problem) from None
    secure = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host))
    if not (secure and host and is_host(host) and port != 0) or any(c.isspace() for c in url):
        raise ConfigError(problem)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
