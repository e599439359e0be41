//! Decoding one telemetry payload into a [`Reading`], before any state changes.
//!
//! `None` means the field is absent (or `null`): the rules needing it are not judged.
//! A present field of the wrong type, a negative counter or a malformed zone is an
//! [`EvalError::BadPayload`] naming the field.

use serde_json::Value;
use tend_plugin_sdk::prelude::*;

/// One speaker zone as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Position in the payload's `zones` array (for evidence field names).
    pub index: usize,
    /// The zone's id (a string, or a number rendered as text).
    pub id: String,
    /// Measured line impedance (Ω, >= 0).
    pub impedance_ohm: f64,
    /// Commissioning baseline impedance (Ω, > 0).
    pub baseline_ohm: f64,
}

impl Zone {
    /// Impedance as a percentage of the baseline.
    pub fn pct_of_baseline(&self) -> f64 {
        self.impedance_ohm / self.baseline_ohm * 100.0
    }
}

/// The fields of one AV telemetry reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Amplifier temperature (°C).
    pub amp_temp_c: Option<f64>,
    /// Amplifier in protection mode.
    pub amp_protect: Option<bool>,
    /// Speaker zones.
    pub zones: Option<Vec<Zone>>,
    /// Projector lamp hours (h, >= 0).
    pub lamp_hours: Option<f64>,
    /// Rated lamp life (h, >= 0; 0 means unknown).
    pub lamp_rated_hours: Option<f64>,
    /// Projector filter hours (h, >= 0).
    pub filter_hours: Option<f64>,
    /// Projector temperature (°C).
    pub projector_temp_c: Option<f64>,
    /// Display reachable and on.
    pub display_online: Option<bool>,
    /// Seconds since the media player's last heartbeat (>= 0).
    pub player_heartbeat_age_s: Option<f64>,
    /// Video input signal present.
    pub signal_present: Option<bool>,
    /// Cooling fan healthy.
    pub fan_ok: Option<bool>,
}

impl Reading {
    /// Decodes every field the rules use; fails on the first invalid one.
    pub fn decode(p: &Payload) -> Result<Self, EvalError> {
        Ok(Self {
            amp_temp_c: number(p, "amp_temp_c")?,
            amp_protect: flag(p, "amp_protect")?,
            zones: zones(p)?,
            lamp_hours: counter(p, "projector_lamp_hours")?,
            lamp_rated_hours: counter(p, "lamp_rated_hours")?,
            filter_hours: counter(p, "projector_filter_hours")?,
            projector_temp_c: number(p, "projector_temp_c")?,
            display_online: flag(p, "display_online")?,
            player_heartbeat_age_s: counter(p, "player_heartbeat_age_s")?,
            signal_present: flag(p, "signal_present")?,
            fan_ok: flag(p, "fan_ok")?,
        })
    }
}

fn bad(field: &str, what: &str) -> EvalError {
    EvalError::BadPayload(format!("`{field}` {what}"))
}

fn number(p: &Payload, name: &str) -> Result<Option<f64>, EvalError> {
    match p.f64(name) {
        Field::Value(v) => Ok(Some(v)),
        Field::Missing => Ok(None),
        Field::Invalid => Err(bad(name, "must be a number")),
    }
}

/// A number that cannot be negative (hours, ages).
fn counter(p: &Payload, name: &str) -> Result<Option<f64>, EvalError> {
    match number(p, name)? {
        Some(v) if v < 0.0 => Err(bad(name, "must not be negative")),
        other => Ok(other),
    }
}

fn flag(p: &Payload, name: &str) -> Result<Option<bool>, EvalError> {
    match p.bool(name) {
        Field::Value(v) => Ok(Some(v)),
        Field::Missing => Ok(None),
        Field::Invalid => Err(bad(name, "must be true or false")),
    }
}

fn zones(p: &Payload) -> Result<Option<Vec<Zone>>, EvalError> {
    match p.array("zones") {
        Field::Missing => Ok(None),
        Field::Invalid => Err(bad("zones", "must be a list of zones")),
        Field::Value(items) => {
            items.iter().enumerate().map(|(i, v)| zone(i, v)).collect::<Result<_, _>>().map(Some)
        }
    }
}

fn zone(index: usize, v: &Value) -> Result<Zone, EvalError> {
    let name = |field: &str| format!("zones[{index}].{field}");
    let obj = v.as_object().ok_or_else(|| bad(&format!("zones[{index}]"), "must be an object"))?;
    let id = match obj.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad(&name("id"), "must be a string or a number")),
    };
    let num = |field: &str| obj.get(field).and_then(Value::as_f64).filter(|x| x.is_finite());
    let impedance_ohm = num("line_impedance_ohm")
        .filter(|x| *x >= 0.0)
        .ok_or_else(|| bad(&name("line_impedance_ohm"), "must be a number >= 0"))?;
    let baseline_ohm = num("baseline_ohm")
        .filter(|x| *x > 0.0)
        .ok_or_else(|| bad(&name("baseline_ohm"), "must be a number > 0"))?;
    Ok(Zone { index, id, impedance_ohm, baseline_ohm })
}
