"""JSON payload access that tells a *missing* field from one that is *not a number*.

    p = Payload.parse(message.payload)         # BadPayload unless a JSON object
    v = p.number("battery_v")                  # a Field[float]
    if v.is_value: ...                         # present and a finite number
    door = p.boolean("door_open").required()   # BadPayload "`door_open` is missing"
    volts = p.number("battery_v").optional()   # None when absent, BadPayload when not a number

Parsing follows tend's Rust SDK (serde_json): `NaN` / `Infinity` literals are not
JSON (a number beyond the float range is an invalid field); `null` counts as missing; booleans accept 0 / 1
as vendors commonly send them; a float with no fractional part is an integer.
"""

import json
import math
from typing import Any, Dict, Generic, List, Optional, TypeVar

from .errors import BadPayload

__all__ = ["Field", "Payload", "VALUE", "MISSING", "INVALID"]

T = TypeVar("T")

#: `Field.kind` of a field present with the expected type.
VALUE = 0
#: `Field.kind` of an absent field (or JSON `null`).
MISSING = 1
#: `Field.kind` of a field present with the wrong type (a string where a number belongs ...).
INVALID = 2

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1


class Field(Generic[T]):
    """A field read from a payload: its value, or why there is none."""

    __slots__ = ("name", "kind", "_value", "_what")

    def __init__(self, name: str, kind: int, value: Optional[T], what: str) -> None:
        self.name = name
        self.kind = kind
        self._value = value
        self._what = what

    @property
    def is_value(self) -> bool:
        """Present and valid."""
        return self.kind == VALUE

    @property
    def is_missing(self) -> bool:
        """Absent or `null`."""
        return self.kind == MISSING

    @property
    def is_invalid(self) -> bool:
        """Present with the wrong type."""
        return self.kind == INVALID

    def ok(self) -> Optional[T]:
        """The value if present and valid, else None."""
        return self._value if self.kind == VALUE else None

    def required(self) -> T:
        """The value; BadPayload naming the field when it is missing or invalid."""
        if self.kind == VALUE:
            return self._value  # type: ignore[return-value]
        raise self._error()

    def optional(self) -> Optional[T]:
        """The value, None when missing; BadPayload naming the field when invalid."""
        if self.kind == INVALID:
            raise self._error()
        return self._value if self.kind == VALUE else None

    def _error(self) -> BadPayload:
        if self.kind == MISSING:
            return BadPayload(f"`{self.name}` is missing")
        return BadPayload(f"`{self.name}` is not {self._what}")

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Field)
            and (self.kind, self._value) == (other.kind, other._value)
        )

    def __repr__(self) -> str:
        state = {VALUE: repr(self._value), MISSING: "missing", INVALID: "invalid"}[self.kind]
        return f"Field({self.name!r}: {state})"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads(data: bytes) -> Any:
    """Parses JSON bytes; ValueError when it is not JSON (`NaN` and `Infinity` are not).

    Unlike serde_json, a number beyond the float range is read (as an infinite float
    or a huge integer) rather than refused: the field accessors call it invalid.
    """
    return _DECODER.decode(data.decode("utf-8"))


def kind_of(v: Any) -> str:
    """What a JSON value is, for error messages ("a number", "an array" ...)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


class Payload:
    """A decoded JSON object payload."""

    __slots__ = ("fields",)

    def __init__(self, fields: Dict[str, Any]) -> None:
        self.fields = fields

    @staticmethod
    def parse(data: bytes) -> "Payload":
        """Parses payload bytes; anything but a JSON object is BadPayload."""
        try:
            v = loads(data)
        except (ValueError, RecursionError) as e:
            raise BadPayload(f"not JSON: {e}") from None
        if not isinstance(v, dict):
            raise BadPayload(f"expected a JSON object, got {kind_of(v)}")
        return Payload(v)

    def get(self, name: str) -> Any:
        """The raw value of a field (None when absent or null)."""
        return self.fields.get(name)

    def number(self, name: str) -> Field[float]:
        """A finite number (integers included)."""
        v = self.fields.get(name)
        if v is None:
            return Field(name, MISSING, None, "a number")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return Field(name, INVALID, None, "a number")
        try:
            x = float(v)
        except OverflowError:  # an integer beyond the float range
            return Field(name, INVALID, None, "a number")
        if not math.isfinite(x):
            return Field(name, INVALID, None, "a number")
        return Field(name, VALUE, x, "a number")

    def boolean(self, name: str) -> Field[bool]:
        """`true` / `false`; the integers 0 and 1 are accepted."""
        v = self.fields.get(name)
        if v is None:
            return Field(name, MISSING, None, "a boolean")
        if v is True or v is False:
            return Field(name, VALUE, v, "a boolean")
        if type(v) is int and (v == 0 or v == 1):
            return Field(name, VALUE, v == 1, "a boolean")
        return Field(name, INVALID, None, "a boolean")

    def integer(self, name: str) -> Field[int]:
        """A 64-bit integer (a float with no fractional part below 9e15 is accepted)."""
        v = self.fields.get(name)
        if v is None:
            return Field(name, MISSING, None, "an integer")
        if type(v) is int and _I64_MIN <= v <= _I64_MAX:
            return Field(name, VALUE, v, "an integer")
        if type(v) is float and math.isfinite(v) and v == math.floor(v) and abs(v) < 9.0e15:
            return Field(name, VALUE, int(v), "an integer")
        return Field(name, INVALID, None, "an integer")

    def string(self, name: str) -> Field[str]:
        """A string."""
        v = self.fields.get(name)
        if v is None:
            return Field(name, MISSING, None, "a string")
        if isinstance(v, str):
            return Field(name, VALUE, v, "a string")
        return Field(name, INVALID, None, "a string")

    def array(self, name: str) -> Field[List[Any]]:
        """An array (of raw JSON values)."""
        v = self.fields.get(name)
        if v is None:
            return Field(name, MISSING, None, "an array")
        if isinstance(v, list):
            return Field(name, VALUE, v, "an array")
        return Field(name, INVALID, None, "an array")
