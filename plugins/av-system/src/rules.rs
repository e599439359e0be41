//! The AV fault rules (telemetry.md, "AV system" and "Precise semantics").
//!
//! Each reading judges every rule whose fields it carries: an active condition with a
//! summary, evidence and a diagnosis, or an inactive one so the host can start its
//! clear hold. Rules whose fields are missing are left out (their state is kept).

use serde::{Deserialize, Serialize};
use tend_plugin_sdk::prelude::*;

use crate::describe::{
    AMP_OVERTEMP, AMP_PROTECT, DISPLAY_OFFLINE, FAN_FAILURE, LAMP_END_OF_LIFE, METER_FILTER_HOURS,
    METER_LAMP_HOURS, METER_LAMP_LIFE_PCT, PLAYER_STALLED, PROJECTOR_OVERTEMP, SIGNAL_LOSS,
    SPEAKER_LINE_DRIFT, SPEAKER_LINE_OPEN, SPEAKER_LINE_SHORT, default_severity,
};
use crate::reading::{Reading, Zone};

/// Zones named in a summary; the rest are counted ("and 3 more").
const MAX_ZONES_NAMED: usize = 8;
/// Zones given as evidence.
const MAX_ZONES_EVIDENCE: usize = 16;

/// Per-device state kept by the host between readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Since when `display_online` has been false.
    #[serde(default)]
    pub display_off: Held,
    /// Since when `signal_present` has been false.
    #[serde(default)]
    pub signal_off: Held,
}

/// Thresholds: defaults overridable by the device's settings (see the crate doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `amp_overtemp` at or above this amplifier temperature (°C).
    pub amp_overtemp_c: f64,
    /// `projector_overtemp` at or above this projector temperature (°C).
    pub projector_overtemp_c: f64,
    /// `speaker_line_open` above this % of the baseline.
    pub line_open_pct: f64,
    /// `speaker_line_short` below this % of the baseline.
    pub line_short_pct: f64,
    /// `speaker_line_drift` when off the baseline by more than this %.
    pub line_drift_pct: f64,
    /// `display_offline` after the display has been offline this long (s).
    pub display_offline_s: f64,
    /// `player_stalled` at or above this heartbeat age (s).
    pub player_stalled_s: f64,
    /// `signal_loss` after the signal has been absent this long (s).
    pub signal_loss_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            amp_overtemp_c: 75.0,
            projector_overtemp_c: 80.0,
            line_open_pct: 150.0,
            line_short_pct: 50.0,
            line_drift_pct: 20.0,
            display_offline_s: 300.0,
            player_stalled_s: 300.0,
            signal_loss_s: 120.0,
        }
    }
}

impl Limits {
    /// The defaults with the device's overrides applied.
    pub fn from_settings(s: &Settings) -> Result<Self, EvalError> {
        let d = Self::default();
        Ok(Self {
            amp_overtemp_c: s.f64_or("amp_overtemp_c", d.amp_overtemp_c)?,
            projector_overtemp_c: s.f64_or("projector_overtemp_c", d.projector_overtemp_c)?,
            line_open_pct: s.f64_or("line_open_pct", d.line_open_pct)?,
            line_short_pct: s.f64_or("line_short_pct", d.line_short_pct)?,
            line_drift_pct: s.f64_or("line_drift_pct", d.line_drift_pct)?,
            display_offline_s: s.f64_or("display_offline_s", d.display_offline_s)?,
            player_stalled_s: s.f64_or("player_stalled_s", d.player_stalled_s)?,
            signal_loss_s: s.f64_or("signal_loss_s", d.signal_loss_s)?,
        })
    }
}

/// How a zone's line compares with its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    /// Within the drift band.
    Normal,
    /// Above `line_open_pct` of the baseline.
    Open,
    /// Below `line_short_pct` of the baseline.
    Short,
    /// Off by more than `line_drift_pct`, but neither open nor short.
    Drift,
}

/// Classifies one zone; open and short take precedence over drift.
pub fn line_state(zone: &Zone, l: &Limits) -> LineState {
    let pct = zone.pct_of_baseline();
    if pct > l.line_open_pct {
        LineState::Open
    } else if pct < l.line_short_pct {
        LineState::Short
    } else if (pct - 100.0).abs() > l.line_drift_pct {
        LineState::Drift
    } else {
        LineState::Normal
    }
}

/// Event times are clamped to ±this before durations are computed, so absurd `ts`
/// values can never overflow a subtraction.
const TS_BOUND_MS: TimestampMs = 1 << 60;

/// Judges one decoded reading taken at `ts`, updating the state.
pub fn judge(l: &Limits, r: &Reading, ts: TimestampMs, st: &mut State) -> Outcome {
    let ts = ts.clamp(-TS_BOUND_MS, TS_BOUND_MS);
    let mut out = Outcome::default();

    if let Some(on) = r.amp_protect {
        out.conditions.push(Condition::judge(AMP_PROTECT, on, || amp_protect(l, r, ts)));
    }
    if let Some(t) = r.amp_temp_c {
        out.conditions.push(Condition::judge(AMP_OVERTEMP, t >= l.amp_overtemp_c, || {
            active(
                AMP_OVERTEMP,
                format!("Amplifier at {} °C (limit {} °C)", n(t), n(l.amp_overtemp_c)),
            )
            .evidence(ts, "amp_temp_c", t)
            .diagnosis(Diagnosis::hardware(
                "Amplifier overheating: blocked rack ventilation, failed amplifier or rack \
                 fan, or an overloaded output",
                &["amplifier cooling fan", "rack fan"],
            ))
        }));
    }
    if let Some(zones) = &r.zones {
        zone_rules(l, zones, ts, &mut out);
    }
    if let (Some(hours), Some(rated)) = (r.lamp_hours, r.lamp_rated_hours)
        && rated > 0.0
    {
        out.conditions.push(Condition::judge(LAMP_END_OF_LIFE, hours >= rated, || {
            active(
                LAMP_END_OF_LIFE,
                format!(
                    "Projector lamp at {} h of {} h rated ({} %)",
                    n(hours),
                    n(rated),
                    n(hours / rated * 100.0)
                ),
            )
            .evidence(ts, "projector_lamp_hours", hours)
            .evidence(ts, "lamp_rated_hours", rated)
            .diagnosis(Diagnosis::hardware(
                "Projector lamp has reached its rated life: dim picture, colour shift, risk of \
                 the lamp failing or bursting",
                &["projector lamp module", "projector air filter"],
            ))
        }));
    }
    if let Some(t) = r.projector_temp_c {
        let holds = t >= l.projector_overtemp_c;
        out.conditions.push(Condition::judge(PROJECTOR_OVERTEMP, holds, || {
            let mut c = active(
                PROJECTOR_OVERTEMP,
                format!("Projector at {} °C (limit {} °C)", n(t), n(l.projector_overtemp_c)),
            )
            .evidence(ts, "projector_temp_c", t);
            if let Some(h) = r.filter_hours {
                c = c.evidence(ts, "projector_filter_hours", h);
            }
            c.diagnosis(Diagnosis::hardware(
                "Projector overheating: clogged air filter, failed cooling fan or blocked vents",
                &["projector air filter", "projector cooling fan"],
            ))
        }));
    }
    if let Some(online) = r.display_online {
        let held = st.display_off.update(!online, ts);
        let since = st.display_off.since();
        out.conditions.push(held_condition(
            DISPLAY_OFFLINE,
            held,
            since,
            "display_online",
            l.display_offline_s,
            ts,
            |dur| {
                active(
                    DISPLAY_OFFLINE,
                    format!(
                        "Display offline for {} min (limit {} min)",
                        mins(dur),
                        n(l.display_offline_s / 60.0)
                    ),
                )
                .diagnosis(Diagnosis::hardware(
                    "Display powered off or failed (power supply / main board), or its control or \
                     network link is down",
                    &["display power board", "network cable"],
                ))
            },
        ));
    }
    if let Some(age) = r.player_heartbeat_age_s {
        out.conditions.push(Condition::judge(PLAYER_STALLED, age >= l.player_stalled_s, || {
            active(
                PLAYER_STALLED,
                format!("Player heartbeat {} s old (limit {} s)", n(age), n(l.player_stalled_s)),
            )
            .evidence(ts, "player_heartbeat_age_s", age)
            .diagnosis(Diagnosis::software(
                "Media player software hung or crashed (playlist, storage full, update): \
                 restart the player remotely and check its content schedule",
            ))
        }));
    }
    if let Some(present) = r.signal_present {
        let held = st.signal_off.update(!present, ts);
        let since = st.signal_off.since();
        let player_stalled = r.player_heartbeat_age_s.is_some_and(|a| a >= l.player_stalled_s);
        out.conditions.push(held_condition(
            SIGNAL_LOSS,
            held,
            since,
            "signal_present",
            l.signal_loss_s,
            ts,
            |dur| {
                let c = active(
                    SIGNAL_LOSS,
                    format!(
                        "No input signal for {} min (limit {} min)",
                        mins(dur),
                        n(l.signal_loss_s / 60.0)
                    ),
                );
                if player_stalled {
                    c.diagnosis(Diagnosis::software(
                        "The media player feeding this output has stalled: restart it and check \
                         its output settings",
                    ))
                } else {
                    c.diagnosis(Diagnosis::hardware(
                        "Source not sending or the video path is broken: cable, extender or matrix \
                         switcher channel, or a wrong central control route",
                        &["HDMI / HDBaseT cable", "signal extender"],
                    ))
                }
            },
        ));
    }
    if let Some(ok) = r.fan_ok {
        out.conditions.push(Condition::judge(FAN_FAILURE, !ok, || {
            let mut c =
                active(FAN_FAILURE, "Cooling fan reports failure (fan_ok false)".to_owned())
                    .evidence(ts, "fan_ok", 0.0);
            if let Some(t) = r.projector_temp_c {
                c = c.evidence(ts, "projector_temp_c", t);
            }
            c.diagnosis(Diagnosis::hardware(
                "Cooling fan stopped, seized or disconnected; the unit will overheat",
                &["cooling fan"],
            ))
        }));
    }

    if let Some(h) = r.lamp_hours {
        out.meter(METER_LAMP_HOURS, h);
        if let Some(rated) = r.lamp_rated_hours.filter(|r| *r > 0.0) {
            out.meter(METER_LAMP_LIFE_PCT, h / rated * 100.0);
        }
    }
    if let Some(h) = r.filter_hours {
        out.meter(METER_FILTER_HOURS, h);
    }
    out
}

fn active(code: &str, summary: String) -> Condition {
    Condition::active(code, default_severity(code), summary)
}

/// A "false for N s" condition: active once it has held `limit_s`, with the first and
/// the current reading as evidence.
fn held_condition(
    code: &str,
    held: Option<i64>,
    since: Option<TimestampMs>,
    field: &str,
    limit_s: f64,
    ts: TimestampMs,
    make: impl FnOnce(i64) -> Condition,
) -> Condition {
    let limit_ms = limit_s * 1000.0;
    match held {
        Some(dur) if dur as f64 >= limit_ms => {
            let mut c = make(dur);
            if let Some(s) = since.filter(|s| *s != ts) {
                c = c.evidence(s, field, 0.0);
            }
            c.evidence(ts, field, 0.0)
        }
        _ => Condition::inactive(code),
    }
}

fn amp_protect(l: &Limits, r: &Reading, ts: TimestampMs) -> Condition {
    let mut c = active(AMP_PROTECT, "Amplifier in protection mode: its zones are silent".into())
        .evidence(ts, "amp_protect", 1.0);
    let shorted: Vec<&Zone> =
        r.zones.iter().flatten().filter(|z| line_state(z, l) == LineState::Short).collect();
    let hot = r.amp_temp_c.filter(|t| *t >= l.amp_overtemp_c);
    if let Some(t) = r.amp_temp_c {
        c = c.evidence(ts, "amp_temp_c", t);
        c.summary = format!("{} (amplifier at {} °C)", c.summary, n(t));
    }
    let diagnosis = if !shorted.is_empty() {
        Diagnosis::hardware(
            format!(
                "Short circuit on the speaker line of zone(s) {} tripped the amplifier's \
                 protection",
                zone_names(&shorted)
            ),
            &["speaker cable", "ceiling speaker", "line transformer"],
        )
    } else if let Some(t) = hot {
        Diagnosis::hardware(
            format!("Amplifier overheated ({} °C) and went into thermal protection", n(t)),
            &["amplifier cooling fan", "rack fan"],
        )
    } else {
        Diagnosis::hardware(
            "Amplifier protection (output short, overload, DC fault or overheating): check the \
             speaker lines, then the amplifier output stage",
            &["spare power amplifier", "speaker cable"],
        )
    };
    c.diagnosis(diagnosis)
}

fn zone_rules(l: &Limits, zones: &[Zone], ts: TimestampMs, out: &mut Outcome) {
    let of = |state: LineState| -> Vec<&Zone> {
        zones.iter().filter(|z| line_state(z, l) == state).collect()
    };
    let open = of(LineState::Open);
    let short = of(LineState::Short);
    let drift = of(LineState::Drift);

    out.conditions.push(Condition::judge(SPEAKER_LINE_OPEN, !open.is_empty(), || {
        zone_condition(
            SPEAKER_LINE_OPEN,
            &format!("Speaker line open (above {} % of baseline)", n(l.line_open_pct)),
            &open,
            ts,
        )
        .diagnosis(Diagnosis::hardware(
            "Speaker line broken or disconnected: cut cable, loose terminal, or a failed \
             speaker / line transformer on the zone",
            &["speaker cable", "ceiling speaker", "line transformer", "terminal connectors"],
        ))
    }));
    out.conditions.push(Condition::judge(SPEAKER_LINE_SHORT, !short.is_empty(), || {
        zone_condition(
            SPEAKER_LINE_SHORT,
            &format!("Speaker line short (below {} % of baseline)", n(l.line_short_pct)),
            &short,
            ts,
        )
        .diagnosis(Diagnosis::hardware(
            "Short circuit on the speaker line: damaged insulation, water ingress, or a \
             shorted speaker / line transformer; the amplifier may go into protection",
            &["speaker cable", "ceiling speaker", "line transformer"],
        ))
    }));
    out.conditions.push(Condition::judge(SPEAKER_LINE_DRIFT, !drift.is_empty(), || {
        zone_condition(
            SPEAKER_LINE_DRIFT,
            &format!(
                "Speaker line impedance drift (off baseline by more than {} %)",
                n(l.line_drift_pct)
            ),
            &drift,
            ts,
        )
        .diagnosis(Diagnosis::hardware(
            "Speakers added or removed on the line, a failed speaker, or corroded joints \
             raising the line resistance",
            &["ceiling speaker", "terminal connectors"],
        ))
    }));
}

fn zone_condition(code: &str, what: &str, zones: &[&Zone], ts: TimestampMs) -> Condition {
    let mut parts: Vec<String> = zones
        .iter()
        .take(MAX_ZONES_NAMED)
        .map(|z| {
            format!(
                "zone {} {} Ω vs baseline {} Ω ({} %)",
                z.id,
                n(z.impedance_ohm),
                n(z.baseline_ohm),
                n(z.pct_of_baseline())
            )
        })
        .collect();
    if zones.len() > MAX_ZONES_NAMED {
        parts.push(format!("and {} more", zones.len() - MAX_ZONES_NAMED));
    }
    let mut c = active(code, format!("{what}: {}", parts.join("; ")));
    for z in zones.iter().take(MAX_ZONES_EVIDENCE) {
        c = c
            .evidence(ts, &format!("zones[{}].line_impedance_ohm", z.index), z.impedance_ohm)
            .evidence(ts, &format!("zones[{}].baseline_ohm", z.index), z.baseline_ohm);
    }
    c
}

fn zone_names(zones: &[&Zone]) -> String {
    let mut names: Vec<&str> = zones.iter().take(MAX_ZONES_NAMED).map(|z| z.id.as_str()).collect();
    if zones.len() > MAX_ZONES_NAMED {
        names.push("…");
    }
    names.join(", ")
}

/// A number for people: at most two decimals, no trailing zeros.
fn n(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    if r == 0.0 { "0".to_owned() } else { format!("{r}") }
}

/// Milliseconds as minutes for people.
fn mins(ms: i64) -> String {
    n(ms as f64 / 60_000.0)
}
