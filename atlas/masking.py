"""Secrets never printed: `mask` is the one function every text atlas prints or logs goes through (error lines and
their causes, log records of atlas and of the Elasticsearch client and urllib3, `config show`'s URLs, Kibana and
Elasticsearch targets named in messages).

It masks two things:
- the userinfo of every URL in the text, by position: from after `scheme://` to the last `@` before the next
  whitespace or the next `scheme://`, so a password holding `/`, `@`, `:`, `?`, `#`, `,` or `%`-escapes is masked
  whole, whatever the host (a name, IPv4, `[IPv6]`) and however many URLs the text holds;
- every secret atlas has read in this process (`remember`, `remember_urls`: the settings loader calls them for the
  secret settings and for the credentials of every URL setting, before any check can quote them), wherever it
  appears: a URL without a scheme, a password cut in two by a misplaced `/` or `,`, a percent-encoded copy.

Secrets shorter than 4 characters are masked only by their place in a URL (masking every `pw` in every line would
garble the output)."""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Iterable

MASK = "********"
_MIN_LENGTH = 4
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PIECES = re.compile(r"[,/?#@\s]+")  # where a password is cut when a URL is split or parsed wrongly
_SPACE = re.compile(r"\s")
_known: set[str] = set()


def mask(text: str) -> str:
    """`text` with the credentials of every URL in it, and every remembered secret, replaced by `********`."""
    text = _mask_userinfo(text)
    for secret in sorted(_known, key=len, reverse=True):  # longest first: a piece never unmasks its whole
        text = text.replace(secret, MASK)
    return text


def remember(secret: str | None) -> None:
    """Mask this secret (its whole, its percent-encoded and -decoded forms, an API key's decoded id:key) from now on."""
    if not secret:
        return
    forms = {secret, urllib.parse.unquote(secret), urllib.parse.quote(secret, safe="")}
    try:
        decoded = base64.b64decode(secret.encode(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        decoded = ""
    if ":" in decoded:  # an Elasticsearch API key: base64 of id:key
        forms |= {decoded, decoded.split(":", 1)[1]}
    _known.update(form for form in forms if len(form) >= _MIN_LENGTH)


def remember_urls(value: str | Iterable[object]) -> None:
    """Remember the credentials in a URL setting (one URL, a comma-separated list, or a list): the userinfo, its
    password, and the pieces a misplaced `/`, `,`, `?` or `#` would cut the password into. The list is the raw one
    read from the file, before validation: items that are not strings are skipped (validation names them)."""
    for url in [value] if isinstance(value, str) else value:
        if not isinstance(url, str):
            continue
        for userinfo in _userinfos(url, within_spaces=True):
            password = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
            for secret in (userinfo, password, *_PIECES.split(password)):
                remember(secret)


def forget() -> None:
    """Forget every remembered secret (each command line starts afresh)."""
    _known.clear()


def _userinfos(url: str, within_spaces: bool) -> list[str]:
    """The userinfo of each URL in `url`; a URL without a scheme counts from its first character."""
    starts = [m.end() for m in _SCHEME.finditer(url)] or [0]
    found = []
    for start, end in _regions(url, starts, within_spaces):
        at = url.rfind("@", start, end)
        if at > start:
            found.append(url[start:at])
    return found


def _regions(text: str, starts: list[int], within_spaces: bool = False) -> list[tuple[int, int]]:
    """For each start (just after a `scheme://`), where its URL can end: the next scheme, and before it the next
    whitespace, unless the text is known to be URLs only, or what comes before that space is a password cut by it
    (`http://user:pass word@host`: a "port" that is not a number), where the end of the line bounds it."""
    scheme_starts = [m.start() for m in _SCHEME.finditer(text)]
    regions = []
    for start in starts:
        end = min([len(text), *(s for s in scheme_starts if s >= start)])
        space = None if within_spaces else _SPACE.search(text, start, end)
        if space is not None:
            before = text[start : space.start()]
            cut = "@" not in before and _has_word_port(before)
            newline = text.find("\n", start, end)
            end = (newline if newline >= 0 else end) if cut else space.start()
        regions.append((start, end))
    return regions


def _has_word_port(url_tail: str) -> bool:
    """Whether the authority at the start of `url_tail` (after `scheme://`) has a port that is not a number."""
    authority = re.split(r"[/?#]", url_tail, maxsplit=1)[0]
    port = authority.partition("]")[2][1:] if authority.startswith("[") else authority.partition(":")[2]
    return bool(port) and not port.isdigit()


def _mask_userinfo(text: str) -> str:
    starts = [m.end() for m in _SCHEME.finditer(text)]
    pieces, done = [], 0
    for start, end in _regions(text, starts):
        at = text.rfind("@", start, end)
        if at > start:
            pieces += [text[done:start], MASK]
            done = at
    return "".join(pieces) + text[done:]
