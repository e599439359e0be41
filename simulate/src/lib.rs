//! tend-simulate: device simulators (`tend simulate`, and the devices of `tend demo`): physically
//! plausible telemetry for the three equipment families of `telemetry.md`, with a
//! schedule of injected faults, on an accelerated clock.
//!
//! Generation is pure: a [`Simulator`] built from an inventory, a fault [`Schedule`]
//! and a seed turns "event time has reached T" into the messages the devices sent up
//! to T, in time order; the same inputs give the same messages. Only [`publish`]
//! touches the network (MQTT, QoS 1).
//!
//! # Time
//! Payload `ts` is *event time*. [`SimClock`] maps the wall clock to it:
//! `start + elapsed × speed` (`--speed 60`: an hour of event time per real minute).
//! Event time starts at the wall clock (or later) and so never runs behind it: an
//! agent measures silence against the wall clock, and readings from the past would
//! look like devices that went quiet.
//!
//! # Layout
//! - [`clock`]: the accelerated clock.
//! - [`demo`]: the demo site's inventory.
//! - [`schedule`]: injected faults (TOML, CLI or the demo's default) and their validation.
//! - [`fleet`]: many devices at a target rate, for benchmarks (`tend-loadgen`).
//! - [`solar`], [`door`], [`av`]: one model per equipment type (physics, usage
//!   pattern, what each fault does to the readings).
//! - [`publish`]: the MQTT publisher and the real-time loop.

pub mod av;
pub mod clock;
pub mod demo;
pub mod door;
pub mod fleet;
pub mod publish;
pub mod schedule;
pub mod solar;

#[cfg(test)]
mod tests;

use jiff::tz::TimeZone;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Map, Value};

use tend_agent::config::Inventory;

pub use clock::SimClock;
pub use schedule::{FaultWindow, Schedule, ScheduleError};

/// One message a simulated device sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// Event time of the message (its payload's `ts`), ms since the Unix epoch.
    pub ts_ms: i64,
    /// MQTT topic (`tend/{site}/{device_id}/{kind}`).
    pub topic: String,
    /// The JSON payload.
    pub payload: Value,
}

impl Publish {
    /// The payload as the bytes sent over MQTT.
    pub fn payload_bytes(&self) -> Vec<u8> {
        self.payload.to_string().into_bytes()
    }

    /// The message as a trace line (`{"topic": ..., "payload": ...}`, interfaces.md).
    pub fn trace_line(&self) -> String {
        serde_json::json!({ "topic": self.topic, "payload": self.payload }).to_string()
    }
}

/// Why a simulator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// A device of a type no model simulates.
    #[error("device `{device}`: no simulator for equipment type `{equipment_type}` (simulated: {})", SIMULATED_TYPES.join(", "))]
    UnknownType {
        /// The device.
        device: String,
        /// Its type.
        equipment_type: String,
    },
    /// The fault schedule does not fit the inventory.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// The equipment types with a model.
pub const SIMULATED_TYPES: [&str; 3] = [solar::TYPE, door::TYPE, av::TYPE];

/// The fault codes a model can inject for an equipment type.
pub fn fault_codes(equipment_type: &str) -> Option<&'static [&'static str]> {
    match equipment_type {
        solar::TYPE => Some(solar::CODES),
        door::TYPE => Some(door::CODES),
        av::TYPE => Some(av::CODES),
        _ => None,
    }
}

/// What a model is told about its device and the world at each step.
pub struct Ctx<'a> {
    /// The site's time zone (daily patterns are in local time).
    pub tz: &'a TimeZone,
    /// The device's injected faults.
    pub faults: &'a [FaultWindow],
}

impl Ctx<'_> {
    /// How long (ms) fault `code` has been active at `t`, if it is.
    pub fn fault(&self, code: &str, t: i64) -> Option<i64> {
        self.faults.iter().filter(|f| f.code == code).find_map(|f| f.active_for(t))
    }

    /// Local hour of day at `t` as a fraction (`13.5` = 13:30).
    pub fn local_hour(&self, t: i64) -> f64 {
        let z = jiff::Timestamp::from_millisecond(t)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned_datetime(self.tz.clone());
        f64::from(z.hour()) + f64::from(z.minute()) / 60.0 + f64::from(z.second()) / 3600.0
    }

    /// Whether `t` falls on a Saturday or Sunday, locally.
    pub fn weekend(&self, t: i64) -> bool {
        let z = jiff::Timestamp::from_millisecond(t)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned_datetime(self.tz.clone());
        matches!(z.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday)
    }

    /// `ts` for a payload: RFC 3339 in the site's offset, whole seconds.
    pub fn ts(&self, t: i64) -> Value {
        let ts = jiff::Timestamp::from_millisecond(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        Value::String(tend_agent::maintenance::calendar::rfc3339(ts, self.tz))
    }
}

/// One simulated device: a model of its type.
enum Model {
    Solar(solar::Solar),
    Door(door::Door),
    Av(av::Av),
}

struct SimDevice {
    topic_prefix: String,
    faults: Vec<FaultWindow>,
    model: Model,
}

/// The simulated devices of one site.
pub struct Simulator {
    tz: TimeZone,
    devices: Vec<SimDevice>,
    /// Event time generated up to (inclusive).
    now_ms: i64,
}

impl Simulator {
    /// Devices of `inventory` starting at event time `start_ms`, with the faults of
    /// `schedule`, randomness from `seed` (each device draws from its own stream, so
    /// adding a device does not change the others).
    pub fn new(
        inventory: &Inventory,
        schedule: &Schedule,
        seed: u64,
        start_ms: i64,
    ) -> Result<Self, SimulateError> {
        schedule.check(inventory)?;
        // Whole seconds: payload times carry no fraction.
        let start_ms = start_ms - start_ms.rem_euclid(1000);
        let mut devices = Vec::with_capacity(inventory.devices.len());
        for d in &inventory.devices {
            let faults = schedule.windows_for(&d.id, start_ms);
            let rng = StdRng::seed_from_u64(seed ^ fnv1a(d.id.as_bytes()));
            let ctx = Ctx { tz: &inventory.timezone, faults: &faults };
            let model = match d.equipment_type.as_str() {
                solar::TYPE => Model::Solar(solar::Solar::new(d, rng, start_ms, &ctx)),
                door::TYPE => Model::Door(door::Door::new(d, rng, start_ms, &ctx)),
                av::TYPE => Model::Av(av::Av::new(d, rng, start_ms, &ctx)),
                other => {
                    return Err(SimulateError::UnknownType {
                        device: d.id.clone(),
                        equipment_type: other.to_owned(),
                    });
                }
            };
            devices.push(SimDevice {
                topic_prefix: format!("tend/{}/{}", inventory.site, d.id),
                faults,
                model,
            });
        }
        Ok(Self { tz: inventory.timezone.clone(), devices, now_ms: start_ms })
    }

    /// Event time generated up to.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Every message with `ts` in (previous call's time, `to_ms`], in time order (a
    /// device's messages keep their order).
    pub fn advance(&mut self, to_ms: i64) -> Vec<Publish> {
        let mut out = Vec::new();
        if to_ms <= self.now_ms {
            return out;
        }
        for d in &mut self.devices {
            let ctx = Ctx { tz: &self.tz, faults: &d.faults };
            let msgs = match &mut d.model {
                Model::Solar(m) => m.advance(to_ms, &ctx),
                Model::Door(m) => m.advance(to_ms, &ctx),
                Model::Av(m) => m.advance(to_ms, &ctx),
            };
            out.extend(msgs.into_iter().map(|(ts_ms, kind, payload)| Publish {
                ts_ms,
                topic: format!("{}/{kind}", d.topic_prefix),
                payload: Value::Object(payload),
            }));
        }
        // Stable: a device's messages at the same ts keep their order.
        out.sort_by_key(|p| p.ts_ms);
        self.now_ms = to_ms;
        out
    }
}

/// A message a model produced: event time, kind (`telemetry` | `event`), payload.
pub type Generated = (i64, &'static str, Map<String, Value>);

/// FNV-1a: a stable hash for per-device seeds (std's hasher may change).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Gaussian noise (Box-Muller), mean 0, standard deviation `sd`.
pub(crate) fn noise(rng: &mut StdRng, sd: f64) -> f64 {
    use rand::Rng;
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Rounds to `decimals` places (readings are reported like real sensors do).
pub(crate) fn round(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (v * f).round() / f
}

/// Moves `value` toward `target` with time constant `tau_s` over `dt_s`.
pub(crate) fn relax(value: f64, target: f64, dt_s: f64, tau_s: f64) -> f64 {
    target + (value - target) * (-dt_s / tau_s).exp()
}
