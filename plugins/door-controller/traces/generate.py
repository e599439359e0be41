#!/usr/bin/env python3
"""Writes the door-controller fixture traces (trace format of interfaces.md).

Run from this directory: `python3 generate.py`. Deterministic: the same files every
time. Each `<code>.jsonl` has normal use, then the fault long enough to become
active, then at least 5 minutes of normal use; `normal.jsonl` is two hours of
ordinary traffic that must never raise anything.
"""

import json
import random
from datetime import datetime, timedelta, timezone

TZ = timezone(timedelta(hours=8))
TOPIC = "tend/test-site/door-1/"


class Door:
    def __init__(self, start, minutes, seed=1):
        self.start = start
        self.end = minutes * 60
        self.rng = random.Random(seed)
        # (t, field, value) state changes and (t, event name) events
        self.changes = []
        self.events = []
        self.base = {
            "door_open": False,
            "locked": True,
            "fire_door": False,
            "battery_v": 13.3,
            "mains_ok": True,
            "tamper": False,
            "cycles_total": 48210,
        }

    def set(self, t, field, value):
        self.changes.append((t, field, value))

    def event(self, t, name):
        self.events.append((t, name))

    def opens(self, t):
        """The door opens at t (cycle counted)."""
        self.event(t, "door_opened")
        self.set(t, "door_open", True)
        self.set(t, "cycles", 1)

    def closes(self, t, relock=True):
        self.event(t, "door_closed")
        self.set(t, "door_open", False)
        if relock:
            self.set(t + 1, "locked", True)

    def access(self, t, hold=6):
        """A normal granted passage: grant, unlock, open 2-3 s later, close, relock."""
        self.event(t, "access_granted")
        self.set(t + 1, "locked", False)
        self.opens(t + 3)
        self.closes(t + 3 + hold)

    def normal_traffic(self, t0, t1, every=(120, 360)):
        t = t0 + self.rng.randint(20, 60)
        while t < t1 - 30:
            if self.rng.random() < 0.15:
                # a first card refused, the second one accepted
                self.event(t, "access_denied")
                t += 5
            hold = self.rng.choice([4, 5, 6, 8, 12, 25, 40])
            self.access(t, hold)
            t += hold + self.rng.randint(*every)

    def state_at(self, t):
        s = dict(self.base)
        cycles = 0
        for ct, f, v in sorted(self.changes, key=lambda c: c[0]):
            if ct > t:
                break
            if f == "cycles":
                cycles += v
            else:
                s[f] = v
        s["cycles_total"] = self.base["cycles_total"] + cycles
        return s

    def ts(self, t):
        return (self.start + timedelta(seconds=t)).isoformat()

    def lines(self, battery=None):
        out = []
        for t in range(0, self.end + 1, 30):
            s = self.state_at(t)
            if battery is not None:
                s["battery_v"] = round(battery(t), 2)
            payload = {"ts": self.ts(t)}
            payload.update(s)
            out.append((t, 1, {"topic": TOPIC + "telemetry", "payload": payload}))
        for t, name in self.events:
            out.append((t, 0, {"topic": TOPIC + "event", "payload": {"ts": self.ts(t), "event": name}}))
        out.sort(key=lambda x: (x[0], x[1]))
        return [json.dumps(o, separators=(",", ":")) for _, _, o in out]


def write(name, lines):
    with open(name, "w") as f:
        for line in lines:
            f.write(line + "\n")


START = datetime(2026, 11, 23, 9, 0, 0, tzinfo=TZ)  # a Monday morning


def float_battery(t, rng=random.Random(7)):
    return 13.3 + rng.uniform(-0.08, 0.08)


def normal():
    d = Door(START, 120, seed=42)
    d.normal_traffic(0, d.end)
    write("normal.jsonl", d.lines(battery=float_battery))


def door_held_open():
    d = Door(START, 25, seed=2)
    d.normal_traffic(0, 8 * 60)
    # 09:08:10 a delivery props the door open for 7 minutes
    t = 8 * 60 + 10
    d.event(t, "access_granted")
    d.set(t + 1, "locked", False)
    d.opens(t + 3)
    d.closes(t + 3 + 7 * 60)
    d.normal_traffic(t + 7 * 60 + 20, d.end)
    write("door_held_open.jsonl", d.lines(battery=float_battery))


def forced_open():
    d = Door(START, 25, seed=3)
    d.normal_traffic(0, 8 * 60)
    # 09:08:40 the door is pulled open while locked, no card presented
    t = 8 * 60 + 40
    d.opens(t)
    d.closes(t + 8, relock=False)  # the lock stayed engaged (bolt forced past)
    # 09:12:10 the controller itself reports a forced opening
    t = 12 * 60 + 10
    d.event(t, "forced_open")
    d.opens(t + 1)
    d.closes(t + 9, relock=False)
    d.normal_traffic(13 * 60, d.end)
    write("forced_open.jsonl", d.lines(battery=float_battery))


def lock_fault():
    d = Door(START, 25, seed=4)
    d.normal_traffic(0, 8 * 60)
    # 09:08:20 a normal passage, but the lock does not engage again
    t = 8 * 60 + 20
    d.event(t, "access_granted")
    d.set(t + 1, "locked", False)
    d.opens(t + 3)
    d.closes(t + 9, relock=False)
    d.event(t + 25, "lock_fault")
    # 09:12:05 a technician fixes the strike, the lock engages
    d.set(12 * 60 + 5, "locked", True)
    d.normal_traffic(13 * 60, d.end)
    write("lock_fault.jsonl", d.lines(battery=float_battery))


def mains_failure():
    d = Door(START, 30, seed=5)
    d.normal_traffic(0, d.end)
    off, on = 8 * 60 + 15, 20 * 60 + 15
    d.set(off, "mains_ok", False)
    d.set(on, "mains_ok", True)

    def battery(t):
        if t < off:
            return 13.3
        if t < on:  # discharging slowly, well above 11.5 V
            return 12.7 - (t - off) / (on - off) * 0.5
        return min(13.3, 12.6 + (t - on) / 600)

    write("mains_failure.jsonl", d.lines(battery=battery))


def battery_low():
    d = Door(START, 45, seed=6)
    d.normal_traffic(0, d.end)
    # charger fault: the battery runs down from 09:05 while mains is present,
    # 12.3 V at 09:05, 11.4 V around 09:17, 10.4 V around 09:31; replaced at 09:34
    fail, replaced = 5 * 60, 34 * 60

    def battery(t):
        if t < fail:
            return 13.3
        if t < replaced:
            return 12.3 - (t - fail) / 60 * 0.0725
        return 13.4

    write("battery_low.jsonl", d.lines(battery=battery))


def tamper():
    d = Door(START, 20, seed=8)
    d.normal_traffic(0, d.end)
    d.set(8 * 60 + 5, "tamper", True)  # reader cover prised off
    d.set(11 * 60 + 5, "tamper", False)  # cover refitted
    write("tamper.jsonl", d.lines(battery=float_battery))


def reader_suspect():
    d = Door(START, 20, seed=9)
    d.normal_traffic(0, 7 * 60)
    # 09:08:02 someone tries cards: 12 denials 3 s apart
    for i in range(12):
        d.event(8 * 60 + 2 + 3 * i, "access_denied")
    d.normal_traffic(10 * 60, d.end)
    write("reader_suspect.jsonl", d.lines(battery=float_battery))


if __name__ == "__main__":
    normal()
    door_held_open()
    forced_open()
    lock_fault()
    mains_failure()
    battery_low()
    tamper()
    reader_suspect()
