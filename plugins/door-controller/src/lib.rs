//! tend equipment plugin for door controllers (fire and security doors).
//!
//! Decodes the reference door-controller telemetry and events (telemetry.md) and
//! raises `door_held_open`, `forced_open`, `lock_fault`, `mains_failure`,
//! `battery_low`, `tamper` and `reader_suspect`; reports the `door_cycles` meter
//! (the telemetry's `cycles_total`) and declares the semiannual, yearly
//! fire-certification and 50,000-cycle hardware inspections.
//!
//! # Settings
//! Per-device inventory settings override the default thresholds:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `held_open_fire_s` | 60 | a fire door open this long: `door_held_open` level 2 |
//! | `held_open_s` | 300 | any other door open this long: `door_held_open` level 3 |
//! | `battery_low_v` | 11.5 | `battery_v` below this: `battery_low` level 3 |
//! | `battery_critical_v` | 10.5 | `battery_v` below this: `battery_low` level 2 |
//! | `reader_denied_count` | 10 | this many `access_denied` ... |
//! | `reader_window_s` | 60 | ... within this window: `reader_suspect` |
//! | `forced_grace_s` | 10 | an `access_granted` this recent makes an opening legitimate |
//! | `lock_delay_s` | 10 | a closed door unlocked this long: `lock_fault` |
//! | `fire_door` | false | the door is a fire door when telemetry lacks `fire_door`; also enables the `fire-certification` inspection |
//!
//! # Readings
//! `door_open` and `locked` are required: a telemetry payload without them, or with
//! any known field of the wrong type, is rejected (`BadPayload`, counted by the
//! host) and the state is left as it was. The other fields are optional; a rule is
//! judged only when its field is present. Status messages change nothing.

mod config;
mod decode;
mod describe;
mod rules;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trace_tests;

pub use config::Config;
pub use decode::{DoorEvent, Reading};
pub use describe::{ALL_CODES, DOOR_CYCLES, description};
pub use rules::State;

use tend_plugin_sdk::prelude::*;

/// Latest event time accepted as is (about year 144,000); later or earlier times are
/// clamped so no duration arithmetic can overflow.
const TS_LIMIT_MS: TimestampMs = 1 << 52;

/// The door-controller plugin.
pub struct DoorController;

impl Plugin for DoorController {
    type State = State;

    fn describe() -> Description {
        description()
    }

    fn evaluate(device: &Device, msg: &Message, state: &mut State) -> Result<Outcome, EvalError> {
        if msg.kind == MessageKind::Status {
            // "online" / "offline": the host handles presence.
            return Ok(Outcome::default());
        }
        let cfg = Config::from_device(device)?;
        let payload = Payload::parse(&msg.payload)?;
        let ts = msg.ts_ms.clamp(-TS_LIMIT_MS, TS_LIMIT_MS);
        match msg.kind {
            MessageKind::Telemetry => {
                let reading = Reading::decode(&payload)?;
                Ok(rules::on_reading(&cfg, &reading, ts, state))
            }
            MessageKind::Event => {
                let event = DoorEvent::decode(&payload)?;
                Ok(rules::on_event(&cfg, event, ts, state))
            }
            MessageKind::Status => Ok(Outcome::default()),
        }
    }
}

export_plugin!(DoorController);
