"""The busiest route skips the scan for keys given twice when the body's colons are exactly the keys its
decoding found (`refuse_repeated_keys(raw, keys_found)`). Whatever the body, the answer must be the one
the full scan gives: checked here body by body against it, over bodies built to hit every way a colon
count could mislead (colons inside strings, escaped keys, keys given their default value, nesting)."""

from __future__ import annotations

import json
import random
import sys

import msgspec
import pytest

from feedback.errors import InvalidInput
from feedback.models import Submission
from feedback.web.api import _defaults_of, decode_submission
from feedback.web.json_body import keys_in, refuse_repeated_keys


def scanned(raw: bytes) -> str | None:
    """The field the full scan names, or None when it finds nothing wrong."""
    try:
        refuse_repeated_keys(raw)
    except InvalidInput as error:
        return error.field
    return None


def decoded(raw: bytes) -> str | None:
    try:
        decode_submission(raw)
    except InvalidInput as error:
        return error.field
    return None


# The contents of JSON strings as written in a body: with a colon, an escaped quote, an escaped colon.
TEXTS = ["tp-a", "a:b", r"x\":y", "2026-12-04T10:00:00+07:00", "ok", r"\u003a", r"{\"k\": 1}"]


def value(rng: random.Random, depth: int) -> str:
    kind = rng.randrange(5 if depth < 3 else 3)
    if kind == 0:
        return str(rng.randrange(1, 6))
    if kind == 1:
        return json.dumps(rng.choice(TEXTS)) if rng.random() < 0.3 else '"' + rng.choice(TEXTS) + '"'
    if kind == 2:
        return rng.choice(["true", "null", "1.5"])
    if kind == 3:
        return "[" + ", ".join(value(rng, depth + 1) for _ in range(rng.randrange(3))) + "]"
    return obj(rng, depth + 1, [f"k{n}" for n in range(4)])


def obj(rng: random.Random, depth: int, names: list[str]) -> str:
    keys = rng.sample(names, rng.randrange(1, len(names) + 1))
    if rng.random() < 0.3:
        keys.append(rng.choice(keys))  # a key given twice
    pairs = []
    for key in keys:
        spelt = key if rng.random() < 0.8 else "\\u00" + format(ord(key[0]), "x") + key[1:]
        gap = rng.choice(["", " ", "\n "])
        pairs.append(f'"{spelt}"{gap}:{gap}{value(rng, depth)}')
    return "{" + ",".join(pairs) + "}"


def body(rng: random.Random) -> bytes:
    fields = {
        "touchpoint": '"tp-a"',
        "answers": obj(rng, 1, ["overall", "reasons", "comment", "a:b"]),
        "id": '"0000abcd-0001-4000-8000-000000000123"',
        "lang": rng.choice(['"vi"', "null"]),
        "channel": rng.choice(['"api"', '"kiosk"']),
        "counter": rng.choice(['"3"', "null"]),
        "submitted_at": '"2026-12-04T10:00:00+07:00"',
    }
    keys = ["touchpoint", "answers", *rng.sample(list(fields)[2:], rng.randrange(6))]
    if rng.random() < 0.3:
        keys.append(rng.choice(keys))
    return ("{" + ", ".join(f'"{k}": {fields[k]}' for k in keys) + "}").encode()


def test_the_counted_check_answers_as_the_full_scan_on_every_body() -> None:
    rng = random.Random(20261204)
    seen = {"repeated": 0, "clean": 0}
    for _ in range(3_000):
        raw = body(rng)
        try:
            expected = scanned(raw)
        except Exception:  # noqa: BLE001 - a body the generator got wrong: not JSON at all
            continue
        got = decoded(raw)
        if got in (None, expected):
            assert got == expected, raw
            seen["repeated" if expected else "clean"] += 1
    # Both kinds came up often (the other answers are 400s for other fields, e.g. an unknown answer).
    assert seen["repeated"] > 300 and seen["clean"] > 300, seen


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"touchpoint": "tp-a", "answers": {"overall": 5}, "touchpoint": "tp-a"}', "touchpoint"),
        (b'{"touchpoint" : "tp-a", "touchpoint":"tp-b", "answers": {"overall": 5}}', "touchpoint"),
        (b'{"touchpoint": "tp-a", "channel": "api", "channel": "api", "answers": {"overall": 5}}', "channel"),
        (b'{"touchpoint": "tp-a", "lang": null, "lang": null, "answers": {"overall": 5}}', "lang"),
        (b'{"touchpoint": "tp-a", "answers": {"overall": 5, "comment": "a:b", "overall": 4}}', "answers.overall"),
        (b'{"touchpoint": "tp-a", "answers": {"overall": 5, "m": {"x": 1, "x": 2}}}', "answers.m.x"),
        (b'{"touchpoint": "tp-a", "answers": {"overall": 5}, "\\u0074ouchpoint": "tp-a"}', "touchpoint"),
    ],
)
def test_a_key_given_twice_is_named_however_the_body_counts_its_colons(raw: bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_submission(raw)
    assert refused.value.field == field


def test_an_integer_past_pythons_digit_limit_is_refused_as_the_scan_refuses_it() -> None:
    digits = "9" * (sys.get_int_max_str_digits() + 1)
    raw = ('{"touchpoint": "tp-a", "answers": {"overall": 5, "n": ' + digits + "}}").encode()
    assert raw.count(b":") == 4  # as many as its keys: the count alone would let it through
    with pytest.raises(InvalidInput) as refused:
        refuse_repeated_keys(raw, keys_found=4)
    assert refused.value.field == "body"
    with pytest.raises(InvalidInput):  # the route: msgspec refuses it first, naming the answers
        decode_submission(raw)


def test_nesting_past_the_counted_depth_is_left_to_the_scan() -> None:
    deep = "[" * 40 + '{"x": 1, "x": 2}' + "]" * 40
    assert keys_in(json.loads("[" * 40 + "{}" + "]" * 40)) is None
    with pytest.raises(InvalidInput) as refused:
        decode_submission(('{"touchpoint": "tp-a", "answers": {"overall": 5, "m": ' + deep + "}}").encode())
    assert refused.value.field.startswith("answers.m[0]") and refused.value.field.endswith(".x")


def test_the_count_refuses_a_body_struct_whose_default_is_not_a_plain_value() -> None:
    """A default factory's value differs from the factory: counted as given, it would let a repeat through."""

    class Later(msgspec.Struct, kw_only=True):
        touchpoint: str
        tags: list[str] = msgspec.field(default_factory=list)

    with pytest.raises(TypeError, match="plain defaults"):
        _defaults_of(Later)
    assert _defaults_of(Submission)[0] == 2  # touchpoint and answers
