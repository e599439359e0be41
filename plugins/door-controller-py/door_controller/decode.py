"""Decoding of the reference door-controller payloads (telemetry.md).

Decoding happens before any state changes, so an invalid payload leaves the
device's state untouched.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from tend_plugin import BadPayload, Payload


@dataclass(frozen=True)
class Reading:
    """One telemetry reading."""

    door_open: bool
    locked: bool
    fire_door: Optional[bool]
    battery_v: Optional[float]
    mains_ok: Optional[bool]
    tamper: Optional[bool]
    cycles_total: Optional[int]

    @staticmethod
    def decode(p: Payload) -> "Reading":
        """A missing required field, or any known field with the wrong type, is
        BadPayload naming the field."""
        cycles_total = p.integer("cycles_total").optional()
        if cycles_total is not None and cycles_total < 0:
            raise BadPayload(f"`cycles_total` must not be negative, got {cycles_total}")
        return Reading(
            door_open=p.boolean("door_open").required(),
            locked=p.boolean("locked").required(),
            fire_door=p.boolean("fire_door").optional(),
            battery_v=p.number("battery_v").optional(),
            mains_ok=p.boolean("mains_ok").optional(),
            tamper=p.boolean("tamper").optional(),
            cycles_total=cycles_total,
        )


class DoorEvent(Enum):
    """A discrete event of the door controller."""

    ACCESS_GRANTED = "access_granted"
    ACCESS_DENIED = "access_denied"
    DOOR_OPENED = "door_opened"
    DOOR_CLOSED = "door_closed"
    FORCED_OPEN = "forced_open"
    LOCK_FAULT = "lock_fault"

    @staticmethod
    def decode(p: Payload) -> "DoorEvent":
        """`{"ts": .., "event": NAME}`; an unknown NAME is BadPayload."""
        name = p.string("event").required()
        event = _BY_NAME.get(name)
        if event is None:
            raise BadPayload(f"unknown event `{clip(name)}`")
        return event


_BY_NAME = {e.value: e for e in DoorEvent}


def clip(s: str) -> str:
    """At most 64 characters of untrusted text, for error messages."""
    return s if len(s) <= 64 else s[:64] + "…"
