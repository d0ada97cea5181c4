"""JSON request bodies: one strict decoding for every JSON endpoint, so bad JSON is a 400 naming a field.

msgspec decodes (fast, and typed where a Struct is given). Two things it lets through are refused here:
nesting deep enough to exhaust the recursion limit (a RecursionError, which would otherwise be a 500),
and a key given twice in one object (msgspec silently keeps the last copy, so `{"touchpoint": "a",
"touchpoint": "b"}` would mean whatever the last copy says, unseen by anyone reading the body).
"""

import json
import sys
from typing import Any

import msgspec
from litestar import Request

from feedback.errors import InvalidInput

TOO_DEEP = "body: nested too deeply"


class _Repeated(Exception):
    """Raised inside the scanner at the first object that repeats a key."""


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1 and len(dict(pairs)) != len(pairs):
        raise _Repeated
    # The values are never used: returning nothing keeps the scan cheap.


class _Pairs(list):
    """An object as the list of its (key, value) pairs, kept only to find where a key repeats."""


# The stdlib's C scanner calls the hook once per object: about 1-2 µs for a typical response body.
_repeat_scanner = json.JSONDecoder(object_pairs_hook=_refuse_repeats)
_pairs_scanner = json.JSONDecoder(object_pairs_hook=_Pairs)
_any_decoder = msgspec.json.Decoder()


def refuse_repeated_keys(raw: bytes, keys_found: int | None = None) -> None:
    """Raise InvalidInput naming the repeated key (as a path, e.g. `answers.overall`) if any object in
    `raw`, which msgspec has already accepted as JSON, gives a key twice.

    `keys_found`: at least how many distinct keys the caller's decoding of `raw` found (see `keys_in`).
    Every key in JSON is followed by a colon, so when `raw` has exactly that many colons, no key can
    have been given twice, and the scan is skipped (the busiest route's bodies, which put no colon
    inside a string). A body too long to rule out an integer past Python's digit limit, which the scan
    refuses, is scanned all the same."""
    if keys_found is not None and raw.count(b":") == keys_found and _no_overlong_integer(raw):
        return
    try:
        _repeat_scanner.decode(raw.decode())
    except _Repeated:
        field = _repeated_path(_pairs_scanner.decode(raw.decode()), "") or "body"
        raise InvalidInput(f"{field}: given more than once", field) from None
    except RecursionError:
        raise InvalidInput(TOO_DEEP, "body") from None
    except ValueError as error:  # e.g. an integer longer than Python parses; msgspec took it as a float
        raise InvalidInput(f"body: {error}", "body") from None


def _no_overlong_integer(raw: bytes) -> bool:
    limit = sys.get_int_max_str_digits()
    return limit == 0 or len(raw) < limit


# Deeper than this, `keys_in` gives up and the caller's body is scanned (which refuses what is too deep).
_COUNTED_DEPTH = 32


def keys_in(value: Any, depth: int = 0) -> int | None:
    """The keys of every object in a decoded JSON value (a dict's keys are distinct: a key given twice
    counts once), or None when the value nests deeper than `_COUNTED_DEPTH`."""
    if depth > _COUNTED_DEPTH:
        return None
    if isinstance(value, dict):
        total = len(value)
        items = value.values()
    elif isinstance(value, list):
        total = 0
        items = value
    else:
        return 0
    for item in items:
        if isinstance(item, dict | list):
            inner = keys_in(item, depth + 1)
            if inner is None:
                return None
            total += inner
    return total


def _repeated_path(value: Any, path: str) -> str | None:
    if isinstance(value, _Pairs):
        seen: set[str] = set()
        for key, _ in value:
            if key in seen:
                return f"{path}.{key}" if path else key
            seen.add(key)
        items = ((f"{path}.{key}" if path else key, item) for key, item in value)
    elif isinstance(value, list):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for where, item in items:
        found = _repeated_path(item, where)
        if found:
            return found
    return None


def decode_json(raw: bytes) -> Any:
    """Any JSON value, or InvalidInput naming `body` (or the repeated key)."""
    try:
        value = _any_decoder.decode(raw)
    except RecursionError:
        raise InvalidInput(TOO_DEEP, "body") from None
    except msgspec.DecodeError as error:
        raise InvalidInput(f"body: {error}", "body") from None
    refuse_repeated_keys(raw)
    return value


class JSONBodyRequest(Request):
    """The app's request class: the body of every handler taking `data` is decoded by `decode_json`."""

    async def json(self) -> Any:
        return decode_json(await self.body() or b"null")
