"""Durations in event time.

Plugins never read a clock: "for N minutes" is measured between the `ts_ms` of
readings, so a replayed trace gives the same conditions as the live stream. Every
time here is milliseconds since the Unix epoch (`message.ts_ms`).

    @dataclass
    class State:
        hot: Held = field(default_factory=Held)
        levels: Window[float] = field(default_factory=Window)

    if state.hot.held(temp >= limit, ts, minutes(5)): ...   # held for 5 min
    state.levels.push(ts, level, hours(1))                   # the last hour of levels
"""

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Generic, Iterator, List, NamedTuple, Optional, Tuple, TypeVar

__all__ = [
    "SECOND_MS",
    "MINUTE_MS",
    "HOUR_MS",
    "seconds",
    "minutes",
    "hours",
    "Held",
    "ChangeSinceOn",
    "OnRun",
    "Window",
]

#: One second in milliseconds.
SECOND_MS = 1_000
#: One minute in milliseconds.
MINUTE_MS = 60 * SECOND_MS
#: One hour in milliseconds.
HOUR_MS = 60 * MINUTE_MS


def seconds(n: float) -> int:
    """`n` seconds in milliseconds."""
    return round(n * SECOND_MS)


def minutes(n: float) -> int:
    """`n` minutes in milliseconds."""
    return round(n * MINUTE_MS)


def hours(n: float) -> int:
    """`n` hours in milliseconds."""
    return round(n * HOUR_MS)


@dataclass
class Held:
    """How long a condition has held continuously.

    Counted from the first reading at which it holds; a reading where it does not
    hold restarts the count, so flapping never accumulates (telemetry.md, "Precise
    semantics"). Stored as `{"since_ms": ...}`, as the Rust SDK's `Held`.
    """

    since_ms: Optional[int] = None

    def update(self, holds: bool, ts: int) -> Optional[int]:
        """Records whether the condition holds at `ts`; returns for how long it has
        held (0 at the first reading), or None when it does not hold."""
        if holds:
            if self.since_ms is None:
                self.since_ms = ts
            return max(ts - self.since_ms, 0)
        self.since_ms = None
        return None

    def held(self, holds: bool, ts: int, at_least_ms: int) -> bool:
        """`update`, then whether it has held for at least `at_least_ms`:
        `state.hot.held(temp >= 95, ts, minutes(5))`."""
        d = self.update(holds, ts)
        return d is not None and d >= at_least_ms

    def since(self) -> Optional[int]:
        """When the current run started."""
        return self.since_ms

    def held_for(self, now: int) -> Optional[int]:
        """For how long it has held at `now`, without recording a reading."""
        return None if self.since_ms is None else max(now - self.since_ms, 0)

    def reset(self) -> None:
        """Forgets the current run."""
        self.since_ms = None


class OnRun(NamedTuple):
    """One reading of a `ChangeSinceOn` while the switch is on."""

    #: When the switch turned on.
    since: int
    #: For how long it has been on.
    held_ms: int
    #: The value when it turned on.
    start: float
    #: The value now minus `start`.
    change: float


@dataclass
class ChangeSinceOn:
    """How a value changed since a switch turned on: "inlet valve open for 30 min and
    the level rose < 2 points", "heater on for 60 min and the tank rose < 1 °C"."""

    on: Held = field(default_factory=Held)
    start: Optional[float] = None

    def update(self, on: bool, value: float, ts: int) -> Optional[OnRun]:
        """Records the switch and the value at `ts`; None while the switch is off
        (which also forgets the run)."""
        if not on:
            self.on.reset()
            self.start = None
            return None
        held_ms = self.on.update(True, ts) or 0
        since = self.on.since_ms if self.on.since_ms is not None else ts
        if self.start is None:
            self.start = value
        return OnRun(since, held_ms, self.start, value - self.start)


T = TypeVar("T")


@dataclass
class Window(Generic[T]):
    """Timestamped values kept for a sliding time window (oldest first).

    Values must be JSON values (numbers, booleans, strings, lists of them): the
    window is stored as `{"items": [[ts, value], ...]}`, as the Rust SDK's `Window`.
    """

    items: Deque[Tuple[int, T]] = field(default_factory=deque)

    def push(self, ts: int, value: T, span: int) -> None:
        """Appends a value and drops those older than `span` before `ts`."""
        self.items.append((ts, value))
        self.expire(ts - span)

    def expire(self, cutoff: int) -> None:
        """Drops values older than `cutoff`."""
        items = self.items
        while items and items[0][0] < cutoff:
            items.popleft()

    def __iter__(self) -> Iterator[Tuple[int, T]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def values(self) -> List[T]:
        """The values, oldest first."""
        return [v for _, v in self.items]

    def first(self) -> Optional[Tuple[int, T]]:
        """Oldest entry."""
        return self.items[0] if self.items else None

    def last(self) -> Optional[Tuple[int, T]]:
        """Newest entry."""
        return self.items[-1] if self.items else None

    def clear(self) -> None:
        """Empties the window."""
        self.items.clear()
