"""Native unit tests of the door-controller rules (`tend-py check`); the proof that
they equal the Rust plugin's is tests/integration/python.rs, through the host."""

import json
import unittest
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from door_controller import ALL_CODES, DOOR_CYCLES, DoorController, State
from tend_plugin import (
    BadPayload,
    BadSettings,
    Condition,
    Device,
    Message,
    MessageKind,
    Outcome,
    run_one,
)

S = 1000
TRACES = Path(__file__).resolve().parents[2] / "door-controller" / "traces"


class Door:
    """One door fed message by message, its state kept between them."""

    def __init__(self, settings: str = "{}") -> None:
        self.plugin = DoorController()
        self.device = Device("door-1", "FD-2", settings)
        self.state: State = State()

    def send(self, kind: MessageKind, ms: int, payload: Dict[str, Any]) -> Outcome:
        payload = {"ts": ms, **payload}
        msg = Message(kind, f"tend/s/door-1/{kind.name.lower()}", json.dumps(payload).encode(), ms)
        return self.plugin.evaluate(self.device, msg, self.state)

    def tel(self, ms: int, is_open: bool, locked: bool, **extra: Any) -> Outcome:
        return self.send(MessageKind.TELEMETRY, ms, {"door_open": is_open, "locked": locked, **extra})

    def ev(self, ms: int, name: str) -> Outcome:
        return self.send(MessageKind.EVENT, ms, {"event": name})


def judged(out: Outcome, code: str) -> Optional[Condition]:
    return next((c for c in out.conditions if c.code == code), None)


def active(t: unittest.TestCase, out: Outcome, code: str) -> Condition:
    c = judged(out, code)
    assert c is not None
    t.assertTrue(c.active, f"{code} should be active: {out}")
    t.assertTrue(c.summary and c.evidence and c.diagnosis)
    return c


class RuleTests(unittest.TestCase):
    def test_held_open_other_door_fires_at_5_min(self) -> None:
        d = Door()
        d.tel(0, False, True)
        d.tel(30 * S, True, False)
        c = judged(d.tel(329 * S, True, False), "door_held_open")
        self.assertFalse(c is None or c.active)
        c = active(self, d.tel(330 * S, True, False), "door_held_open")
        self.assertEqual((c.severity, c.summary), (3, "Door open for 5 min (limit 5 min)"))

    def test_fire_door_from_setting_level_2_at_60_s(self) -> None:
        d = Door('{"fire_door": true}')
        d.tel(0, True, False)
        c = active(self, d.tel(60 * S, True, False), "door_held_open")
        self.assertEqual((c.severity, c.summary), (2, "Fire door open for 60 s (limit 60 s)"))

    def test_forced_open_without_grant_and_grace_after_one(self) -> None:
        d = Door()
        d.tel(0, False, True)
        self.assertEqual(active(self, d.ev(5 * S, "door_opened"), "forced_open").severity, 2)
        d = Door()
        d.tel(0, False, True)
        d.ev(S, "access_granted")
        c = judged(d.ev(5 * S, "door_opened"), "forced_open")
        self.assertFalse(c is None or c.active)

    def test_lock_fault_after_10_s_closed_and_unlocked(self) -> None:
        d = Door()
        d.tel(0, True, False)
        d.ev(S, "door_closed")
        c = active(self, d.tel(11 * S, False, False), "lock_fault")
        self.assertEqual(c.summary, "Door closed for 10 s and still not locked (limit 10 s)")

    def test_battery_low_levels_and_mains(self) -> None:
        d = Door()
        c = active(self, d.tel(0, False, True, battery_v=11.4, mains_ok=True), "battery_low")
        self.assertEqual((c.severity, c.summary), (3, "Backup battery low at 11.40 V (below 11.5 V)"))
        out = d.tel(30 * S, False, True, battery_v=10.49, mains_ok=False)
        self.assertEqual(active(self, out, "battery_low").severity, 2)
        c = active(self, out, "mains_failure")
        self.assertEqual(c.summary, "Mains supply lost, running on backup battery at 10.5 V")
        d = Door('{"battery_low_v": 12}')
        c = active(self, d.tel(0, False, True, battery_v=11.9), "battery_low")
        self.assertEqual(c.summary, "Backup battery low at 11.90 V (below 12 V)")

    def test_reader_suspect_at_10_denials_within_60_s(self) -> None:
        d = Door()
        for i in range(9):
            c = judged(d.ev(i * 5 * S, "access_denied"), "reader_suspect")
            self.assertFalse(c is None or c.active)
        c = active(self, d.ev(45 * S, "access_denied"), "reader_suspect")
        self.assertEqual(c.summary, "10 access denials within 60 s (limit 10)")

    def test_meter_and_bad_payloads(self) -> None:
        d = Door()
        out = d.tel(0, False, True, cycles_total=50_123)
        self.assertEqual([(m.meter, m.value) for m in out.meters], [(DOOR_CYCLES, 50_123.0)])
        cases: List[Tuple[Dict[str, Any], str]] = [
            ({"locked": True}, "`door_open` is missing"),
            ({"door_open": "yes", "locked": True}, "`door_open` is not a boolean"),
            ({"door_open": True, "locked": True, "cycles_total": -1},
             "`cycles_total` must not be negative, got -1"),
        ]
        for payload, message in cases:
            with self.assertRaises(BadPayload) as e:
                d.send(MessageKind.TELEMETRY, S, payload)
            self.assertEqual(e.exception.message, message)
        with self.assertRaises(BadPayload) as e:
            d.ev(S, "x" * 70)
        self.assertEqual(e.exception.message, f"unknown event `{'x' * 64}…`")
        with self.assertRaises(BadSettings) as s:
            Door('{"lock_delay_s": -1}').tel(0, False, True)
        self.assertEqual(s.exception.message, "setting `lock_delay_s` must not be negative, got -1")

    def test_describe_lists_every_code(self) -> None:
        d = DoorController().describe()
        self.assertEqual(d.equipment_type, "door-controller")
        self.assertEqual([f.code for f in d.faults], ALL_CODES)
        self.assertEqual(d.offline_timeout_s, 300)


class TraceTests(unittest.TestCase):
    """Every fixture trace raises its code and clears it; normal.jsonl raises nothing."""

    def run_trace(self, name: str) -> Set[str]:
        plugin, device = DoorController(), Device("door-1", "FD-2", "{}")
        state: Optional[bytes] = None
        ever: Dict[str, bool] = {}
        last: Dict[str, bool] = {}
        for line in (TRACES / name).read_text().splitlines():
            v = json.loads(line)
            kind = MessageKind[v["topic"].rsplit("/", 1)[1].upper()]
            ts = int(datetime.fromisoformat(v["payload"]["ts"]).timestamp() * 1000)
            msg = Message(kind, v["topic"], json.dumps(v["payload"]).encode(), ts)
            ev = run_one(plugin, device, msg, state)
            state = ev.state
            for c in ev.outcome.conditions:
                last[c.code] = c.active
                ever[c.code] = ever.get(c.code, False) or c.active
        self.assertFalse(any(last.values()), f"{name}: still active at the end: {last}")
        return {code for code, was in ever.items() if was}

    def test_every_code_has_a_trace_that_raises_and_clears_it(self) -> None:
        for code in ALL_CODES:
            self.assertEqual(self.run_trace(f"{code}.jsonl"), {code}, code)
        self.assertEqual(self.run_trace("normal.jsonl"), set())


if __name__ == "__main__":
    unittest.main()
