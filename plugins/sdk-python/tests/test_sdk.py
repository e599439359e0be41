"""Unit tests of the SDK, natively in CPython (`tend-py check`)."""

import unittest
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional

from componentize_py_types import Err, Ok

from tend_plugin import (
    BadPayload,
    BadSettings,
    BadState,
    ChangeSinceOn,
    Description,
    Device,
    Held,
    Message,
    MessageKind,
    Outcome,
    Payload,
    Plugin,
    Settings,
    Window,
    active,
    description,
    evidence,
    export,
    fault,
    inactive,
    minutes,
    num,
    outcome,
    run_batch,
    warranty,
)
from tend_plugin import state as codec
from tend_plugin.types import EvalError_BadPayload, EvalError_BadState


class PayloadTests(unittest.TestCase):
    def test_tells_missing_from_invalid(self) -> None:
        p = Payload.parse(b'{"a": 1.5, "b": "x", "c": null, "d": true, "e": 1, "f": 2.0}')
        self.assertEqual(p.number("a").ok(), 1.5)
        self.assertTrue(p.number("b").is_invalid)
        self.assertTrue(p.number("c").is_missing)
        self.assertTrue(p.number("zz").is_missing)
        self.assertTrue(p.number("d").is_invalid)  # a boolean is not a number
        self.assertEqual(p.number("e").ok(), 1.0)
        self.assertEqual(p.boolean("d").ok(), True)
        self.assertEqual(p.boolean("e").ok(), True)
        self.assertTrue(p.boolean("a").is_invalid)
        self.assertTrue(p.boolean("f").is_invalid)  # 2.0 is not 0 / 1
        self.assertTrue(p.integer("a").is_invalid)
        self.assertEqual(p.integer("e").ok(), 1)
        self.assertEqual(p.integer("f").ok(), 2)
        self.assertEqual(p.string("b").ok(), "x")

    def test_required_and_optional_name_the_field(self) -> None:
        p = Payload.parse(b'{"a": "x"}')
        with self.assertRaises(BadPayload) as e:
            p.boolean("door_open").required()
        self.assertEqual(e.exception.message, "`door_open` is missing")
        with self.assertRaises(BadPayload) as e:
            p.number("a").optional()
        self.assertEqual(e.exception.message, "`a` is not a number")
        self.assertIsNone(p.number("b").optional())

    def test_rejects_non_objects_and_non_json(self) -> None:
        for raw in [b"[1]", b"{", b'"offline"', b'{"a": NaN}', b"\xff"]:
            with self.assertRaises(BadPayload, msg=repr(raw)):
                Payload.parse(raw)
        with self.assertRaises(BadPayload) as e:
            Payload.parse(b"[1]")
        self.assertEqual(e.exception.message, "expected a JSON object, got an array")
        # Beyond the float range: read, but not a number.
        p = Payload.parse(b'{"a": 1e400, "b": 1' + b"0" * 400 + b', "c": 100000000000000000000}')
        self.assertTrue(p.number("a").is_invalid)
        self.assertTrue(p.number("b").is_invalid)
        self.assertEqual(p.number("c").ok(), 1e20)
        self.assertTrue(p.integer("c").is_invalid)


class SettingsTests(unittest.TestCase):
    def test_defaults_and_overrides(self) -> None:
        s = Settings.parse('{"overheat_c": 90, "fire_door": true, "name": "x"}')
        self.assertEqual(s.number_or("overheat_c", 95.0), 90.0)
        self.assertEqual(s.number_or("other", 1.0), 1.0)
        self.assertTrue(s.boolean_or("fire_door", False))
        self.assertEqual(s.string("name"), "x")
        with self.assertRaises(BadSettings) as e:
            s.number_or("fire_door", 1.0)
        self.assertEqual(e.exception.message, "setting `fire_door` must be a number, got true")
        self.assertEqual(Settings.parse(""), Settings())
        with self.assertRaises(BadSettings):
            Settings.parse("[]")


class TimeTests(unittest.TestCase):
    def test_held_counts_from_first_reading_and_restarts(self) -> None:
        h = Held()
        self.assertEqual(h.update(True, 1_000), 0)
        self.assertEqual(h.update(True, 61_000), 60_000)
        self.assertIsNone(h.update(False, 62_000))
        self.assertEqual(h.update(True, 63_000), 0)
        self.assertEqual(h.held_for(73_000), 10_000)
        self.assertFalse(h.held(True, 64_000, minutes(1)))
        self.assertTrue(h.held(True, 63_000 + minutes(1), minutes(1)))

    def test_change_since_on_measures_from_the_switch_on(self) -> None:
        c = ChangeSinceOn()
        self.assertIsNone(c.update(False, 50.0, 0))
        first = c.update(True, 50.0, minutes(1))
        assert first is not None
        self.assertEqual((first.since, first.held_ms, first.change), (minutes(1), 0, 0.0))
        later = c.update(True, 51.5, minutes(31))
        assert later is not None
        self.assertEqual(
            (later.since, later.held_ms, later.start, later.change),
            (minutes(1), minutes(30), 50.0, 1.5),
        )
        self.assertIsNone(c.update(False, 52.0, minutes(32)))
        again = c.update(True, 40.0, minutes(33))
        assert again is not None
        self.assertEqual(again.start, 40.0)

    def test_window_expires_old_values(self) -> None:
        w: Window[int] = Window()
        w.push(0, 1, minutes(60))
        w.push(minutes(30), 2, minutes(60))
        w.push(minutes(61), 3, minutes(60))
        self.assertEqual(w.values(), [2, 3])
        self.assertEqual(w.first(), (minutes(30), 2))


@dataclass
class Inner:
    n: int = 0


@dataclass
class State:
    door_open: Optional[bool] = None
    ts: Optional[int] = None
    level: float = 0.0
    held: Held = field(default_factory=Held)
    denied: Deque[int] = field(default_factory=deque)
    levels: Window[float] = field(default_factory=Window)
    inner: Inner = field(default_factory=Inner)
    tags: Dict[str, List[int]] = field(default_factory=dict)


class StateTests(unittest.TestCase):
    def test_round_trip_in_serde_shape(self) -> None:
        s = State(True, 5, 1.5, Held(7), deque([1, 2]), Window(deque([(1, 2.5)])), Inner(3))
        s.tags["a"] = [1]
        data = codec.encode(s)
        self.assertEqual(
            data,
            b'{"door_open":true,"ts":5,"level":1.5,"held":{"since_ms":7},"denied":[1,2],'
            b'"levels":{"items":[[1,2.5]]},"inner":{"n":3},"tags":{"a":[1]}}',
        )
        self.assertEqual(codec.decode(State, data), s)

    def test_missing_fields_take_defaults_and_unknown_keys_are_ignored(self) -> None:
        self.assertEqual(codec.decode(State, b'{"ts": 9, "new": 1}'), State(ts=9))

    def test_bad_state_is_an_error(self) -> None:
        for raw in [b"[", b'{"ts": "x"}', b'{"held": 1}', b'{"denied": [1.5]}']:
            with self.assertRaises(BadState, msg=repr(raw)):
                codec.decode(State, raw)


class TextTests(unittest.TestCase):
    def test_num_prints_like_rust_display(self) -> None:
        cases = [(11.5, "11.5"), (12.0, "12"), (-0.0, "-0"), (1e16, "10000000000000000"),
                 (1e-7, "0.0000001"), (1.2345678901234568e20, "123456789012345680000"),
                 (0.1 + 0.2, "0.30000000000000004")]
        for x, want in cases:
            self.assertEqual(num(x), want)


@dataclass
class Count:
    n: int = 0


class Counter(Plugin[Count]):
    """Counts telemetry; rejects payloads without `v`."""

    state_type = Count

    def describe(self) -> Description:
        return description("counter", "0.1.0", [fault("big", "Big", 3, "c")], [warranty("c", 1)])

    def evaluate(self, device: Device, message: Message, state: Count) -> Outcome:
        v = Payload.parse(message.payload).number("v").required()
        state.n += 1
        big = v > 10
        return outcome([active("big", 3, f"{num(v)}", [evidence(message.ts_ms, "v", v)])
                        if big else inactive("big")])


def msg(payload: bytes, ts: int = 0) -> Message:
    return Message(MessageKind.TELEMETRY, "tend/s/d/telemetry", payload, ts)


class RunnerTests(unittest.TestCase):
    def test_batch_threads_the_state_and_returns_errors_per_message(self) -> None:
        dev = Device("d", "m", "{}")
        b = run_batch(Counter(), dev, [msg(b'{"v": 1}'), msg(b"{}"), msg(b'{"v": 11}')], None)
        self.assertEqual(b.state, b'{"n":2}')
        self.assertIsInstance(b.outcomes[0], Ok)
        self.assertEqual(b.outcomes[1], Err(EvalError_BadPayload("`v` is missing")))
        third = b.outcomes[2]
        assert isinstance(third, Ok)
        self.assertEqual(third.value.conditions[0].summary, "11")

    def test_unreadable_state_fails_every_message_and_is_kept(self) -> None:
        dev = Device("d", "m", "{}")
        b = run_batch(Counter(), dev, [msg(b'{"v": 1}')] * 2, b"[")
        self.assertEqual(b.state, b"[")
        self.assertTrue(all(isinstance(o, Err) and isinstance(o.value, EvalError_BadState)
                            for o in b.outcomes))

    def test_export_raises_err_for_evaluate(self) -> None:
        world = export(Counter())()
        with self.assertRaises(Err):
            world.evaluate(Device("d", "m", "{}"), msg(b"{}"), None)
        self.assertEqual(world.describe().equipment_type, "counter")


if __name__ == "__main__":
    unittest.main()
