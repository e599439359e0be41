//! tend equipment plugin for solar water heaters (`solar-water-heater`).
//!
//! Decodes the reference telemetry of `telemetry.md` (one reading every 60 s) and
//! judges the ten fault codes of the solar table on each reading, in event time.
//! Only telemetry is judged; events and status messages give an empty outcome.
//!
//! # Settings (per device, inventory `settings`)
//! Every threshold is a default that a device's settings override:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `overheat_c` | 95 | `overheat` when tank >= this |
//! | `freeze_c` | 3 | `freeze_risk` when collector <= this with the pump off |
//! | `vacuum_irradiance_w_m2` | 500 | `vacuum_tube_failure`: irradiance at least this ... |
//! | `vacuum_delta_c` | 10 | ... collector - inlet below this, pump off ... |
//! | `vacuum_min` | 30 | ... continuously for this many minutes |
//! | `tank_leak_drop_pct` | 5 | `tank_leak` when the level fell this many points ... |
//! | `tank_leak_window_min` | 60 | ... below the highest quiet reading of this window |
//! | `pump_no_flow_l_min` | 0 | circulation flow at or below this counts as none |
//! | `pump_failure_min` | 5 | `pump_failure`: pump on with no flow this long |
//! | `water_supply_rise_pct` | 2 | `water_supply_abnormal`: level rose less than this ... |
//! | `water_supply_min` | 30 | ... after the inlet valve was open this long |
//! | `heater_rise_c` | 1 | `heater_failure`: tank rose less than this ... |
//! | `heater_min` | 60 | ... after the heater was on this long |
//! | `insulation_loss_c_h` | 1.5 | `insulation_degraded`: night loss above this rate ... |
//! | `insulation_h` | 4 | ... measured over this many hours |
//! | `sensor_min_c` | -40 | a temperature below this is a `sensor_fault` |
//! | `sensor_max_c` | 150 | a temperature above this is a `sensor_fault` |
//!
//! Durations must lie in (0, 30 days]; a non-number or out-of-range value is
//! reported as `BadSettings` naming the key.
//!
//! # Layout
//! - [`describe`]: fault codes, warranty components, the `pump_run_hours` meter and
//!   the inspection plans with their checklists.
//! - [`thresholds`]: the settings above.
//! - [`rules`]: the per-reading rules and the per-device [`rules::State`].
//! - [`diagnosis`]: probable causes and spare parts for each fault.
//!
//! The fixture traces for the host tests are in `traces/` (one per fault code plus
//! `normal.jsonl`).

pub mod describe;
pub mod diagnosis;
pub mod rules;
pub mod thresholds;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
#[cfg(test)]
mod trace_tests;

use tend_plugin_sdk::prelude::*;

/// The solar water heater plugin.
pub struct SolarWaterHeater;

impl Plugin for SolarWaterHeater {
    type State = rules::State;

    fn describe() -> Description {
        describe::description()
    }

    fn evaluate(
        device: &Device,
        message: &Message,
        state: &mut rules::State,
    ) -> Result<Outcome, EvalError> {
        if message.kind != MessageKind::Telemetry {
            return Ok(Outcome::default());
        }
        // Decode everything before touching the state.
        let payload = Payload::parse(&message.payload)?;
        let limits = thresholds::Thresholds::from_settings(&device.settings()?)?;
        Ok(rules::judge(&limits, &payload, message.ts_ms, state))
    }
}

export_plugin!(SolarWaterHeater);
