//! Solar water heater (`solar-water-heater`): an evacuated-tube collector on a
//! non-pressurised storage tank, a differential pump controller, a level-controlled
//! refill valve and an evening electric backup heater. One reading every 60 s.
//!
//! Physics per minute: irradiance follows the sun (06:00-18:00 local, a sine with a
//! slowly wandering cloud factor); the collector relaxes toward ambient plus a solar
//! gain (pump off, stagnation) or toward the tank plus a smaller gain (pump on); the
//! tank is one well-mixed volume gaining collector power and heater power, losing
//! heat through its insulation (UA × ΔT), cooled by cold refill water mixing in
//! (the controller refills below 70 % while the sun is up, 06:30-17:30, so the sun
//! reheats the cold water; a late evening of showers may run the tank low).
//! Hot water draws follow the occupants' day (mornings, lunch, evenings).
//!
//! What each injected fault does:
//! - `overheat`: the heater's thermostat sticks: heater on whatever the tank says.
//! - `freeze_risk`: a cold snap under heavy overcast (ambient toward -6 °C) with the
//!   controller's anti-freeze circulation broken.
//! - `vacuum_tube_failure`: the tubes lost their vacuum: almost no collector gain, so
//!   the pump never starts (visible in sunshine only, as in reality).
//! - `tank_leak`: the tank loses 9 points an hour; nobody draws and the refill valve
//!   stays shut meanwhile (the rule can only judge quiet periods).
//! - `pump_failure`: the pump is commanded on but moves no water.
//! - `water_supply_abnormal`: the refill valve is open but no water comes.
//! - `heater_failure`: the heater is switched on but its element is dead (the tank
//!   does not warm unless the sun warms it).
//! - `insulation_degraded`: the tank loses heat 25 times faster.
//! - `sensor_fault`: the collector probe reads -127 °C (open circuit).
//! - `controller_error`: the controller reports error code 21.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::{Ctx, Generated, noise, relax, round};
use tend_agent::config::Device;

/// The equipment type.
pub const TYPE: &str = "solar-water-heater";

/// The fault codes this model can inject.
pub const CODES: &[&str] = &[
    "overheat",
    "freeze_risk",
    "vacuum_tube_failure",
    "tank_leak",
    "pump_failure",
    "water_supply_abnormal",
    "heater_failure",
    "insulation_degraded",
    "sensor_fault",
    "controller_error",
];

/// Telemetry period.
pub const PERIOD_MS: i64 = 60_000;
const DT_S: f64 = 60.0;
/// Water: J per litre per kelvin.
const J_PER_L_K: f64 = 4186.0;
/// Refill valve: opens below, closes at or above (level %).
const REFILL_OPEN_PCT: f64 = 70.0;
const REFILL_CLOSE_PCT: f64 = 95.0;
/// The controller refills by day only (cold water mixed into a hot tank at night
/// wastes the day's heat and would read as poor insulation).
const REFILL_HOURS: (f64, f64) = (6.5, 17.5);
/// Refill flow, l/min.
const REFILL_L_MIN: f64 = 15.0;
/// Controller: tank high limit (pump stops collecting), °C.
const TANK_HIGH_LIMIT_C: f64 = 85.0;
/// Backup heater: evening window and thermostat band.
const HEATER_HOURS: (f64, f64) = (17.0, 21.0);
const HEATER_ON_BELOW_C: f64 = 45.0;
const HEATER_OFF_AT_C: f64 = 55.0;
/// Error code reported by an injected `controller_error`.
pub const CONTROLLER_ERROR_CODE: i64 = 21;

/// One solar water heater.
pub struct Solar {
    rng: StdRng,
    next_ms: i64,
    volume_l: f64,
    area_m2: f64,
    heater_w: f64,
    ua_w_k: f64,
    cloud: f64,
    ambient_c: f64,
    collector_c: f64,
    tank_c: f64,
    level_pct: f64,
    pump_on: bool,
    heater_on: bool,
    valve_open: bool,
    /// Current draw (l/min) and the minutes it still lasts.
    draw: Option<(f64, u32)>,
}

impl Solar {
    /// A heater in a plausible state at `start_ms` (model `SWH-500` has a 500 l tank).
    pub fn new(d: &Device, mut rng: StdRng, start_ms: i64, ctx: &Ctx<'_>) -> Self {
        let volume_l = if d.model.contains("500") { 500.0 } else { 300.0 };
        let h = ctx.local_hour(start_ms);
        let ambient_c = diurnal_ambient(h);
        let tank_c = 50.0 + rng.random_range(0.0..8.0);
        Self {
            volume_l,
            // About 30 evacuated tubes (5 m²) per 300 l.
            area_m2: volume_l / 60.0,
            // The backup element heats the full tank about 17 °C an hour.
            heater_w: volume_l * 20.0,
            ua_w_k: 1.0 + rng.random_range(0.0..0.5),
            cloud: rng.random_range(0.8..1.0),
            ambient_c,
            collector_c: ambient_c + clear_sky(h) * 0.1,
            tank_c,
            level_pct: rng.random_range(85.0..95.0_f64).round(),
            pump_on: false,
            heater_on: false,
            valve_open: false,
            draw: None,
            next_ms: start_ms,
            rng,
        }
    }

    /// Readings with `ts` up to `to_ms`.
    pub fn advance(&mut self, to_ms: i64, ctx: &Ctx<'_>) -> Vec<Generated> {
        let mut out = Vec::new();
        while self.next_ms <= to_ms {
            let t = self.next_ms;
            out.push((t, "telemetry", self.step(t, ctx)));
            self.next_ms += PERIOD_MS;
        }
        out
    }

    /// Advances the physics by one period ending at `t` and reads the sensors.
    fn step(&mut self, t: i64, ctx: &Ctx<'_>) -> Map<String, Value> {
        let h = ctx.local_hour(t);
        let on = |code| ctx.fault(code, t).is_some();
        let cold_snap = on("freeze_risk");

        // Weather.
        self.cloud = (self.cloud + noise(&mut self.rng, 0.02)).clamp(0.55, 1.0);
        let mut irradiance = clear_sky(h) * self.cloud;
        if cold_snap {
            irradiance *= 0.1;
        }
        let ambient_target = if cold_snap { -6.0 } else { diurnal_ambient(h) };
        let ambient_tau = if cold_snap { 1200.0 } else { 1800.0 };
        self.ambient_c = relax(self.ambient_c, ambient_target, DT_S, ambient_tau);
        let inlet_c = 15.0 + 0.2 * (self.ambient_c - 16.0);

        // Occupants draw hot water.
        let leak = on("tank_leak");
        self.draw = match self.draw {
            Some((flow, left)) if left > 1 && !leak && self.level_pct > 10.0 => {
                Some((flow, left - 1))
            }
            Some(_) => None,
            None if !leak
                && self.level_pct > 10.0
                && self.rng.random::<f64>() < draw_chance(h) * self.volume_l / 300.0 =>
            {
                let flow = self.rng.random_range(4.0..8.0_f64).round();
                Some((flow, self.rng.random_range(3..8)))
            }
            None => None,
        };
        let draw_l_min = self.draw.map_or(0.0, |(f, _)| f);

        // Refill valve.
        let no_supply = on("water_supply_abnormal");
        if no_supply {
            self.valve_open = true;
        } else if leak {
            self.valve_open = false;
        } else if self.level_pct < REFILL_OPEN_PCT && REFILL_HOURS.0 <= h && h < REFILL_HOURS.1 {
            self.valve_open = true;
        } else if self.level_pct >= REFILL_CLOSE_PCT {
            self.valve_open = false;
        }
        let refill_l_min = if self.valve_open && !no_supply { REFILL_L_MIN } else { 0.0 };

        // Differential pump controller (hysteresis 7 / 3 K, tank high limit).
        let delta = self.collector_c - self.tank_c;
        if self.tank_c >= TANK_HIGH_LIMIT_C || delta < 3.0 {
            self.pump_on = false;
        } else if delta >= 7.0 {
            self.pump_on = true;
        }
        let pump_dead = on("pump_failure");
        if pump_dead {
            self.pump_on = true;
        }
        let circulation = if self.pump_on && !pump_dead {
            (6.0 + noise(&mut self.rng, 0.15)).max(0.5)
        } else {
            0.0
        };
        let circulating = circulation > 0.0;

        // Evening backup heater.
        let in_window = (HEATER_HOURS.0..HEATER_HOURS.1).contains(&h);
        if !in_window || self.tank_c >= HEATER_OFF_AT_C {
            self.heater_on = false;
        } else if self.tank_c < HEATER_ON_BELOW_C {
            self.heater_on = true;
        }
        let stuck = on("overheat");
        let dead_element = on("heater_failure");
        if stuck || dead_element {
            self.heater_on = true;
        }
        let heater_w = if self.heater_on && !dead_element { self.heater_w } else { 0.0 };

        // Collector.
        let gain = if on("vacuum_tube_failure") { 0.002 } else { 0.12 };
        let collector_target = if circulating {
            self.tank_c + irradiance * gain / 6.0
        } else {
            self.ambient_c + irradiance * gain
        };
        self.collector_c = relax(self.collector_c, collector_target, DT_S, 480.0);

        // Tank: energy, then water in and out.
        let water_l = (self.level_pct / 100.0 * self.volume_l).max(5.0);
        let solar_w = if circulating { self.area_m2 * irradiance * 0.6 * gain / 0.12 } else { 0.0 };
        // Heat leaves through the wetted part of the wall (and the lid).
        let wetted = 0.3 + 0.7 * self.level_pct / 100.0;
        let ua = wetted * if on("insulation_degraded") { self.ua_w_k * 25.0 } else { self.ua_w_k };
        let loss_w = ua * (self.tank_c - self.ambient_c);
        self.tank_c += (solar_w + heater_w - loss_w) * DT_S / (water_l * J_PER_L_K);
        let out_l = draw_l_min.min(water_l - 5.0).max(0.0);
        let in_l = refill_l_min.min(self.volume_l - (water_l - out_l)).max(0.0);
        let remaining = water_l - out_l;
        self.tank_c = (self.tank_c * remaining + inlet_c * in_l) / (remaining + in_l);
        self.tank_c = self.tank_c.min(99.0);
        let mut level = (remaining + in_l) / self.volume_l * 100.0;
        if leak {
            level -= 0.15;
        }
        self.level_pct = level.clamp(0.0, 100.0);

        let collector_reading =
            if on("sensor_fault") { -127.0 } else { round(self.collector_c, 1) };
        let mut m = Map::new();
        m.insert("ts".into(), ctx.ts(t));
        m.insert("collector_temp_c".into(), json!(collector_reading));
        m.insert("tank_temp_c".into(), json!(round(self.tank_c, 1)));
        m.insert("tank_level_pct".into(), json!(round(self.level_pct, 1)));
        m.insert("inlet_temp_c".into(), json!(round(inlet_c, 1)));
        m.insert("ambient_temp_c".into(), json!(round(self.ambient_c, 1)));
        m.insert("irradiance_w_m2".into(), json!(irradiance.round()));
        m.insert("pump_on".into(), json!(self.pump_on));
        m.insert("circulation_flow_l_min".into(), json!(round(circulation, 1)));
        m.insert("draw_flow_l_min".into(), json!(draw_l_min));
        m.insert("inlet_valve_open".into(), json!(self.valve_open));
        m.insert("heater_on".into(), json!(self.heater_on));
        let error = if on("controller_error") { CONTROLLER_ERROR_CODE } else { 0 };
        m.insert("error_code".into(), json!(error));
        m
    }
}

/// Clear-sky irradiance (W/m²) at local hour `h`: sunrise 06:00, sunset 18:00.
pub fn clear_sky(h: f64) -> f64 {
    if !(6.0..18.0).contains(&h) {
        return 0.0;
    }
    950.0 * (std::f64::consts::PI * (h - 6.0) / 12.0).sin().powf(1.2)
}

/// Outdoor temperature (°C) of a mild season: 11 °C before dawn, 21 °C at 14:00.
pub fn diurnal_ambient(h: f64) -> f64 {
    16.0 + 5.0 * (2.0 * std::f64::consts::PI * (h - 8.0) / 24.0).sin()
}

/// Chance per minute that someone starts drawing hot water from a 300 l tank, by
/// local hour: about 8 draws of ~30 l a day (most of a tank), mornings, lunch and
/// evenings, none at night.
fn draw_chance(h: f64) -> f64 {
    match h {
        h if (6.0..9.0).contains(&h) => 0.015,
        h if (11.0..13.0).contains(&h) => 0.01,
        h if (17.5..22.0).contains(&h) => 0.012,
        h if (9.0..17.5).contains(&h) => 0.003,
        h if (22.0..23.0).contains(&h) => 0.005,
        _ => 0.0,
    }
}
