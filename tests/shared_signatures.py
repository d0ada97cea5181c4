"""Route handler signatures shared by the apps one test process builds.

For every app it builds, Litestar reads each route handler's signature again (`inspect`, type hints,
one `FieldDefinition` per parameter) and builds a msgspec struct type for its parameters: a third of
an app's build. A test process builds hundreds of apps (an in-process server per test), from the same
handler functions, so the first app of the process computes both and later apps reuse them. Both are
pure functions of what the key below holds: a handler's code, defaults, annotations and globals, and
the types its layers name (`signature_namespace`); a struct type additionally of the dependency names,
type decoders and DTO of the handler's layers. A product process builds one app and never calls this.

`tests/test_app_creation.py` checks that an app built this way has the same routes, parameter models
and OpenAPI document as one built without."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from litestar._signature.model import SignatureModel
from litestar.utils.signature import ParsedSignature

_ORIGINAL_PARSE = ParsedSignature.from_fn.__func__  # type: ignore[attr-defined]
_ORIGINAL_MODEL = SignatureModel.create.__func__  # type: ignore[attr-defined]
_parsed: dict[tuple, tuple[ParsedSignature, tuple]] = {}
_models: dict[tuple, tuple[type[SignatureModel], ParsedSignature]] = {}


def _parse_key(fn: Callable[..., Any], namespace: dict[str, Any]) -> tuple[tuple, tuple] | None:
    """What a parsed signature depends on, by identity (hashing an `Annotated` hashes its metadata
    field by field, which cost more than the parse saved), and those objects, which the cache entry
    holds so that no id in its key is reused meanwhile; None for a callable without code."""
    fn = getattr(fn, "__func__", fn)  # a controller's handler is bound to a new controller per app
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    kwdefaults = fn.__kwdefaults__ or {}
    held = (
        fn.__globals__,
        fn.__defaults__,
        tuple(kwdefaults.items()),
        tuple(fn.__annotations__.items()),
        getattr(fn, "__wrapped__", None),
        tuple(namespace.items()),
    )
    key = (
        code,
        id(fn.__globals__),
        tuple(map(id, fn.__defaults__ or ())),
        tuple((name, id(value)) for name, value in kwdefaults.items()),
        tuple((name, id(value)) for name, value in fn.__annotations__.items()),
        id(held[4]),
        tuple((name, id(value)) for name, value in namespace.items()),
    )
    return key, held


def _shared_parse(cls: type[ParsedSignature], fn: Callable[..., Any], signature_namespace: dict[str, Any]) -> Any:
    found = _parse_key(fn, signature_namespace)
    if found is None:
        return _ORIGINAL_PARSE(cls, fn, signature_namespace)
    key, held = found
    entry = _parsed.get(key)
    if entry is None:
        entry = _parsed[key] = (_ORIGINAL_PARSE(cls, fn, signature_namespace), held)
    return entry[0]


def _shared_model(
    cls: type[SignatureModel],
    dependency_name_set: set[str],
    fn: Callable[..., Any],
    parsed_signature: ParsedSignature,
    type_decoders: Any,
    data_dto: Any = None,
) -> type[SignatureModel]:
    # The parsed signature is keyed by identity: the entry holds it, so its id is never reused meanwhile.
    key = (
        cls,
        frozenset(dependency_name_set),
        getattr(fn, "__name__", None),
        getattr(fn, "__module__", None),
        id(parsed_signature),
        tuple(type_decoders or ()),
        data_dto,
    )
    try:
        found = _models.get(key)
    except TypeError:
        return _ORIGINAL_MODEL(cls, dependency_name_set, fn, parsed_signature, type_decoders, data_dto)
    if found is None:
        model = _ORIGINAL_MODEL(cls, dependency_name_set, fn, parsed_signature, type_decoders, data_dto)
        found = _models[key] = (model, parsed_signature)
    return found[0]


def _install(parse: Callable[..., Any], create: Callable[..., Any]) -> None:
    ParsedSignature.from_fn = classmethod(parse)  # type: ignore[method-assign, assignment]
    SignatureModel.create = classmethod(create)  # type: ignore[method-assign, assignment]


def share_handler_signatures() -> None:
    """From now on, apps built in this process reuse the handler signatures and parameter models of
    the apps built before them."""
    _install(_shared_parse, _shared_model)


@contextmanager
def unshared_handler_signatures() -> Iterator[None]:
    """Build apps meanwhile as Litestar does by itself (each computes its own)."""
    before = ParsedSignature.__dict__["from_fn"].__func__, SignatureModel.__dict__["create"].__func__
    _install(_ORIGINAL_PARSE, _ORIGINAL_MODEL)
    try:
        yield
    finally:
        _install(*before)
