"""atlas.masking.mask, the one function every printed or logged text goes through: URL credentials masked by their
place in any form a user may write them, and every remembered secret masked wherever it appears."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from atlas import masking
from atlas.masking import MASK, mask, remember, remember_urls


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    masking.forget()
    yield
    masking.forget()


M = MASK
BY_PLACE = {
    "a URL without credentials is unchanged": ("http://h:9200/x?y=1", "http://h:9200/x?y=1"),
    "user and password": ("https://elastic:pw@es.example:9200", f"https://{M}@es.example:9200"),
    "a user (token) alone": ("http://token@h", f"http://{M}@h"),
    "'/' in the password": ("http://u:pa/ss@h:9200/x", f"http://{M}@h:9200/x"),
    "'@' in the password": ("http://u:p@ss@h", f"http://{M}@h"),
    "':' in the password": ("http://u:a:b:c@h:1", f"http://{M}@h:1"),
    "'?' and '#' in the password": ("http://u:p?q#r@h", f"http://{M}@h"),
    "percent-escapes in the password": ("http://u:p%40ss%2F@h", f"http://{M}@h"),
    "an IPv6 host": ("http://u:pw@[::1]:9200", f"http://{M}@[::1]:9200"),
    "an upper-case scheme": ("HTTPS://u:pw@h", f"HTTPS://{M}@h"),
    "comma-separated URLs": (
        "http://a:x@h1:9200,https://b:y@h2:9200,http://h3",
        f"http://{M}@h1:9200,https://{M}@h2:9200,http://h3",
    ),
    "a URL quoted in an error line": ("es.urls[0]: 'http://u:pw@h' must", f"es.urls[0]: 'http://{M}@h' must"),
    "a client's request log": (
        "GET http://u:pw@h:9200/_search?q=a [status:200]",
        f"GET http://{M}@h:9200/_search?q=a [status:200]",
    ),
    "two URLs in a sentence": ("from http://a:x@h1 to http://b:y@h2 now", f"from http://{M}@h1 to http://{M}@h2 now"),
    "an e-mail address after a space is not a URL": ("at http://h:1 mail sre@example.com", None),
    "a space in the password": ("'http://u:pa ss@h' is bad", f"'http://{M}@h' is bad"),
    "a space after a word port and no '@'": ("'http://h:port' is bad", None),
    "a space in the password, next line kept": ("http://u:pa ss@h\nsre@example.com", f"http://{M}@h\nsre@example.com"),
    "an e-mail address alone is not a URL": ("sre@example.com", None),
    "an '@' in a path is masked too (the safe side)": ("http://h/a@b", f"http://{M}@b"),
    "a list's repr": ("['http://u:pw@h', 'http://v:pw2@i']", f"['http://{M}@h', 'http://{M}@i']"),
}


@pytest.mark.parametrize(("text", "expected"), BY_PLACE.values(), ids=BY_PLACE.keys())
def test_url_credentials_are_masked_by_their_place(text: str, expected: str | None) -> None:
    assert mask(text) == (text if expected is None else expected)


REMEMBERED = {
    "a URL without a scheme": (
        "elastic:canary-pw@h:9200",
        "es.urls[0]: 'elastic:canary-pw@h:9200' must start with http://",
        f"es.urls[0]: '{M}@h:9200' must start with http://",
    ),
    "a password cut by a comma": (
        "http://u:first-half,second-half@h",
        "es.urls[0]: 'http://u:first-half' is not a URL",
        f"es.urls[0]: 'http://u:{M}' is not a URL",
    ),
    "a password cut by a slash": (
        "http://u:first/second@h",
        "port 'first' and path /second",
        f"port '{M}' and path /{M}",
    ),
    "the percent-decoded password": ("http://u:pa%2Fss%40x@h", "password pa/ss@x", f"password {M}"),
    "a password with a space": ("http://u:can ary@h", "'http://u:can ary@h'", f"'http://{M}@h'"),
    "a comma-separated setting": ("http://h1,http://u:secret-2@h2", "quoted secret-2 alone", f"quoted {M} alone"),
}


@pytest.mark.parametrize(("url", "text", "expected"), REMEMBERED.values(), ids=REMEMBERED.keys())
def test_remembered_url_credentials_are_masked_anywhere(url: str, text: str, expected: str) -> None:
    remember_urls(url)
    assert mask(text) == expected


def test_a_remembered_api_key_is_masked_encoded_and_decoded() -> None:
    encoded = base64.b64encode(b"key-id:canary-api-key").decode()
    remember(encoded)
    assert mask(f"{encoded} key-id:canary-api-key canary-api-key") == f"{M} {M} {M}"


def test_a_remembered_secret_is_masked_in_any_text() -> None:
    remember("canary-smtp-pw")
    remember(None)
    assert mask("login canary-smtp-pw failed") == f"login {M} failed"


def test_short_secrets_are_masked_only_in_urls() -> None:
    remember("pw")
    remember_urls("http://u:pw@h")
    assert mask("pw here, http://u:pw@h there") == f"pw here, http://{M}@h there"


def test_forget_starts_afresh() -> None:
    remember("canary-smtp-pw")
    masking.forget()
    assert mask("canary-smtp-pw") == "canary-smtp-pw"


def test_a_raw_url_list_with_items_that_are_not_strings_still_has_its_urls_remembered() -> None:
    remember_urls([9200, None, "http://u:canary-list-pw@h"])  # as read from the file, before validation
    assert mask("canary-list-pw") == M
