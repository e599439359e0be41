"""Thresholds, read from the device's inventory settings with the spec's defaults."""

import math
from dataclasses import dataclass

from tend_plugin import BadSettings, Device, num, settings

#: Default seconds a fire door may stand open (`held_open_fire_s`).
HELD_OPEN_FIRE_S = 60.0
#: Default seconds any other door may stand open (`held_open_s`).
HELD_OPEN_S = 300.0
#: Default battery voltage below which `battery_low` is level 3 (`battery_low_v`).
BATTERY_LOW_V = 11.5
#: Default battery voltage below which `battery_low` is level 2 (`battery_critical_v`).
BATTERY_CRITICAL_V = 10.5
#: Default number of denials that make the reader suspect (`reader_denied_count`).
READER_DENIED_COUNT = 10.0
#: Default window for counting denials, in seconds (`reader_window_s`).
READER_WINDOW_S = 60.0
#: Default seconds an `access_granted` legitimises an opening (`forced_grace_s`).
FORCED_GRACE_S = 10.0
#: Default seconds a closed door may stay unlocked (`lock_delay_s`).
LOCK_DELAY_S = 10.0

_I64_MAX = (1 << 63) - 1


def secs_to_ms(s: float) -> int:
    """Seconds (finite, non-negative) to milliseconds: rounded half away from zero and
    saturating at the 64-bit limit, as the Rust plugin's `(s * 1000.0).round() as i64`."""
    x = s * 1000.0
    whole = math.floor(x)
    ms = whole + 1 if x - whole >= 0.5 else whole
    return min(int(ms), _I64_MAX)


@dataclass(frozen=True)
class Config:
    """The thresholds in force for one device (durations in milliseconds)."""

    held_open_fire_ms: int = secs_to_ms(HELD_OPEN_FIRE_S)
    held_open_ms: int = secs_to_ms(HELD_OPEN_S)
    battery_low_v: float = BATTERY_LOW_V
    battery_critical_v: float = BATTERY_CRITICAL_V
    reader_denied_count: int = int(READER_DENIED_COUNT)
    reader_window_ms: int = secs_to_ms(READER_WINDOW_S)
    forced_grace_ms: int = secs_to_ms(FORCED_GRACE_S)
    lock_delay_ms: int = secs_to_ms(LOCK_DELAY_S)
    #: The inventory says this is a fire door (used when telemetry lacks `fire_door`).
    fire_door: bool = False

    @staticmethod
    def from_device(device: Device) -> "Config":
        """Reads the device's settings; a wrong type or a negative duration is
        BadSettings naming the key."""
        cached = _CACHE.get(device.settings)
        if cached is not None:
            return cached
        s = settings(device)

        def secs(key: str, default: float) -> int:
            v = s.number_or(key, default)
            if v < 0.0:
                raise BadSettings(f"setting `{key}` must not be negative, got {num(v)}")
            return secs_to_ms(v)

        count = s.number_or("reader_denied_count", READER_DENIED_COUNT)
        if count < 1.0:
            raise BadSettings(
                f"setting `reader_denied_count` must be at least 1, got {num(count)}"
            )
        cfg = Config(
            held_open_fire_ms=secs("held_open_fire_s", HELD_OPEN_FIRE_S),
            held_open_ms=secs("held_open_s", HELD_OPEN_S),
            battery_low_v=s.number_or("battery_low_v", BATTERY_LOW_V),
            battery_critical_v=s.number_or("battery_critical_v", BATTERY_CRITICAL_V),
            reader_denied_count=math.ceil(count),
            reader_window_ms=secs("reader_window_s", READER_WINDOW_S),
            forced_grace_ms=secs("forced_grace_s", FORCED_GRACE_S),
            lock_delay_ms=secs("lock_delay_s", LOCK_DELAY_S),
            fire_door=s.boolean_or("fire_door", False),
        )
        if len(_CACHE) >= 256:
            _CACHE.clear()
        _CACHE[device.settings] = cfg
        return cfg


#: Configs by settings text: a site has few distinct ones, and every message needs one.
_CACHE: dict[str, Config] = {}
