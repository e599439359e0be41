//! Thresholds: the spec's defaults, overridable per device (keys in the crate doc).

use tend_plugin_sdk::prelude::*;

/// Longest duration a setting may ask for (30 days).
const MAX_DURATION_MS: f64 = 30.0 * 24.0 * HOUR_MS as f64;

/// The thresholds in force for one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// `overheat` at or above this tank temperature (°C).
    pub overheat_c: f64,
    /// `freeze_risk` at or below this collector temperature (°C).
    pub freeze_c: f64,
    /// `vacuum_tube_failure`: irradiance at least this (W/m²).
    pub vacuum_irradiance_w_m2: f64,
    /// `vacuum_tube_failure`: collector - inlet below this (°C).
    pub vacuum_delta_c: f64,
    /// `vacuum_tube_failure`: for this long (ms).
    pub vacuum_ms: i64,
    /// `tank_leak`: a fall of at least this many level points.
    pub tank_leak_drop_pct: f64,
    /// `tank_leak`: window of quiet readings (ms).
    pub tank_leak_window_ms: i64,
    /// Circulation flow at or below this counts as no flow (l/min).
    pub pump_no_flow_l_min: f64,
    /// `pump_failure`: pump on with no flow for this long (ms).
    pub pump_failure_ms: i64,
    /// `water_supply_abnormal`: level rose less than this (points).
    pub water_supply_rise_pct: f64,
    /// `water_supply_abnormal`: valve open this long (ms).
    pub water_supply_ms: i64,
    /// `heater_failure`: tank rose less than this (°C).
    pub heater_rise_c: f64,
    /// `heater_failure`: heater on this long (ms).
    pub heater_ms: i64,
    /// `insulation_degraded`: night loss rate above this (°C/h).
    pub insulation_loss_c_h: f64,
    /// `insulation_degraded`: measured over this long (ms).
    pub insulation_ms: i64,
    /// Lowest plausible temperature (°C).
    pub sensor_min_c: f64,
    /// Highest plausible temperature (°C).
    pub sensor_max_c: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            overheat_c: 95.0,
            freeze_c: 3.0,
            vacuum_irradiance_w_m2: 500.0,
            vacuum_delta_c: 10.0,
            vacuum_ms: minutes(30),
            tank_leak_drop_pct: 5.0,
            tank_leak_window_ms: minutes(60),
            pump_no_flow_l_min: 0.0,
            pump_failure_ms: minutes(5),
            water_supply_rise_pct: 2.0,
            water_supply_ms: minutes(30),
            heater_rise_c: 1.0,
            heater_ms: minutes(60),
            insulation_loss_c_h: 1.5,
            insulation_ms: hours(4),
            sensor_min_c: -40.0,
            sensor_max_c: 150.0,
        }
    }
}

impl Thresholds {
    /// The defaults with a device's overrides applied.
    pub fn from_settings(s: &Settings) -> Result<Self, EvalError> {
        let d = Self::default();
        let t = Self {
            overheat_c: s.f64_or("overheat_c", d.overheat_c)?,
            freeze_c: s.f64_or("freeze_c", d.freeze_c)?,
            vacuum_irradiance_w_m2: s.f64_or("vacuum_irradiance_w_m2", d.vacuum_irradiance_w_m2)?,
            vacuum_delta_c: s.f64_or("vacuum_delta_c", d.vacuum_delta_c)?,
            vacuum_ms: duration(s, "vacuum_min", MINUTE_MS, d.vacuum_ms)?,
            tank_leak_drop_pct: s.f64_or("tank_leak_drop_pct", d.tank_leak_drop_pct)?,
            tank_leak_window_ms: duration(
                s,
                "tank_leak_window_min",
                MINUTE_MS,
                d.tank_leak_window_ms,
            )?,
            pump_no_flow_l_min: s.f64_or("pump_no_flow_l_min", d.pump_no_flow_l_min)?,
            pump_failure_ms: duration(s, "pump_failure_min", MINUTE_MS, d.pump_failure_ms)?,
            water_supply_rise_pct: s.f64_or("water_supply_rise_pct", d.water_supply_rise_pct)?,
            water_supply_ms: duration(s, "water_supply_min", MINUTE_MS, d.water_supply_ms)?,
            heater_rise_c: s.f64_or("heater_rise_c", d.heater_rise_c)?,
            heater_ms: duration(s, "heater_min", MINUTE_MS, d.heater_ms)?,
            insulation_loss_c_h: s.f64_or("insulation_loss_c_h", d.insulation_loss_c_h)?,
            insulation_ms: duration(s, "insulation_h", HOUR_MS, d.insulation_ms)?,
            sensor_min_c: s.f64_or("sensor_min_c", d.sensor_min_c)?,
            sensor_max_c: s.f64_or("sensor_max_c", d.sensor_max_c)?,
        };
        if t.sensor_min_c > t.sensor_max_c {
            return Err(EvalError::BadSettings(
                "setting `sensor_min_c` must not exceed `sensor_max_c`".into(),
            ));
        }
        Ok(t)
    }
}

/// A duration setting given in `unit_ms` units, checked to lie in (0, 30 days].
fn duration(s: &Settings, key: &str, unit_ms: i64, default_ms: i64) -> Result<i64, EvalError> {
    let value = s.f64_or(key, default_ms as f64 / unit_ms as f64)?;
    let ms = value * unit_ms as f64;
    if ms > 0.0 && ms <= MAX_DURATION_MS {
        Ok(ms.round().max(1.0) as i64)
    } else {
        Err(EvalError::BadSettings(format!(
            "setting `{key}` must be a positive duration of at most 30 days, got {value}"
        )))
    }
}
