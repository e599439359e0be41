//! Door / access controller (`door-controller`): a card reader, an electric lock that
//! releases on `access_granted` and engages when the door closes, a closer, a
//! battery-backed 12 V supply. Telemetry every 30 s, events as they happen.
//!
//! People arrive as a Poisson process whose rate follows the building's day (peaks
//! at 08:00, lunch and 18:00, almost nobody at night, a third of it at weekends; a
//! fire door a third of a main door). An arrival badges in: 4 % are denied (most try
//! again a few seconds later); a grant releases the lock, the door opens 1-3 s later
//! and swings shut 3-8 s after that, and the lock engages as it closes. Exits are
//! badged too (request-to-exit readers report `access_granted`). `cycles_total`
//! starts from the commissioning date at ~150 cycles a day.
//!
//! What each injected fault does:
//! - `door_held_open`: someone badges in and props the door open for the whole window.
//! - `forced_open`: the door is forced (the controller reports `forced_open`), and
//!   swings shut 6 s later.
//! - `lock_fault`: the lock does not engage when the door closes.
//! - `mains_failure`: mains lost; the battery takes over and slowly discharges.
//! - `battery_low`: a failing battery: its voltage sags toward 11.2 V.
//! - `tamper`: the enclosure is opened.
//! - `reader_suspect`: a card is refused every 3 s (someone trying cards, or a
//!   misreading reader); nobody gets in meanwhile.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::{Ctx, Generated, noise, relax, round};
use tend_agent::config::Device;

/// The equipment type.
pub const TYPE: &str = "door-controller";

/// The fault codes this model can inject.
pub const CODES: &[&str] = &[
    "door_held_open",
    "forced_open",
    "lock_fault",
    "mains_failure",
    "battery_low",
    "tamper",
    "reader_suspect",
];

/// Telemetry period.
pub const PERIOD_MS: i64 = 30_000;
const SECOND: i64 = 1000;
/// Highest arrival rate (per hour) the thinning draws from.
const MAX_RATE_H: f64 = 40.0;
/// Interval between refused cards during an injected `reader_suspect`.
const DENIAL_EVERY_MS: i64 = 3 * SECOND;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Telemetry,
    Arrival,
    Grant,
    Open,
    Close,
    Denied,
}

/// One door controller.
pub struct Door {
    rng: StdRng,
    fire_door: bool,
    /// Pending actions, sorted by time (stable for equal times).
    agenda: Vec<(i64, Act)>,
    /// Fault onsets handled up to (inclusive).
    fault_cursor: i64,
    /// No new arrival is served before this (a passage is in progress).
    busy_until: i64,
    /// The door is propped open until this time.
    propped_until: i64,
    door_open: bool,
    /// The lock was released by a grant and has not engaged since.
    released: bool,
    battery_v: f64,
    cycles: i64,
    /// Time of the last battery update.
    battery_ts: i64,
}

impl Door {
    /// A closed, locked door at `start_ms`.
    pub fn new(d: &Device, mut rng: StdRng, start_ms: i64, ctx: &Ctx<'_>) -> Self {
        let fire_door = d.settings.get("fire_door").and_then(Value::as_bool).unwrap_or(false);
        let commissioned_ms = d
            .commissioned
            .to_zoned_datetime(ctx.tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(start_ms);
        let days = ((start_ms - commissioned_ms) / 86_400_000).max(0);
        let per_day = if fire_door { 50 } else { 150 };
        let cycles = days * per_day + rng.random_range(0..per_day);
        let mut door = Self {
            fire_door,
            agenda: vec![(start_ms, Act::Telemetry)],
            fault_cursor: start_ms - 1,
            busy_until: start_ms,
            propped_until: i64::MIN,
            door_open: false,
            released: false,
            battery_v: 13.6 + noise(&mut rng, 0.03),
            cycles,
            battery_ts: start_ms,
            rng,
        };
        let first = door.next_arrival(start_ms, ctx);
        door.schedule(first, Act::Arrival);
        door
    }

    /// Adds an action; at equal times telemetry comes last, so a reading reports the
    /// state after what happened at that instant.
    fn schedule(&mut self, t: i64, act: Act) {
        let at = if act == Act::Telemetry {
            self.agenda.partition_point(|(x, _)| *x <= t)
        } else {
            self.agenda.partition_point(|(x, a)| *x < t || (*x == t && *a != Act::Telemetry))
        };
        self.agenda.insert(at, (t, act));
    }

    /// Arrivals per hour at `t`.
    fn rate(&self, t: i64, ctx: &Ctx<'_>) -> f64 {
        let h = ctx.local_hour(t);
        let base = match h {
            h if (7.5..9.5).contains(&h) => 40.0,
            h if (11.5..13.5).contains(&h) => 30.0,
            h if (17.0..19.0).contains(&h) => 30.0,
            h if (9.5..17.0).contains(&h) => 15.0,
            h if (19.0..22.0).contains(&h) => 6.0,
            h if (6.5..7.5).contains(&h) => 10.0,
            _ => 0.5,
        };
        let day = if ctx.weekend(t) { 0.3 } else { 1.0 };
        let kind = if self.fire_door { 0.3 } else { 1.0 };
        base * day * kind
    }

    /// The next arrival after `t` (a non-homogeneous Poisson process, by thinning).
    fn next_arrival(&mut self, mut t: i64, ctx: &Ctx<'_>) -> i64 {
        loop {
            let u: f64 = self.rng.random::<f64>().max(1e-12);
            let gap_s = (-u.ln() / MAX_RATE_H * 3600.0).max(1.0);
            t += (gap_s as i64) * SECOND;
            if self.rng.random::<f64>() * MAX_RATE_H < self.rate(t, ctx) {
                return t;
            }
        }
    }

    /// Messages with `ts` up to `to_ms`.
    pub fn advance(&mut self, to_ms: i64, ctx: &Ctx<'_>) -> Vec<Generated> {
        let mut out = Vec::new();
        // Fault onsets that start a scene.
        let mut onsets: Vec<(i64, &str, i64)> = ctx
            .faults
            .iter()
            .flat_map(|f| {
                f.onsets_in(self.fault_cursor, to_ms)
                    .into_iter()
                    .map(move |t| (t, f.code.as_str(), f.len_ms))
            })
            .collect();
        onsets.sort_by_key(|o| o.0);
        let mut onsets = onsets.into_iter().peekable();
        loop {
            let next_act = self.agenda.first().map(|a| a.0);
            let next_onset = onsets.peek().map(|o| o.0);
            match (next_act, next_onset) {
                (Some(a), Some(o)) if o <= a && o <= to_ms => {
                    if let Some((t, code, len)) = onsets.next() {
                        self.onset(t, code, len, ctx, &mut out);
                    }
                }
                (_, Some(o)) if next_act.is_none() && o <= to_ms => {
                    if let Some((t, code, len)) = onsets.next() {
                        self.onset(t, code, len, ctx, &mut out);
                    }
                }
                (Some(a), _) if a <= to_ms => {
                    let (t, act) = self.agenda.remove(0);
                    self.act(t, act, ctx, &mut out);
                }
                _ => break,
            }
        }
        self.fault_cursor = to_ms;
        out
    }

    fn event(&self, t: i64, name: &str, ctx: &Ctx<'_>, out: &mut Vec<Generated>) {
        let mut m = Map::new();
        m.insert("ts".into(), ctx.ts(t));
        m.insert("event".into(), json!(name));
        out.push((t, "event", m));
    }

    /// A fault's opening scene.
    fn onset(&mut self, t: i64, code: &str, len: i64, ctx: &Ctx<'_>, out: &mut Vec<Generated>) {
        match code {
            "forced_open" if !self.door_open => {
                self.event(t, "forced_open", ctx, out);
                self.door_open = true;
                self.cycles += 1;
                self.busy_until = self.busy_until.max(t + 7 * SECOND);
                self.schedule(t + 6 * SECOND, Act::Close);
            }
            "door_held_open" => {
                self.propped_until = t + len;
                self.busy_until = self.busy_until.max(t + len + SECOND);
                if !self.door_open {
                    self.schedule(t, Act::Grant);
                    self.schedule(t + 2 * SECOND, Act::Open);
                }
                self.schedule(t + len, Act::Close);
            }
            "reader_suspect" => {
                let n = (len / DENIAL_EVERY_MS).clamp(1, 400);
                for k in 0..n {
                    self.schedule(t + k * DENIAL_EVERY_MS, Act::Denied);
                }
                self.busy_until = self.busy_until.max(t + len);
            }
            _ => {}
        }
    }

    fn act(&mut self, t: i64, act: Act, ctx: &Ctx<'_>, out: &mut Vec<Generated>) {
        match act {
            Act::Telemetry => {
                out.push((t, "telemetry", self.telemetry(t, ctx)));
                self.schedule(t + PERIOD_MS, Act::Telemetry);
            }
            Act::Arrival => {
                if t < self.busy_until || self.door_open {
                    // Someone is passing: this person follows.
                    let after = self.busy_until.max(t) + 2 * SECOND;
                    self.schedule(after, Act::Arrival);
                    return;
                }
                if self.rng.random::<f64>() < 0.04 {
                    self.event(t, "access_denied", ctx, out);
                    if self.rng.random::<f64>() < 0.7 {
                        self.start_passage(t + 4 * SECOND);
                    } else {
                        self.busy_until = t + 2 * SECOND;
                    }
                } else {
                    self.start_passage(t);
                }
                let next = self.next_arrival(t, ctx);
                self.schedule(next, Act::Arrival);
            }
            Act::Grant => {
                self.event(t, "access_granted", ctx, out);
                self.released = true;
            }
            Act::Open => {
                if !self.door_open {
                    self.event(t, "door_opened", ctx, out);
                    self.door_open = true;
                    self.cycles += 1;
                }
            }
            Act::Close => {
                if self.door_open && t >= self.propped_until {
                    self.event(t, "door_closed", ctx, out);
                    self.door_open = false;
                    self.released = false;
                }
            }
            Act::Denied => self.event(t, "access_denied", ctx, out),
        }
    }

    /// Grant at `t`, open, close; busy until the door has shut.
    fn start_passage(&mut self, t: i64) {
        let open = t + self.rng.random_range(1..=3) * SECOND;
        let close = open + self.rng.random_range(3..=8) * SECOND;
        self.schedule(t, Act::Grant);
        self.schedule(open, Act::Open);
        self.schedule(close, Act::Close);
        self.busy_until = close + SECOND;
    }

    fn telemetry(&mut self, t: i64, ctx: &Ctx<'_>) -> Map<String, Value> {
        let on = |code| ctx.fault(code, t).is_some();
        let mains_ok = !on("mains_failure");
        let dt_s = (t - self.battery_ts).max(0) as f64 / 1000.0;
        self.battery_ts = t;
        let (target, tau) = if on("battery_low") {
            (11.2, 600.0)
        } else if !mains_ok {
            (11.9, 4.0 * 3600.0)
        } else {
            (13.6, 900.0)
        };
        self.battery_v = relax(self.battery_v, target, dt_s, tau);
        let lock_broken = on("lock_fault");
        let locked = !self.door_open && !self.released && !lock_broken;
        let battery = round(self.battery_v + noise(&mut self.rng, 0.01), 2);
        let mut m = Map::new();
        m.insert("ts".into(), ctx.ts(t));
        m.insert("door_open".into(), json!(self.door_open));
        m.insert("locked".into(), json!(locked));
        m.insert("fire_door".into(), json!(self.fire_door));
        m.insert("battery_v".into(), json!(battery));
        m.insert("mains_ok".into(), json!(mains_ok));
        m.insert("tamper".into(), json!(on("tamper")));
        m.insert("cycles_total".into(), json!(self.cycles));
        m
    }
}
