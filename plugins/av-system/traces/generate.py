#!/usr/bin/env python3
"""Regenerates the fixture traces in this directory (deterministic; no dependencies).

    python3 plugins/av-system/traces/generate.py

One trace per fault code (normal, the fault long enough to become active, then normal
for 10 minutes) and normal.jsonl (two hours, nothing wrong). Readings every 30 s.
The interrupts-service faults (amp_protect, display_offline, signal_loss) stay active
for 12 minutes so the host's escalation to level 1 is exercised.
"""

import json
import math
import os
from datetime import datetime, timedelta, timezone

TOPIC = "tend/test-site/av-1/telemetry"
START = datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone(timedelta(hours=8)))
STEP_S = 30
ZONES = [("lobby", 250.0), ("atrium", 167.0), ("food-court", 500.0), ("corridor-3f", 125.0)]
HERE = os.path.dirname(os.path.abspath(__file__))


def normal(i, lamp_start=1200.0, filter_start=120.0):
    """A normal reading at index i: small deterministic wobble, nothing near a limit."""
    w = math.sin(i / 7.0)
    return {
        "ts": (START + timedelta(seconds=STEP_S * i)).isoformat(),
        "amp_temp_c": round(46.0 + 3.0 * w, 1),
        "amp_protect": False,
        "zones": [
            {
                "id": zid,
                "line_impedance_ohm": round(base * (1.0 + 0.03 * math.sin(i / 5.0 + k)), 1),
                "baseline_ohm": base,
            }
            for k, (zid, base) in enumerate(ZONES)
        ],
        "projector_lamp_hours": round(lamp_start + i / 120.0, 3),
        "lamp_rated_hours": 3000,
        "projector_filter_hours": round(filter_start + i / 120.0, 3),
        "projector_temp_c": round(56.0 + 2.5 * math.sin(i / 9.0), 1),
        "display_online": True,
        "player_heartbeat_age_s": (i * 7) % 30,
        "signal_present": True,
        "fan_ok": True,
    }


def write(name, readings):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        for r in readings:
            f.write(json.dumps({"topic": TOPIC, "payload": r}, ensure_ascii=False) + "\n")


def episode(name, fault_len, fault, pre=20, post=20, base=normal):
    """pre normal readings, fault_len faulty ones (fault(reading, j) edits), post normal."""
    out = []
    for i in range(pre + fault_len + post):
        r = base(i)
        if pre <= i < pre + fault_len:
            fault(r, i - pre)
        out.append(r)
    write(name, out)


def setter(field, value):
    def f(r, _j):
        r[field] = value

    return f


def zone(k, ohm):
    def f(r, _j):
        r["zones"][k]["line_impedance_ohm"] = ohm

    return f


def ramp(field, values):
    def f(r, j):
        r[field] = values[j]

    return f


def main():
    write("normal.jsonl", [normal(i) for i in range(240)])

    # Protection for 12 min: active from the first reading, escalates after 10 min.
    episode("amp_protect.jsonl", 24, setter("amp_protect", True))
    amp = [68, 70, 72, 74, 75.5, 76.5, 77, 77.5, 77.5, 77, 76.5, 76, 75.2, 73, 70, 67]
    episode("amp_overtemp.jsonl", len(amp), ramp("amp_temp_c", amp))
    # Open: food-court reads 10 kOhm for 5 min. Short: atrium 12.5 Ohm. Drift: corridor +28 %.
    episode("speaker_line_open.jsonl", 10, zone(2, 10000.0))
    episode("speaker_line_short.jsonl", 10, zone(1, 12.5))
    episode("speaker_line_drift.jsonl", 20, zone(3, 160.0))

    # The lamp reaches its 3000 rated hours 4 min into the fault phase, runs on for
    # 6 min, then is replaced (counter back to 0).
    def lamp(i):
        r = normal(i)
        r["projector_lamp_hours"] = round(3000.0 - 28 / 120.0 + i / 120.0, 3)
        if i >= 40:
            r["projector_lamp_hours"] = round((i - 40) / 120.0, 3)
        return r

    episode("lamp_end_of_life.jsonl", 20, lambda r, j: None, base=lamp)

    proj = [72, 75, 78, 80, 81.5, 82, 82.5, 82, 81, 80.5, 80, 78, 75, 70, 65, 60]
    episode("projector_overtemp.jsonl", len(proj), ramp("projector_temp_c", proj))
    # Offline 17 min: active after 5, then 12 min active.
    episode("display_offline.jsonl", 34, setter("display_online", False))
    # Heartbeat ages 30 s per reading from 30 s to 600 s, then the player restarts.
    episode("player_stalled.jsonl", 20, lambda r, j: r.update(player_heartbeat_age_s=30 * (j + 1)))
    # No signal 14 min: active after 2, then 12 min active.
    episode("signal_loss.jsonl", 28, setter("signal_present", False))

    def fan(r, j):
        r["fan_ok"] = False
        r["projector_temp_c"] = round(min(56.0 + 1.5 * j, 70.0), 1)

    episode("fan_failure.jsonl", 10, fan)


if __name__ == "__main__":
    main()
