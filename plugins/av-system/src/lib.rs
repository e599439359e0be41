//! tend equipment plugin for AV systems (`av-system`): background music amplifiers and
//! speaker zones, projectors, displays, media players and central control
//! (telemetry.md, "AV system").
//!
//! Telemetry only: events and `status` messages give an empty outcome. A reading with a
//! present field of the wrong type, a negative counter or a malformed zone is rejected
//! whole with [`EvalError::BadPayload`] naming the field (the host counts and skips it)
//! and the state is left untouched; a missing field only means the rules that need it
//! are not judged on that reading.
//!
//! # Settings (per device, in the inventory; all numbers)
//! | key | default | meaning |
//! |---|---|---|
//! | `amp_overtemp_c` | 75 | `amp_overtemp` when `amp_temp_c` >= this |
//! | `projector_overtemp_c` | 80 | `projector_overtemp` when `projector_temp_c` >= this |
//! | `line_open_pct` | 150 | `speaker_line_open` when a zone's impedance > this % of its baseline |
//! | `line_short_pct` | 50 | `speaker_line_short` when a zone's impedance < this % of its baseline |
//! | `line_drift_pct` | 20 | `speaker_line_drift` when off the baseline by more than this % (not open/short) |
//! | `display_offline_s` | 300 | `display_offline` when `display_online` is false this long |
//! | `player_stalled_s` | 300 | `player_stalled` when `player_heartbeat_age_s` >= this |
//! | `signal_loss_s` | 120 | `signal_loss` when `signal_present` is false this long |
//!
//! # Meters
//! `projector_lamp_hours` and `projector_filter_hours` (h) as reported, and
//! `lamp_life_pct` = lamp hours / `lamp_rated_hours` × 100 when the rated hours are > 0.
//!
//! Modules: [`describe`] (the static description), [`reading`] (payload decoding),
//! [`rules`] (the fault rules and the per-device state).

use tend_plugin_sdk::prelude::*;

pub mod describe;
pub mod reading;
pub mod rules;

#[cfg(test)]
mod tests;

pub use rules::State;

/// The AV system plugin.
pub struct AvSystem;

impl Plugin for AvSystem {
    type State = State;

    fn describe() -> Description {
        describe::description()
    }

    fn evaluate(device: &Device, msg: &Message, state: &mut State) -> Result<Outcome, EvalError> {
        if msg.kind != MessageKind::Telemetry {
            // Events are not part of this format; status ("online"/"offline") is the host's.
            return Ok(Outcome::default());
        }
        let limits = rules::Limits::from_settings(&device.settings()?)?;
        let payload = Payload::parse(&msg.payload)?;
        let reading = reading::Reading::decode(&payload)?;
        Ok(rules::judge(&limits, &reading, msg.ts_ms, state))
    }
}

export_plugin!(AvSystem);
