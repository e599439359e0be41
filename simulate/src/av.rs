//! AV system (`av-system`): a multi-zone background-music amplifier on 100 V speaker
//! lines, a projector, a display and a media player. Telemetry every 30 s.
//!
//! The building uses it from 07:00 to 23:00 (music at full load, the amplifier
//! warms from about 30 °C to 46 °C with a 15 min time constant); the projector runs
//! 08:00-21:00 (about 52 °C running, room temperature off), its lamp and filter hours
//! accumulate while it runs and start from the commissioning date at ~8 h a day.
//! Speaker lines sit within a few per cent of their commissioning baseline, moving a
//! little with the day's temperature. The player's heartbeat is every 10 s.
//!
//! What each injected fault does:
//! - `amp_protect`: the amplifier trips into protection (its zones go silent, it cools).
//! - `amp_overtemp`: the rack fan stops: the amplifier heats toward 90 °C.
//! - `speaker_line_open` / `speaker_line_short`: the first zone's line is cut
//!   (impedance ×20) / shorted (0.8 Ω).
//! - `speaker_line_drift`: water in the first zone's line: impedance creeps to +32 %
//!   over 20 minutes.
//! - `lamp_end_of_life`: the lamp reaches its rated hours at the onset (the lamp was
//!   not replaced: its hours at the start are set so that it does); it is replaced
//!   (counter back to 0) when the window ends. A repeated window finds the counter
//!   at the rated hours again at each later onset.
//! - `projector_overtemp`: the projector's filter clogs: +35 °C while it runs.
//! - `display_offline`: the display drops off the network.
//! - `player_stalled`: the player hangs: its heartbeat ages from the onset.
//! - `signal_loss`: the display loses its input signal.
//! - `fan_failure`: the projector's fan reports failure (and it runs 12 °C hotter).

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::{Ctx, Generated, noise, relax, round};
use tend_agent::config::Device;

/// The equipment type.
pub const TYPE: &str = "av-system";

/// The fault codes this model can inject.
pub const CODES: &[&str] = &[
    "amp_protect",
    "amp_overtemp",
    "speaker_line_open",
    "speaker_line_short",
    "speaker_line_drift",
    "lamp_end_of_life",
    "projector_overtemp",
    "display_offline",
    "player_stalled",
    "signal_loss",
    "fan_failure",
];

/// Telemetry period.
pub const PERIOD_MS: i64 = 30_000;
const DT_S: f64 = 30.0;
/// Rated lamp life of the simulated projectors, h.
pub const LAMP_RATED_H: f64 = 3000.0;
const ZONE_NAMES: [&str; 5] = ["lobby", "hall", "corridor", "stage", "foyer"];
const ZONE_BASELINES: [f64; 5] = [250.0, 167.0, 500.0, 125.0, 333.0];

/// One AV system.
pub struct Av {
    rng: StdRng,
    next_ms: i64,
    zones: Vec<(&'static str, f64)>,
    amp_c: f64,
    projector_c: f64,
    lamp_h: f64,
    filter_h: f64,
    /// `lamp_end_of_life` windows already begun / ended (by onset time).
    lamp_onsets_done: Vec<i64>,
    lamp_replaced: Vec<i64>,
}

/// Whether the building uses the AV system at local hour `h`.
fn in_use(h: f64) -> bool {
    (7.0..23.0).contains(&h)
}

/// Whether the projector runs at local hour `h`.
fn projector_runs(h: f64) -> bool {
    (8.0..21.0).contains(&h)
}

impl Av {
    /// A system in normal use at `start_ms`.
    pub fn new(d: &Device, mut rng: StdRng, start_ms: i64, ctx: &Ctx<'_>) -> Self {
        let n = if d.model.contains("8Z") {
            4
        } else if d.model.contains("4Z") {
            3
        } else {
            2
        };
        let zones = (0..n).map(|i| (ZONE_NAMES[i], ZONE_BASELINES[i])).collect();
        let commissioned_ms = d
            .commissioned
            .to_zoned_datetime(ctx.tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(start_ms);
        let days = ((start_ms - commissioned_ms) as f64 / 86_400_000.0).max(0.0);
        let mut lamp_h = (days * 8.0 + rng.random_range(0.0..50.0)) % (LAMP_RATED_H * 0.8);
        let filter_h = lamp_h % 500.0;
        // A scheduled end of lamp life: the lamp is old enough to reach its rating at
        // the first onset.
        if let Some(onset) = ctx
            .faults
            .iter()
            .filter(|f| f.code == "lamp_end_of_life")
            .map(|f| f.start_ms)
            .filter(|t| *t >= start_ms)
            .min()
        {
            // (plus a little, so rounding cannot leave it a hair short)
            lamp_h = (LAMP_RATED_H - running_hours(start_ms, onset, ctx) + 0.001).max(0.0);
        }
        let h = ctx.local_hour(start_ms);
        Self {
            zones,
            amp_c: if in_use(h) { 46.0 } else { 30.0 },
            projector_c: if projector_runs(h) { 52.0 } else { 27.0 },
            lamp_h,
            filter_h,
            lamp_onsets_done: Vec::new(),
            lamp_replaced: Vec::new(),
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

    fn lamp_schedule(&mut self, t: i64, ctx: &Ctx<'_>) {
        for f in ctx.faults.iter().filter(|f| f.code == "lamp_end_of_life") {
            let Some(active) = f.active_for(t) else {
                continue;
            };
            let onset = t - active;
            if !self.lamp_onsets_done.contains(&onset) {
                self.lamp_onsets_done.push(onset);
                if onset > f.start_ms {
                    self.lamp_h = self.lamp_h.max(LAMP_RATED_H);
                }
            }
        }
        // Replaced when a window has ended.
        for &onset in &self.lamp_onsets_done {
            let ended = ctx
                .faults
                .iter()
                .filter(|f| f.code == "lamp_end_of_life")
                .any(|f| t >= onset + f.len_ms);
            if ended && !self.lamp_replaced.contains(&onset) {
                self.lamp_replaced.push(onset);
                self.lamp_h = 0.0;
                self.filter_h = 0.0;
            }
        }
    }

    fn step(&mut self, t: i64, ctx: &Ctx<'_>) -> Map<String, Value> {
        let h = ctx.local_hour(t);
        let on = |code| ctx.fault(code, t).is_some();
        self.lamp_schedule(t, ctx);

        // Amplifier.
        let protect = on("amp_protect");
        let load = if protect {
            0.0
        } else if in_use(h) {
            1.0
        } else {
            0.25
        };
        let mut amp_target: f64 = 24.0 + 22.0 * load;
        if on("amp_overtemp") {
            amp_target = (amp_target + 50.0_f64).min(92.0);
        }
        self.amp_c = relax(self.amp_c, amp_target, DT_S, 900.0);

        // Speaker lines (a little temperature drift over the day).
        let daily = (2.0 * std::f64::consts::PI * (h - 8.0) / 24.0).sin();
        let zones: Vec<Value> = self
            .zones
            .iter()
            .enumerate()
            .map(|(i, (id, base))| {
                let mut z = base * (1.0 + 0.015 * daily) + noise(&mut self.rng, base * 0.004);
                if i == 0 {
                    if on("speaker_line_open") {
                        z = base * 20.0;
                    } else if on("speaker_line_short") {
                        z = 0.8;
                    } else if let Some(ms) = ctx.fault("speaker_line_drift", t) {
                        let ramp = (ms as f64 / 1_200_000.0).min(1.0);
                        z = base * (1.0 + 0.32 * ramp);
                    }
                }
                json!({ "id": id, "line_impedance_ohm": round(z, 1), "baseline_ohm": base })
            })
            .collect();

        // Projector.
        let runs = projector_runs(h);
        if runs {
            self.lamp_h += DT_S / 3600.0;
            self.filter_h += DT_S / 3600.0;
        }
        let fan_ok = !on("fan_failure");
        let mut proj_target = if runs { 52.0 } else { 27.0 };
        if runs && on("projector_overtemp") {
            proj_target += 35.0;
        }
        if runs && !fan_ok {
            proj_target += 12.0;
        }
        self.projector_c = relax(self.projector_c, proj_target, DT_S, 300.0);

        // Player and display.
        let mut heartbeat = self.rng.random_range(0..=12);
        if let Some(ms) = ctx.fault("player_stalled", t) {
            heartbeat += ms / 1000;
        }

        let mut m = Map::new();
        m.insert("ts".into(), ctx.ts(t));
        m.insert("amp_temp_c".into(), json!(round(self.amp_c + noise(&mut self.rng, 0.2), 1)));
        m.insert("amp_protect".into(), json!(protect));
        m.insert("zones".into(), Value::Array(zones));
        m.insert("projector_lamp_hours".into(), json!(round(self.lamp_h, 3)));
        m.insert("lamp_rated_hours".into(), json!(LAMP_RATED_H));
        m.insert("projector_filter_hours".into(), json!(round(self.filter_h, 3)));
        m.insert(
            "projector_temp_c".into(),
            json!(round(self.projector_c + noise(&mut self.rng, 0.3), 1)),
        );
        m.insert("display_online".into(), json!(!on("display_offline")));
        m.insert("player_heartbeat_age_s".into(), json!(heartbeat));
        m.insert("signal_present".into(), json!(!on("signal_loss")));
        m.insert("fan_ok".into(), json!(fan_ok));
        m
    }
}

/// Projector hours counted by the readings from `from` to `to`, both included (the
/// usage schedule is fixed).
fn running_hours(from: i64, to: i64, ctx: &Ctx<'_>) -> f64 {
    let mut t = from;
    let mut hours = 0.0;
    while t <= to {
        if projector_runs(ctx.local_hour(t)) {
            hours += DT_S / 3600.0;
        }
        t += PERIOD_MS;
    }
    hours
}
