//! The fault rules, judged on each telemetry reading in event time.
//!
//! Conventions (telemetry.md, "Precise semantics"):
//! - a rule that can be judged on a reading pushes its condition, active or
//!   inactive; a rule whose fields are missing, not a number or (temperatures) out of
//!   range is *not judged* on that reading and its state is left untouched;
//! - "for N min" is [`Held`]: continuously from the first reading where it holds;
//! - a reading older than the newest one seen (or with an absurd `ts`) is judged only
//!   by the momentary rules (`overheat`, `freeze_risk`, `sensor_fault`,
//!   `controller_error`); the duration and window rules and the meter ignore it, so a
//!   late reading cannot corrupt their timing.

use serde::{Deserialize, Serialize};
use tend_plugin_sdk::prelude::*;

use crate::describe::{
    CONTROLLER_ERROR, FREEZE_RISK, HEATER_FAILURE, INSULATION_DEGRADED, OVERHEAT, PUMP_FAILURE,
    PUMP_RUN_HOURS, SENSOR_FAULT, TANK_LEAK, VACUUM_TUBE_FAILURE, WATER_SUPPLY_ABNORMAL,
    default_severity,
};
use crate::diagnosis;
use crate::thresholds::Thresholds;

/// A `ts` further than this from the epoch (about 35,000 years) is not used for timing.
const MAX_TS_MS: i64 = 1 << 50;
/// The pump meter counts at most this much for one interval (a data gap is not running).
const METER_CAP_MS: i64 = minutes(5);
/// Spacing of the night tank temperatures kept for `insulation_degraded`.
const NIGHT_SAMPLE_MS: i64 = minutes(5);
/// A window span long enough never to expire anything by itself.
const NO_EXPIRY: i64 = i64::MAX / 4;

/// The temperature fields checked by `sensor_fault`.
pub const TEMPERATURE_FIELDS: [&str; 4] =
    ["collector_temp_c", "tank_temp_c", "inlet_temp_c", "ambient_temp_c"];

/// Per-device state kept by the host between readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Newest `ts` used for timing.
    last_ts: Option<TimestampMs>,
    /// `pump_on` at the newest reading (for the meter).
    pump_was_on: Option<bool>,
    /// The `pump_run_hours` meter.
    pump_run_hours: f64,
    /// Strong sun, pump off, collector not warmer than the inlet.
    vacuum: Held,
    /// Pump on with no circulation flow.
    pump_dry: Held,
    /// Levels of the current run of readings with no draw and the valve closed.
    quiet_levels: Window<f64>,
    /// Tank level since the inlet valve opened.
    valve_open: ChangeSinceOn,
    /// Tank temperature since the heater turned on.
    heater_on: ChangeSinceOn,
    /// Undisturbed night (irradiance 0, heater off, no draw).
    night: Held,
    /// Tank temperatures of the current night, one per [`NIGHT_SAMPLE_MS`].
    night_temps: Window<f64>,
}

impl State {
    /// The `pump_run_hours` meter value.
    pub fn pump_run_hours(&self) -> f64 {
        self.pump_run_hours
    }
}

/// A temperature field as read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Temp {
    Ok(f64),
    OutOfRange(f64),
    Missing,
    Invalid,
}

impl Temp {
    fn read(p: &Payload, field: &str, t: &Thresholds) -> Self {
        match p.f64(field) {
            Field::Value(v) if v >= t.sensor_min_c && v <= t.sensor_max_c => Temp::Ok(v),
            Field::Value(v) => Temp::OutOfRange(v),
            Field::Missing => Temp::Missing,
            Field::Invalid => Temp::Invalid,
        }
    }

    fn value(self) -> Option<f64> {
        match self {
            Temp::Ok(v) => Some(v),
            _ => None,
        }
    }
}

/// One decoded reading; `None` means missing or not usable.
struct Reading {
    temps: [Temp; 4],
    level: Option<f64>,
    irradiance: Option<f64>,
    pump_on: Option<bool>,
    circulation: Option<f64>,
    draw: Option<f64>,
    valve_open: Option<bool>,
    heater_on: Option<bool>,
    error_code: Option<i64>,
}

impl Reading {
    fn decode(p: &Payload, t: &Thresholds) -> Self {
        Self {
            temps: TEMPERATURE_FIELDS.map(|f| Temp::read(p, f, t)),
            level: p.f64("tank_level_pct").ok(),
            irradiance: p.f64("irradiance_w_m2").ok(),
            pump_on: p.bool("pump_on").ok(),
            circulation: p.f64("circulation_flow_l_min").ok(),
            draw: p.f64("draw_flow_l_min").ok(),
            valve_open: p.bool("inlet_valve_open").ok(),
            heater_on: p.bool("heater_on").ok(),
            error_code: p.i64("error_code").ok(),
        }
    }

    fn collector(&self) -> Option<f64> {
        self.temps[0].value()
    }

    fn tank(&self) -> Option<f64> {
        self.temps[1].value()
    }

    fn inlet(&self) -> Option<f64> {
        self.temps[2].value()
    }
}

/// Judges one telemetry reading at event time `ts`, updating `st`.
pub fn judge(t: &Thresholds, p: &Payload, ts: TimestampMs, st: &mut State) -> Outcome {
    let r = Reading::decode(p, t);
    let timed = (-MAX_TS_MS..=MAX_TS_MS).contains(&ts) && st.last_ts.is_none_or(|l| ts >= l);
    // Table order; the timed rules run only on in-order readings.
    let judged = [
        overheat(t, &r, ts),
        freeze_risk(t, &r, ts),
        if timed { vacuum_tube_failure(t, &r, ts, st) } else { None },
        if timed { tank_leak(t, &r, ts, st) } else { None },
        if timed { pump_failure(t, &r, ts, st) } else { None },
        if timed { water_supply_abnormal(t, &r, ts, st) } else { None },
        if timed { heater_failure(t, &r, ts, st) } else { None },
        if timed { insulation_degraded(t, &r, ts, st) } else { None },
        Some(sensor_fault(t, &r, ts)),
        controller_error(&r, ts),
    ];
    if timed {
        advance_meter(&r, ts, st);
        st.last_ts = Some(ts);
    }
    let mut out = Outcome { conditions: judged.into_iter().flatten().collect(), meters: vec![] };
    out.meter(PUMP_RUN_HOURS, st.pump_run_hours);
    out
}

/// Adds the interval since the previous reading if the pump was on at it (capped).
fn advance_meter(r: &Reading, ts: TimestampMs, st: &mut State) {
    if let (Some(last), Some(true)) = (st.last_ts, st.pump_was_on) {
        let dt = ts.saturating_sub(last).clamp(0, METER_CAP_MS);
        st.pump_run_hours += dt as f64 / HOUR_MS as f64;
    }
    st.pump_was_on = r.pump_on;
}

/// A number for a summary: one decimal, or scientific when absurdly large.
fn num(v: f64) -> String {
    if v.abs() < 1.0e6 { format!("{v:.1}") } else { format!("{v:.3e}") }
}

/// A duration in whole minutes for a summary.
fn mins(ms: i64) -> i64 {
    ms / MINUTE_MS
}

fn active(code: &str, summary: String) -> Condition {
    Condition::active(code, default_severity(code), summary)
}

fn overheat(t: &Thresholds, r: &Reading, ts: TimestampMs) -> Option<Condition> {
    let tank = r.tank()?;
    Some(Condition::judge(OVERHEAT, tank >= t.overheat_c, || {
        active(OVERHEAT, format!("Tank at {} °C (limit {} °C)", num(tank), num(t.overheat_c)))
            .evidence(ts, "tank_temp_c", tank)
            .diagnosis(diagnosis::overheat())
    }))
}

fn freeze_risk(t: &Thresholds, r: &Reading, ts: TimestampMs) -> Option<Condition> {
    let collector = r.collector()?;
    let pump = r.pump_on?;
    Some(Condition::judge(FREEZE_RISK, collector <= t.freeze_c && !pump, || {
        active(
            FREEZE_RISK,
            format!(
                "Collector at {} °C with the circulation pump off (limit {} °C)",
                num(collector),
                num(t.freeze_c)
            ),
        )
        .evidence(ts, "collector_temp_c", collector)
        .evidence(ts, "pump_on", 0.0)
        .diagnosis(diagnosis::freeze_risk())
    }))
}

fn vacuum_tube_failure(
    t: &Thresholds,
    r: &Reading,
    ts: TimestampMs,
    st: &mut State,
) -> Option<Condition> {
    let irradiance = r.irradiance?;
    let pump = r.pump_on?;
    let collector = r.collector()?;
    let inlet = r.inlet()?;
    let delta = collector - inlet;
    let holds = irradiance >= t.vacuum_irradiance_w_m2 && !pump && delta < t.vacuum_delta_c;
    let held = st.vacuum.update(holds, ts);
    Some(match held {
        Some(ms) if ms >= t.vacuum_ms => active(
            VACUUM_TUBE_FAILURE,
            format!(
                "Collector only {} °C above inlet after {} min of >= {} W/m² sun with the \
                 pump off (now {} W/m²)",
                num(delta),
                mins(ms),
                num(t.vacuum_irradiance_w_m2),
                num(irradiance)
            ),
        )
        .evidence(ts, "irradiance_w_m2", irradiance)
        .evidence(ts, "collector_temp_c", collector)
        .evidence(ts, "inlet_temp_c", inlet)
        .evidence(ts, "pump_on", 0.0)
        .diagnosis(diagnosis::vacuum_tube_failure()),
        _ => Condition::inactive(VACUUM_TUBE_FAILURE),
    })
}

fn tank_leak(t: &Thresholds, r: &Reading, ts: TimestampMs, st: &mut State) -> Option<Condition> {
    let level = r.level?;
    let draw = r.draw?;
    let valve = r.valve_open?;
    if draw > 0.0 || valve {
        // Water drawn or refilled: the level legitimately moves, the comparison restarts.
        st.quiet_levels.clear();
        return Some(Condition::inactive(TANK_LEAK));
    }
    st.quiet_levels.push(ts, level, t.tank_leak_window_ms);
    // Highest quiet level in the window (the latest one on ties); includes this reading.
    let (peak_ts, peak) = st
        .quiet_levels
        .iter()
        .fold((ts, level), |best, &(pt, pv)| if pv >= best.1 { (pt, pv) } else { best });
    let drop = peak - level;
    Some(Condition::judge(TANK_LEAK, drop >= t.tank_leak_drop_pct, || {
        active(
            TANK_LEAK,
            format!(
                "Tank level fell {} points ({} -> {} %) in {} min with no draw and the inlet \
                 valve closed",
                num(drop),
                num(peak),
                num(level),
                mins(ts - peak_ts)
            ),
        )
        .evidence(peak_ts, "tank_level_pct", peak)
        .evidence(ts, "tank_level_pct", level)
        .evidence(ts, "draw_flow_l_min", draw)
        .evidence(ts, "inlet_valve_open", 0.0)
        .diagnosis(diagnosis::tank_leak())
    }))
}

fn pump_failure(t: &Thresholds, r: &Reading, ts: TimestampMs, st: &mut State) -> Option<Condition> {
    let pump = r.pump_on?;
    let flow = r.circulation?;
    let held = st.pump_dry.update(pump && flow <= t.pump_no_flow_l_min, ts);
    Some(match held {
        Some(ms) if ms >= t.pump_failure_ms => active(
            PUMP_FAILURE,
            format!("Pump on for {} min with no circulation flow ({} l/min)", mins(ms), num(flow)),
        )
        .evidence(ts, "pump_on", 1.0)
        .evidence(ts, "circulation_flow_l_min", flow)
        .diagnosis(diagnosis::pump_failure()),
        _ => Condition::inactive(PUMP_FAILURE),
    })
}

fn water_supply_abnormal(
    t: &Thresholds,
    r: &Reading,
    ts: TimestampMs,
    st: &mut State,
) -> Option<Condition> {
    let valve = r.valve_open?;
    let level = r.level?;
    let Some(OnRun { since, held_ms: held, start, change: rise }) =
        st.valve_open.update(valve, level, ts)
    else {
        return Some(Condition::inactive(WATER_SUPPLY_ABNORMAL));
    };
    let holds = held >= t.water_supply_ms && rise < t.water_supply_rise_pct;
    Some(Condition::judge(WATER_SUPPLY_ABNORMAL, holds, || {
        active(
            WATER_SUPPLY_ABNORMAL,
            format!(
                "Inlet valve open {} min, level rose only {} points ({} -> {} %)",
                mins(held),
                num(rise),
                num(start),
                num(level)
            ),
        )
        .evidence(since, "tank_level_pct", start)
        .evidence(ts, "tank_level_pct", level)
        .evidence(ts, "inlet_valve_open", 1.0)
        .diagnosis(diagnosis::water_supply_abnormal())
    }))
}

fn heater_failure(
    t: &Thresholds,
    r: &Reading,
    ts: TimestampMs,
    st: &mut State,
) -> Option<Condition> {
    let heater = r.heater_on?;
    let tank = r.tank()?;
    let Some(OnRun { since, held_ms: held, start, change: rise }) =
        st.heater_on.update(heater, tank, ts)
    else {
        return Some(Condition::inactive(HEATER_FAILURE));
    };
    let holds = held >= t.heater_ms && rise < t.heater_rise_c;
    Some(Condition::judge(HEATER_FAILURE, holds, || {
        active(
            HEATER_FAILURE,
            format!(
                "Heater on {} min, tank rose only {} °C ({} -> {} °C)",
                mins(held),
                num(rise),
                num(start),
                num(tank)
            ),
        )
        .evidence(since, "tank_temp_c", start)
        .evidence(ts, "tank_temp_c", tank)
        .evidence(ts, "heater_on", 1.0)
        .diagnosis(diagnosis::heater_failure())
    }))
}

fn insulation_degraded(
    t: &Thresholds,
    r: &Reading,
    ts: TimestampMs,
    st: &mut State,
) -> Option<Condition> {
    let irradiance = r.irradiance?;
    let heater = r.heater_on?;
    let draw = r.draw?;
    let tank = r.tank()?;
    let night = irradiance <= 0.0 && !heater && draw <= 0.0;
    if !night {
        st.night.reset();
        st.night_temps.clear();
        // Daylight: inactive. A night disturbed by the heater or a draw cannot be
        // judged; the measurement restarts once it is undisturbed again.
        return (irradiance > 0.0).then(|| Condition::inactive(INSULATION_DEGRADED));
    }
    let held = st.night.update(true, ts).unwrap_or(0);
    if st.night_temps.last().is_none_or(|&(lt, _)| ts - lt >= NIGHT_SAMPLE_MS) {
        st.night_temps.push(ts, tank, NO_EXPIRY);
    }
    // Keep the newest sample at least the measuring span old, and everything after it.
    let horizon = ts - t.insulation_ms;
    let base = st.night_temps.iter().filter(|(bt, _)| *bt <= horizon).last().copied();
    if let Some((bt, _)) = base {
        st.night_temps.expire(bt);
    }
    if held < t.insulation_ms {
        return None; // not yet a full span of night: cannot judge
    }
    let (base_ts, base_temp) = base?;
    let span_h = (ts - base_ts) as f64 / HOUR_MS as f64;
    if span_h <= 0.0 {
        return None;
    }
    let rate = (base_temp - tank) / span_h;
    Some(Condition::judge(INSULATION_DEGRADED, rate > t.insulation_loss_c_h, || {
        active(
            INSULATION_DEGRADED,
            format!(
                "Tank lost {} °C/h at night ({} -> {} °C in {} h, limit {} °C/h)",
                num(rate),
                num(base_temp),
                num(tank),
                num(span_h),
                num(t.insulation_loss_c_h)
            ),
        )
        .evidence(base_ts, "tank_temp_c", base_temp)
        .evidence(ts, "tank_temp_c", tank)
        .evidence(ts, "irradiance_w_m2", irradiance)
        .diagnosis(diagnosis::insulation_degraded())
    }))
}

fn sensor_fault(t: &Thresholds, r: &Reading, ts: TimestampMs) -> Condition {
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    for (field, temp) in TEMPERATURE_FIELDS.iter().zip(r.temps) {
        match temp {
            Temp::Ok(_) => {}
            Temp::OutOfRange(v) => {
                problems.push(format!("{field} {} °C out of range", num(v)));
                evidence.push((*field, v));
            }
            Temp::Missing => problems.push(format!("{field} missing")),
            Temp::Invalid => problems.push(format!("{field} not a number")),
        }
    }
    if problems.is_empty() {
        return Condition::inactive(SENSOR_FAULT);
    }
    let summary = format!(
        "Temperature sensor fault: {} (valid {}..{} °C)",
        problems.join("; "),
        num(t.sensor_min_c),
        num(t.sensor_max_c)
    );
    evidence
        .into_iter()
        .fold(active(SENSOR_FAULT, summary), |c, (f, v)| c.evidence(ts, f, v))
        .diagnosis(diagnosis::sensor_fault())
}

fn controller_error(r: &Reading, ts: TimestampMs) -> Option<Condition> {
    let code = r.error_code?;
    Some(Condition::judge(CONTROLLER_ERROR, code != 0, || {
        active(CONTROLLER_ERROR, format!("Controller reports error code {code}"))
            .evidence(ts, "error_code", code as f64)
            .diagnosis(diagnosis::controller_error(code))
    }))
}
