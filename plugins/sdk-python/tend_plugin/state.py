"""A plugin's per-device state in and out of the bytes the host keeps.

The state is a dataclass; `encode` writes it as compact JSON (field names as keys,
in declaration order), `decode` reads it back by the type hints. Like the Rust SDK's
`#[serde(default)]` states, a field missing from the stored bytes takes its default
and unknown keys are ignored, so adding a field (with a default) keeps old states
readable. Supported field types: `int`, `float`, `bool`, `str`, `Optional[...]`,
`List` / `Deque` / `Tuple` / `Dict[str, ...]` of them, nested dataclasses (`Held`,
`ChangeSinceOn`, your own) and `Window` (of JSON values).

A state written this way is byte-for-byte what serde_json writes for the same fields
in the Rust SDK, so a Python port of a Rust plugin can read its predecessor's state.
"""

import dataclasses
import json
import types
import typing
from collections import deque
from typing import Any, Callable, Dict, List, Tuple, Type, TypeVar

from .errors import BadState
from .payload import loads
from .time import Window

__all__ = ["encode", "decode"]

S = TypeVar("S")

_Decoder = Callable[[Any], Any]


_FIELD_NAMES: Dict[type, Tuple[str, ...]] = {}


def _plain(v: Any) -> Any:
    """`v` as plain JSON values."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    names = _FIELD_NAMES.get(type(v))
    if names is not None:
        return {n: _plain(getattr(v, n)) for n in names}
    if isinstance(v, Window):
        return {"items": [[t, _plain(x)] for t, x in v.items]}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        _FIELD_NAMES[type(v)] = tuple(f.name for f in dataclasses.fields(v))
        return _plain(v)
    if isinstance(v, (list, tuple, deque)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    raise TypeError(f"cannot store a {type(v).__name__} in plugin state")


def encode(state: Any) -> bytes:
    """The state as compact JSON bytes."""
    try:
        return json.dumps(_plain(state), separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as e:
        raise BadState(f"cannot encode the state: {e}") from None


def decode(cls: Type[S], data: bytes) -> S:
    """Reads a state written by `encode` (BadState when it does not fit `cls`)."""
    try:
        v = loads(data)
        out: S = _decoder(cls)(v)
        return out
    except BadState:
        raise
    except (ValueError, TypeError, KeyError, RecursionError, OverflowError) as e:
        raise BadState(str(e)) from None


_CACHE: Dict[Any, _Decoder] = {}


def _decoder(tp: Any) -> _Decoder:
    d = _CACHE.get(tp)
    if d is None:
        d = _make(tp)
        _CACHE[tp] = d
    return d


def _fail(what: str, v: Any) -> BadState:
    return BadState(f"expected {what}, got {json.dumps(v)[:64]}")


def _make(tp: Any) -> _Decoder:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return lambda v: v
    if tp is bool:

        def dec_bool(v: Any) -> Any:
            if v is True or v is False:
                return v
            raise _fail("a boolean", v)

        return dec_bool
    if tp is int:

        def dec_int(v: Any) -> Any:
            if type(v) is int:
                return v
            raise _fail("an integer", v)

        return dec_int
    if tp is float:

        def dec_float(v: Any) -> Any:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
            raise _fail("a number", v)

        return dec_float
    if tp is str:

        def dec_str(v: Any) -> Any:
            if isinstance(v, str):
                return v
            raise _fail("a string", v)

        return dec_str
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"state field type {tp}: only Optional[X] unions are supported")
        d = _decoder(inner[0])
        return lambda v: None if v is None else d(v)
    if origin in (list, List, deque, typing.Deque):
        d = _decoder(args[0] if args else Any)
        make: Callable[[Any], Any] = deque if origin in (deque, typing.Deque) else list

        def dec_seq(v: Any) -> Any:
            if not isinstance(v, list):
                raise _fail("an array", v)
            return make(d(x) for x in v)

        return dec_seq
    if origin is tuple:
        ds = [_decoder(a) for a in args]

        def dec_tuple(v: Any) -> Any:
            if not isinstance(v, list) or len(v) != len(ds):
                raise _fail(f"an array of {len(ds)}", v)
            return tuple(d(x) for d, x in zip(ds, v))

        return dec_tuple
    if origin is dict:
        d = _decoder(args[1] if len(args) == 2 else Any)

        def dec_dict(v: Any) -> Any:
            if not isinstance(v, dict):
                raise _fail("an object", v)
            return {k: d(x) for k, x in v.items()}

        return dec_dict
    base = origin if origin is not None else tp
    if base is Window:

        def dec_window(v: Any) -> Any:
            if not isinstance(v, dict) or not isinstance(v.get("items", []), list):
                raise _fail("a window", v)
            w: Window[Any] = Window()
            for item in v.get("items", []):
                if not isinstance(item, list) or len(item) != 2 or type(item[0]) is not int:
                    raise _fail("a [ts, value] pair", item)
                w.items.append((item[0], item[1]))
            return w

        return dec_window
    if isinstance(base, type) and dataclasses.is_dataclass(base):
        hints = typing.get_type_hints(base)
        fields = [(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(base) if f.init]

        def dec_dataclass(v: Any) -> Any:
            if not isinstance(v, dict):
                raise _fail(f"a {base.__name__}", v)
            kwargs = {name: d(v[name]) for name, d in fields if name in v}
            return base(**kwargs)

        return dec_dataclass
    raise TypeError(f"state field type {tp} is not supported")
