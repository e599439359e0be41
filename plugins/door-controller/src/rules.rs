//! The fault rules: one door's state and how each message changes it.
//!
//! Every rule a message can judge is pushed, active or inactive, so the host can
//! start its clear hold; a rule the message says nothing about is left out.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tend_plugin_sdk::prelude::*;

use crate::config::Config;
use crate::decode::{DoorEvent, Reading};
use crate::describe::{
    BATTERY_LOW, DOOR_CYCLES, DOOR_HELD_OPEN, FORCED_OPEN, LOCK_FAULT, MAINS_FAILURE,
    READER_SUSPECT, TAMPER,
};

/// Most access denials remembered, whatever the settings say (bounds the state).
const MAX_DENIALS: usize = 1024;

/// What the plugin remembers about one door between messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Last known door position (telemetry or door events).
    pub(crate) door_open: Option<bool>,
    /// When the door position was last reported.
    pub(crate) door_ts: Option<TimestampMs>,
    /// When the door was last seen closing.
    pub(crate) closed_since: Option<TimestampMs>,
    /// Lock state of the last telemetry reading.
    pub(crate) locked: Option<bool>,
    /// When `locked` was read.
    pub(crate) locked_ts: Option<TimestampMs>,
    /// `fire_door` of the last telemetry reading that carried it.
    pub(crate) fire_door: Option<bool>,
    /// The latest `access_granted`.
    pub(crate) last_granted: Option<TimestampMs>,
    /// How long the door has stood open.
    pub(crate) held_open: Held,
    /// Times of recent `access_denied` events.
    pub(crate) denied: VecDeque<TimestampMs>,
}

impl State {
    fn granted_since(&self, from: TimestampMs) -> bool {
        self.last_granted.is_some_and(|g| g >= from)
    }

    fn set_door(&mut self, open: bool, ts: TimestampMs) {
        if !open && self.door_open != Some(false) {
            self.closed_since = Some(ts);
        }
        self.door_open = Some(open);
        self.door_ts = Some(ts);
        self.held_open.update(open, ts);
    }

    fn expire_denials(&mut self, ts: TimestampMs, window_ms: i64) {
        let cutoff = ts.saturating_sub(window_ms);
        self.denied.retain(|t| *t >= cutoff);
        while self.denied.len() > MAX_DENIALS {
            self.denied.pop_front();
        }
    }

    /// Since when the door has been closed and unlocked, counted from the later of
    /// the closing and the last grant; `None` unless a reading taken since the
    /// closing says unlocked.
    /// The second value is true when the grant is the later of the two.
    fn unlocked_since(&self) -> Option<(TimestampMs, bool)> {
        if self.door_open != Some(false) || self.locked != Some(false) {
            return None;
        }
        let closed = self.closed_since?;
        if self.locked_ts? < closed {
            return None;
        }
        Some(match self.last_granted {
            Some(g) if g > closed => (g, true),
            _ => (closed, false),
        })
    }
}

/// Judges one telemetry reading.
pub fn on_reading(cfg: &Config, r: &Reading, ts: TimestampMs, st: &mut State) -> Outcome {
    // forced_open: the door went from closed to open while the previous reading said
    // locked, with no grant since shortly before that reading.
    let opened_locked = r.door_open && st.door_open == Some(false) && st.locked == Some(true);
    let grant_from = st.door_ts.unwrap_or(ts).min(ts).saturating_sub(cfg.forced_grace_ms);
    let forced = opened_locked && !st.granted_since(grant_from);
    let locked_before = st.locked_ts;

    st.set_door(r.door_open, ts);
    st.locked = Some(r.locked);
    st.locked_ts = Some(ts);
    if let Some(f) = r.fire_door {
        st.fire_door = Some(f);
    }
    st.expire_denials(ts, cfg.reader_window_ms);

    let mut out = Outcome::default();
    out.conditions.extend(held_open(cfg, st, ts));
    out.conditions.push(if forced {
        opened_while_locked(cfg, locked_before, ts)
    } else {
        Condition::inactive(FORCED_OPEN)
    });
    out.conditions.push(lock_fault(cfg, st, ts, false));
    if let Some(ok) = r.mains_ok {
        out.conditions.push(mains_failure(ok, r.battery_v, ts));
    }
    if let Some(v) = r.battery_v {
        out.conditions.push(battery_low(cfg, v, r.mains_ok, ts));
    }
    if let Some(t) = r.tamper {
        out.conditions.push(Condition::judge(TAMPER, t, || {
            Condition::active(TAMPER, 2, "Tamper switch open (enclosure opened or removed)")
                .evidence(ts, "tamper", 1.0)
                .diagnosis(Diagnosis::hardware(
                    "Controller or reader enclosure opened or pulled off the wall (vandalism, \
                     cover left open after work), or a faulty tamper switch",
                    &["tamper switch", "enclosure cover and screws"],
                ))
        }));
    }
    out.conditions.push(Condition::inactive(READER_SUSPECT));
    if let Some(c) = r.cycles_total {
        out.meter(DOOR_CYCLES, c as f64);
    }
    out
}

/// Judges one event.
pub fn on_event(cfg: &Config, ev: DoorEvent, ts: TimestampMs, st: &mut State) -> Outcome {
    st.expire_denials(ts, cfg.reader_window_ms);
    let mut forced = None;
    let mut reader = None;
    let mut lock_reported = false;
    match ev {
        DoorEvent::AccessGranted => {
            st.last_granted = Some(st.last_granted.map_or(ts, |g| g.max(ts)));
        }
        DoorEvent::AccessDenied => {
            st.denied.push_back(ts);
            st.expire_denials(ts, cfg.reader_window_ms);
            let recent: Vec<TimestampMs> = st.denied.iter().copied().filter(|t| *t <= ts).collect();
            if recent.len() >= cfg.reader_denied_count {
                let first = recent.iter().copied().min().unwrap_or(ts);
                reader = Some(
                    Condition::active(
                        READER_SUSPECT,
                        4,
                        format!(
                            "{} access denials within {} (limit {})",
                            recent.len(),
                            duration(cfg.reader_window_ms),
                            cfg.reader_denied_count
                        ),
                    )
                    .evidence(first, "access_denied", 1.0)
                    .evidence(ts, "access_denied", recent.len() as f64)
                    .diagnosis(Diagnosis::hardware(
                        "Card reader misreading (dirty, damaged or interfered with), a \
                         credential list not synchronised to the controller, or someone \
                         trying cards",
                        &["card reader"],
                    )),
                );
            }
        }
        DoorEvent::DoorOpened => {
            let was_locked = st.door_open != Some(true) && st.locked == Some(true);
            if was_locked && !st.granted_since(ts.saturating_sub(cfg.forced_grace_ms)) {
                forced = Some(opened_while_locked(cfg, st.locked_ts, ts));
            }
            st.set_door(true, ts);
        }
        DoorEvent::DoorClosed => st.set_door(false, ts),
        DoorEvent::ForcedOpen => {
            forced = Some(
                Condition::active(FORCED_OPEN, 2, "Controller reported the door forced open")
                    .evidence(ts, "forced_open", 1.0)
                    .diagnosis(forced_diagnosis()),
            );
            st.set_door(true, ts);
        }
        DoorEvent::LockFault => lock_reported = true,
    }

    let mut out = Outcome::default();
    out.conditions.extend(held_open(cfg, st, ts));
    out.conditions.push(forced.unwrap_or_else(|| Condition::inactive(FORCED_OPEN)));
    out.conditions.push(lock_fault(cfg, st, ts, lock_reported));
    out.conditions.push(reader.unwrap_or_else(|| Condition::inactive(READER_SUSPECT)));
    out
}

/// `door_held_open`, judged when the door position is known.
fn held_open(cfg: &Config, st: &State, ts: TimestampMs) -> Option<Condition> {
    let open = st.door_open?;
    let (since, held) = match (open, st.held_open.since(), st.held_open.held_for(ts)) {
        (true, Some(since), Some(held)) => (since, held),
        _ => return Some(Condition::inactive(DOOR_HELD_OPEN)),
    };
    let fire = st.fire_door.unwrap_or(cfg.fire_door);
    let (limit, severity, what) =
        if fire { (cfg.held_open_fire_ms, 2, "Fire door") } else { (cfg.held_open_ms, 3, "Door") };
    Some(Condition::judge(DOOR_HELD_OPEN, held >= limit, || {
        let cause = if fire {
            "Fire door propped or wedged open, or its closer / hold-open release does not \
             close it: a fire and smoke barrier is lost"
        } else {
            "Door propped open or not closing: closer weak or out of adjustment, leaf \
             obstructed or dropped on its hinges"
        };
        Condition::active(
            DOOR_HELD_OPEN,
            severity,
            format!("{what} open for {} (limit {})", duration(held), duration(limit)),
        )
        .evidence(since, "door_open", 1.0)
        .evidence(ts, "door_open", 1.0)
        .evidence(ts, "fire_door", if fire { 1.0 } else { 0.0 })
        .diagnosis(Diagnosis::hardware(cause, &["door closer", "hinges", "hold-open magnet"]))
    }))
}

/// `lock_fault`: reported by the controller, or the door closed and still unlocked.
fn lock_fault(cfg: &Config, st: &State, ts: TimestampMs, reported: bool) -> Condition {
    let parts: &[&str] = &["electric lock", "strike plate", "lock power relay"];
    if reported {
        return Condition::active(LOCK_FAULT, 2, "Controller reported a lock fault")
            .evidence(ts, "lock_fault", 1.0)
            .diagnosis(Diagnosis::hardware(
                "Electric lock reports a fault: coil or motor failure, bolt blocked, lock \
                 wiring or lock power",
                parts,
            ));
    }
    let Some((start, granted_later)) = st.unlocked_since() else {
        return Condition::inactive(LOCK_FAULT);
    };
    let held = ts.saturating_sub(start);
    Condition::judge(LOCK_FAULT, held >= cfg.lock_delay_ms, || {
        let summary = if granted_later {
            format!(
                "Door closed and still not locked {} after the last access granted (limit {})",
                duration(held),
                duration(cfg.lock_delay_ms)
            )
        } else {
            format!(
                "Door closed for {} and still not locked (limit {})",
                duration(held),
                duration(cfg.lock_delay_ms)
            )
        };
        let mut c = Condition::active(LOCK_FAULT, 2, summary);
        if let Some(t) = st.closed_since {
            c = c.evidence(t, "door_open", 0.0);
        }
        if granted_later {
            c = c.evidence(start, "access_granted", 1.0);
        }
        if let Some(t) = st.locked_ts {
            c = c.evidence(t, "locked", 0.0);
        }
        c.diagnosis(Diagnosis::hardware(
            "Lock does not engage after closing: strike misaligned or door not fully \
             latched (closer), lock coil or motor failure, or lock power lost",
            parts,
        ))
    })
}

fn mains_failure(ok: bool, battery_v: Option<f64>, ts: TimestampMs) -> Condition {
    Condition::judge(MAINS_FAILURE, !ok, || {
        let summary = match battery_v {
            Some(v) => format!("Mains supply lost, running on backup battery at {v:.1} V"),
            None => "Mains supply lost, running on backup battery".to_owned(),
        };
        let mut c = Condition::active(MAINS_FAILURE, 2, summary).evidence(ts, "mains_ok", 0.0);
        if let Some(v) = battery_v {
            c = c.evidence(ts, "battery_v", v);
        }
        c.diagnosis(Diagnosis::hardware(
            "No mains at the door controller's power supply: tripped breaker, blown fuse, \
             cut supply cable, or a failed power supply unit",
            &["power supply unit", "fuse"],
        ))
    })
}

fn battery_low(cfg: &Config, v: f64, mains_ok: Option<bool>, ts: TimestampMs) -> Condition {
    let (severity, limit, word) = if v < cfg.battery_critical_v {
        (2, cfg.battery_critical_v, "critical")
    } else if v < cfg.battery_low_v {
        (3, cfg.battery_low_v, "low")
    } else {
        return Condition::inactive(BATTERY_LOW);
    };
    let mut c = Condition::active(
        BATTERY_LOW,
        severity,
        format!("Backup battery {word} at {v:.2} V (below {limit} V)"),
    )
    .evidence(ts, "battery_v", v);
    let diagnosis = if mains_ok == Some(false) {
        c = c.evidence(ts, "mains_ok", 0.0);
        Diagnosis::hardware(
            "Battery discharging during a mains failure; the door loses power when it is flat",
            &["12 V backup battery"],
        )
    } else {
        Diagnosis::hardware(
            "Battery at end of life or not charging although mains is present (charger or \
             power supply fault)",
            &["12 V backup battery", "power supply unit"],
        )
    };
    c.diagnosis(diagnosis)
}

/// `forced_open` for a door that opened while the reading at `locked_ts` said locked.
fn opened_while_locked(cfg: &Config, locked_ts: Option<TimestampMs>, ts: TimestampMs) -> Condition {
    let mut c = Condition::active(
        FORCED_OPEN,
        2,
        format!(
            "Door opened while locked with no access granted in the previous {}",
            duration(cfg.forced_grace_ms)
        ),
    );
    if let Some(t) = locked_ts {
        c = c.evidence(t, "locked", 1.0);
    }
    c.evidence(ts, "door_open", 1.0).diagnosis(forced_diagnosis())
}

fn forced_diagnosis() -> Diagnosis {
    Diagnosis::hardware(
        "Door opened without a valid access: forced entry, mechanical key override, or a \
         lock that does not hold (strike misaligned, latch worn, door position sensor faulty)",
        &["lock body", "strike plate", "door position sensor"],
    )
}

/// A duration for people: "45 s", "5 min", "6.5 min", "2.3 h".
pub(crate) fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 120_000 {
        format!("{} s", ms / 1000)
    } else if ms < 7_200_000 {
        if ms % 60_000 == 0 {
            format!("{} min", ms / 60_000)
        } else {
            format!("{:.1} min", ms as f64 / 60_000.0)
        }
    } else {
        format!("{:.1} h", ms as f64 / 3_600_000.0)
    }
}
