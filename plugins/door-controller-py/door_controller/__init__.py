"""tend equipment plugin for door controllers (fire and security doors), in Python.

The same rules as the Rust plugin (plugins/door-controller): decodes the reference
door-controller telemetry and events (telemetry.md) and raises `door_held_open`,
`forced_open`, `lock_fault`, `mains_failure`, `battery_low`, `tamper` and
`reader_suspect`; reports the `door_cycles` meter (the telemetry's `cycles_total`)
and declares the semiannual, yearly fire-certification and 50,000-cycle hardware
inspections. Its outcomes and states are identical to the Rust plugin's, message for
message (tests/integration/python.rs).

Settings (per-device inventory overrides of the defaults): `held_open_fire_s` (60),
`held_open_s` (300), `battery_low_v` (11.5), `battery_critical_v` (10.5),
`reader_denied_count` (10), `reader_window_s` (60), `forced_grace_s` (10),
`lock_delay_s` (10), `fire_door` (false).
"""

from tend_plugin import (
    Description,
    Device,
    Message,
    MessageKind,
    Outcome,
    Payload,
    Plugin,
    outcome,
)

from .config import Config
from .decode import DoorEvent, Reading
from .describe import ALL_CODES, DOOR_CYCLES, description
from .rules import State, on_event, on_reading

__all__ = ["DoorController", "State", "Config", "ALL_CODES", "DOOR_CYCLES"]

#: Latest event time accepted as is (about year 144,000); later or earlier times are
#: clamped so no duration arithmetic can overflow (in the Rust plugin's i64).
TS_LIMIT_MS = 1 << 52


class DoorController(Plugin[State]):
    """The door-controller plugin."""

    state_type = State

    def describe(self) -> Description:
        return description()

    def evaluate(self, device: Device, message: Message, state: State) -> Outcome:
        kind = message.kind
        if kind == MessageKind.STATUS:
            # "online" / "offline": the host handles presence.
            return outcome()
        cfg = Config.from_device(device)
        payload = Payload.parse(message.payload)
        ts = min(max(message.ts_ms, -TS_LIMIT_MS), TS_LIMIT_MS)
        if kind == MessageKind.TELEMETRY:
            return on_reading(cfg, Reading.decode(payload), ts, state)
        return on_event(cfg, DoorEvent.decode(payload), ts, state)
