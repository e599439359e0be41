"""The fault rules: one door's state and how each message changes it.

Every rule a message can judge is reported, active or inactive, so the host can
start its clear hold; a rule the message says nothing about is left out.
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, List, Optional, Sequence, Tuple

from tend_plugin import (
    Condition,
    Diagnosis,
    Held,
    Outcome,
    active,
    evidence,
    hardware,
    inactive,
    judge,
    meter,
    num,
    outcome,
)

from .config import Config
from .decode import DoorEvent, Reading
from .describe import (
    BATTERY_LOW,
    DOOR_CYCLES,
    DOOR_HELD_OPEN,
    FORCED_OPEN,
    LOCK_FAULT,
    MAINS_FAILURE,
    READER_SUSPECT,
    TAMPER,
)

#: Most access denials remembered, whatever the settings say (bounds the state).
MAX_DENIALS = 1024


@dataclass
class State:
    """What the plugin remembers about one door between messages (the same fields,
    in the same order and encoding, as the Rust plugin's state: either plugin reads
    the other's)."""

    #: Last known door position (telemetry or door events).
    door_open: Optional[bool] = None
    #: When the door position was last reported.
    door_ts: Optional[int] = None
    #: When the door was last seen closing.
    closed_since: Optional[int] = None
    #: Lock state of the last telemetry reading.
    locked: Optional[bool] = None
    #: When `locked` was read.
    locked_ts: Optional[int] = None
    #: `fire_door` of the last telemetry reading that carried it.
    fire_door: Optional[bool] = None
    #: The latest `access_granted`.
    last_granted: Optional[int] = None
    #: How long the door has stood open.
    held_open: Held = field(default_factory=Held)
    #: Times of recent `access_denied` events.
    denied: Deque[int] = field(default_factory=deque)

    def granted_since(self, start: int) -> bool:
        return self.last_granted is not None and self.last_granted >= start

    def set_door(self, is_open: bool, ts: int) -> None:
        if not is_open and self.door_open is not False:
            self.closed_since = ts
        self.door_open = is_open
        self.door_ts = ts
        self.held_open.update(is_open, ts)

    def expire_denials(self, ts: int, window_ms: int) -> None:
        cutoff = ts - window_ms
        denied = self.denied
        if any(t < cutoff for t in denied):
            self.denied = denied = deque(t for t in denied if t >= cutoff)
        while len(denied) > MAX_DENIALS:
            denied.popleft()

    def unlocked_since(self) -> Optional[Tuple[int, bool]]:
        """Since when the door has been closed and unlocked, counted from the later of
        the closing and the last grant; None unless a reading taken since the closing
        says unlocked. The second value is true when the grant is the later."""
        if self.door_open is not False or self.locked is not False:
            return None
        closed = self.closed_since
        if closed is None or self.locked_ts is None or self.locked_ts < closed:
            return None
        g = self.last_granted
        if g is not None and g > closed:
            return (g, True)
        return (closed, False)


def on_reading(cfg: Config, r: Reading, ts: int, st: State) -> Outcome:
    """Judges one telemetry reading."""
    # forced_open: the door went from closed to open while the previous reading said
    # locked, with no grant since shortly before that reading.
    opened_locked = r.door_open and st.door_open is False and st.locked is True
    door_ts = st.door_ts if st.door_ts is not None else ts
    grant_from = min(door_ts, ts) - cfg.forced_grace_ms
    forced = opened_locked and not st.granted_since(grant_from)
    locked_before = st.locked_ts

    st.set_door(r.door_open, ts)
    st.locked = r.locked
    st.locked_ts = ts
    if r.fire_door is not None:
        st.fire_door = r.fire_door
    st.expire_denials(ts, cfg.reader_window_ms)

    out = outcome()
    conditions = out.conditions
    held = held_open(cfg, st, ts)
    if held is not None:
        conditions.append(held)
    conditions.append(
        opened_while_locked(cfg, locked_before, ts) if forced else inactive(FORCED_OPEN)
    )
    conditions.append(lock_fault(cfg, st, ts, False))
    if r.mains_ok is not None:
        conditions.append(mains_failure(r.mains_ok, r.battery_v, ts))
    if r.battery_v is not None:
        conditions.append(battery_low(cfg, r.battery_v, r.mains_ok, ts))
    if r.tamper is not None:
        conditions.append(
            judge(
                TAMPER,
                r.tamper,
                lambda: active(
                    TAMPER,
                    2,
                    "Tamper switch open (enclosure opened or removed)",
                    [evidence(ts, "tamper", 1.0)],
                    hardware(
                        "Controller or reader enclosure opened or pulled off the wall "
                        "(vandalism, cover left open after work), or a faulty tamper switch",
                        ["tamper switch", "enclosure cover and screws"],
                    ),
                ),
            )
        )
    conditions.append(inactive(READER_SUSPECT))
    if r.cycles_total is not None:
        out.meters.append(meter(DOOR_CYCLES, float(r.cycles_total)))
    return out


def on_event(cfg: Config, ev: DoorEvent, ts: int, st: State) -> Outcome:
    """Judges one event."""
    st.expire_denials(ts, cfg.reader_window_ms)
    forced: Optional[Condition] = None
    reader: Optional[Condition] = None
    lock_reported = False
    if ev is DoorEvent.ACCESS_GRANTED:
        g = st.last_granted
        st.last_granted = ts if g is None else max(g, ts)
    elif ev is DoorEvent.ACCESS_DENIED:
        st.denied.append(ts)
        st.expire_denials(ts, cfg.reader_window_ms)
        recent = [t for t in st.denied if t <= ts]
        if len(recent) >= cfg.reader_denied_count:
            first = min(recent)
            reader = active(
                READER_SUSPECT,
                4,
                f"{len(recent)} access denials within {duration(cfg.reader_window_ms)} "
                f"(limit {cfg.reader_denied_count})",
                [
                    evidence(first, "access_denied", 1.0),
                    evidence(ts, "access_denied", float(len(recent))),
                ],
                hardware(
                    "Card reader misreading (dirty, damaged or interfered with), a "
                    "credential list not synchronised to the controller, or someone "
                    "trying cards",
                    ["card reader"],
                ),
            )
    elif ev is DoorEvent.DOOR_OPENED:
        was_locked = st.door_open is not True and st.locked is True
        if was_locked and not st.granted_since(ts - cfg.forced_grace_ms):
            forced = opened_while_locked(cfg, st.locked_ts, ts)
        st.set_door(True, ts)
    elif ev is DoorEvent.DOOR_CLOSED:
        st.set_door(False, ts)
    elif ev is DoorEvent.FORCED_OPEN:
        forced = active(
            FORCED_OPEN,
            2,
            "Controller reported the door forced open",
            [evidence(ts, "forced_open", 1.0)],
            forced_diagnosis(),
        )
        st.set_door(True, ts)
    else:  # DoorEvent.LOCK_FAULT
        lock_reported = True

    out = outcome()
    conditions = out.conditions
    held = held_open(cfg, st, ts)
    if held is not None:
        conditions.append(held)
    conditions.append(forced if forced is not None else inactive(FORCED_OPEN))
    conditions.append(lock_fault(cfg, st, ts, lock_reported))
    conditions.append(reader if reader is not None else inactive(READER_SUSPECT))
    return out


def held_open(cfg: Config, st: State, ts: int) -> Optional[Condition]:
    """`door_held_open`, judged when the door position is known."""
    if st.door_open is None:
        return None
    since = st.held_open.since()
    held = st.held_open.held_for(ts)
    if not st.door_open or since is None or held is None:
        return inactive(DOOR_HELD_OPEN)
    fire = st.fire_door if st.fire_door is not None else cfg.fire_door
    if fire:
        limit, severity, what = cfg.held_open_fire_ms, 2, "Fire door"
        cause = (
            "Fire door propped or wedged open, or its closer / hold-open release does not "
            "close it: a fire and smoke barrier is lost"
        )
    else:
        limit, severity, what = cfg.held_open_ms, 3, "Door"
        cause = (
            "Door propped open or not closing: closer weak or out of adjustment, leaf "
            "obstructed or dropped on its hinges"
        )
    if held < limit:
        return inactive(DOOR_HELD_OPEN)
    return active(
        DOOR_HELD_OPEN,
        severity,
        f"{what} open for {duration(held)} (limit {duration(limit)})",
        [
            evidence(since, "door_open", 1.0),
            evidence(ts, "door_open", 1.0),
            evidence(ts, "fire_door", 1.0 if fire else 0.0),
        ],
        hardware(cause, ["door closer", "hinges", "hold-open magnet"]),
    )


LOCK_PARTS = ["electric lock", "strike plate", "lock power relay"]


def lock_fault(cfg: Config, st: State, ts: int, reported: bool) -> Condition:
    """`lock_fault`: reported by the controller, or the door closed and still unlocked."""
    if reported:
        return active(
            LOCK_FAULT,
            2,
            "Controller reported a lock fault",
            [evidence(ts, "lock_fault", 1.0)],
            hardware(
                "Electric lock reports a fault: coil or motor failure, bolt blocked, lock "
                "wiring or lock power",
                LOCK_PARTS,
            ),
        )
    unlocked = st.unlocked_since()
    if unlocked is None:
        return inactive(LOCK_FAULT)
    start, granted_later = unlocked
    held = ts - start
    if held < cfg.lock_delay_ms:
        return inactive(LOCK_FAULT)
    if granted_later:
        summary = (
            f"Door closed and still not locked {duration(held)} after the last access "
            f"granted (limit {duration(cfg.lock_delay_ms)})"
        )
    else:
        summary = (
            f"Door closed for {duration(held)} and still not locked "
            f"(limit {duration(cfg.lock_delay_ms)})"
        )
    ev = []
    if st.closed_since is not None:
        ev.append(evidence(st.closed_since, "door_open", 0.0))
    if granted_later:
        ev.append(evidence(start, "access_granted", 1.0))
    if st.locked_ts is not None:
        ev.append(evidence(st.locked_ts, "locked", 0.0))
    return active(
        LOCK_FAULT,
        2,
        summary,
        ev,
        hardware(
            "Lock does not engage after closing: strike misaligned or door not fully "
            "latched (closer), lock coil or motor failure, or lock power lost",
            LOCK_PARTS,
        ),
    )


def mains_failure(ok: bool, battery_v: Optional[float], ts: int) -> Condition:
    if ok:
        return inactive(MAINS_FAILURE)
    if battery_v is not None:
        summary = f"Mains supply lost, running on backup battery at {battery_v:.1f} V"
    else:
        summary = "Mains supply lost, running on backup battery"
    ev = [evidence(ts, "mains_ok", 0.0)]
    if battery_v is not None:
        ev.append(evidence(ts, "battery_v", battery_v))
    return active(
        MAINS_FAILURE,
        2,
        summary,
        ev,
        hardware(
            "No mains at the door controller's power supply: tripped breaker, blown fuse, "
            "cut supply cable, or a failed power supply unit",
            ["power supply unit", "fuse"],
        ),
    )


def battery_low(cfg: Config, v: float, mains_ok: Optional[bool], ts: int) -> Condition:
    if v < cfg.battery_critical_v:
        severity, limit, word = 2, cfg.battery_critical_v, "critical"
    elif v < cfg.battery_low_v:
        severity, limit, word = 3, cfg.battery_low_v, "low"
    else:
        return inactive(BATTERY_LOW)
    ev = [evidence(ts, "battery_v", v)]
    diagnosis: Diagnosis
    if mains_ok is False:
        ev.append(evidence(ts, "mains_ok", 0.0))
        diagnosis = hardware(
            "Battery discharging during a mains failure; the door loses power when it is flat",
            ["12 V backup battery"],
        )
    else:
        diagnosis = hardware(
            "Battery at end of life or not charging although mains is present (charger or "
            "power supply fault)",
            ["12 V backup battery", "power supply unit"],
        )
    return active(
        BATTERY_LOW,
        severity,
        f"Backup battery {word} at {v:.2f} V (below {num(limit)} V)",
        ev,
        diagnosis,
    )


def opened_while_locked(cfg: Config, locked_ts: Optional[int], ts: int) -> Condition:
    """`forced_open` for a door that opened while the reading at `locked_ts` said locked."""
    ev = []
    if locked_ts is not None:
        ev.append(evidence(locked_ts, "locked", 1.0))
    ev.append(evidence(ts, "door_open", 1.0))
    return active(
        FORCED_OPEN,
        2,
        "Door opened while locked with no access granted in the previous "
        f"{duration(cfg.forced_grace_ms)}",
        ev,
        forced_diagnosis(),
    )


def forced_diagnosis() -> Diagnosis:
    return hardware(
        "Door opened without a valid access: forced entry, mechanical key override, or a "
        "lock that does not hold (strike misaligned, latch worn, door position sensor faulty)",
        FORCED_PARTS,
    )


FORCED_PARTS: Sequence[str] = ["lock body", "strike plate", "door position sensor"]


def duration(ms: int) -> str:
    """A duration for people: "45 s", "5 min", "6.5 min", "2.3 h"."""
    ms = max(ms, 0)
    if ms < 120_000:
        return f"{ms // 1000} s"
    if ms < 7_200_000:
        if ms % 60_000 == 0:
            return f"{ms // 60_000} min"
        return f"{float(ms) / 60_000.0:.1f} min"
    return f"{float(ms) / 3_600_000.0:.1f} h"


__all__: List[str] = ["State", "on_reading", "on_event", "duration"]
