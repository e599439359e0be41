//! The plugin's static description: fault codes, meter, warranty, inspections.

use tend_plugin_sdk::prelude::*;

/// Fault code: a door stood open too long.
pub const DOOR_HELD_OPEN: &str = "door_held_open";
/// Fault code: the door opened without a valid access.
pub const FORCED_OPEN: &str = "forced_open";
/// Fault code: the lock did not engage (or the controller reported a lock fault).
pub const LOCK_FAULT: &str = "lock_fault";
/// Fault code: mains supply lost.
pub const MAINS_FAILURE: &str = "mains_failure";
/// Fault code: backup battery low.
pub const BATTERY_LOW: &str = "battery_low";
/// Fault code: tamper switch open.
pub const TAMPER: &str = "tamper";
/// Fault code: many access denials in a short time.
pub const READER_SUSPECT: &str = "reader_suspect";

/// Every fault code of this plugin, in the order of telemetry.md.
pub const ALL_CODES: [&str; 7] =
    [DOOR_HELD_OPEN, FORCED_OPEN, LOCK_FAULT, MAINS_FAILURE, BATTERY_LOW, TAMPER, READER_SUSPECT];

/// The usage meter: open/close cycles (`cycles_total` of the telemetry).
pub const DOOR_CYCLES: &str = "door_cycles";

/// Warranty component: leaf, closer, hinges, lock and strike.
pub const DOOR_HARDWARE: &str = "door_hardware";
/// Warranty component: access controller, card reader, sensors, tamper switches.
pub const CONTROLLER: &str = "controller";
/// Warranty component: power supply unit and backup battery.
pub const POWER_SUPPLY: &str = "power_supply";

/// The description handed to the host.
pub fn description() -> Description {
    Description {
        equipment_type: "door-controller".into(),
        plugin_version: "0.1.0".into(),
        faults: vec![
            FaultSpec::new(DOOR_HELD_OPEN, "Door held open", 3, DOOR_HARDWARE),
            FaultSpec::new(FORCED_OPEN, "Door forced open", 2, DOOR_HARDWARE),
            FaultSpec::new(LOCK_FAULT, "Lock fault", 2, DOOR_HARDWARE),
            FaultSpec::new(MAINS_FAILURE, "Mains power failure", 2, POWER_SUPPLY),
            FaultSpec::new(BATTERY_LOW, "Backup battery low", 3, POWER_SUPPLY),
            FaultSpec::new(TAMPER, "Tamper alarm", 2, CONTROLLER),
            FaultSpec::new(READER_SUSPECT, "Card reader suspect (repeated denials)", 4, CONTROLLER),
        ],
        meters: vec![MeterSpec::new(DOOR_CYCLES, "cycles")],
        // maintenance.md §5: doors 2 years.
        warranty: [DOOR_HARDWARE, CONTROLLER, POWER_SUPPLY]
            .iter()
            .map(|c| WarrantyDefault { component: (*c).into(), months: 24 })
            .collect(),
        inspections: vec![
            InspectionPlan {
                id: "semiannual".into(),
                title: "Semiannual door and access-control inspection".into(),
                every: Some(Period::Months(6)),
                meter: None,
                checklist: list(&[
                    "Door closer: closes the leaf fully from wide open and latches; closing and latching speed adjusted; no oil leak",
                    "Hinges / pivots: fixings tight, no sagging, lubricated; leaf does not rub frame or floor",
                    "Lock and strike: lock engages on every close, releases on a valid card; strike aligned, screws tight",
                    "Door position and lock sensors: controller shows open/closed and locked/unlocked correctly",
                    "Card reader: clean, reads a valid card, refuses an invalid one; review the denial log",
                    "Exit button and emergency release (break-glass) unlock the door",
                    "Power supply: mains present, output voltage within rating, fuse and wiring sound",
                    "Backup battery: at least 12 V, holds the door locked on battery, terminals clean; note its age",
                    "Tamper switches of controller and reader enclosures trip and report an alarm",
                    "Held-open and forced-open alarms reach the monitoring point",
                    "Signage, handles, seals and door furniture intact",
                    "Read controller clock, event log and cycle counter into the inspection record",
                ]),
                only_if_setting: None,
            },
            InspectionPlan {
                id: "fire-certification".into(),
                title: "Yearly fire-door certification check".into(),
                every: Some(Period::Months(12)),
                meter: None,
                checklist: list(&[
                    "Fire-rating label / certificate on leaf and frame present and legible",
                    "Door self-closes and latches from any opening angle; double doors close in the right order (coordinator)",
                    "Intumescent strips and smoke seals intact and not painted over",
                    "Gaps between leaf, frame and floor within the certified tolerance",
                    "Hold-open devices release on fire alarm and on power loss",
                    "Door unlocks for escape on fire alarm (fail-safe lock) and panic hardware works",
                    "Fire-rated glazing and vision panels undamaged",
                    "Held-open alarm raised when the door is propped open for 60 s",
                    "'Fire door — keep closed' signs on both sides",
                    "Results entered in the fire-door register and certificate renewed",
                ]),
                only_if_setting: Some("fire_door".into()),
            },
            InspectionPlan {
                id: "hardware-service".into(),
                title: "Door hardware service (every 50,000 cycles)".into(),
                every: None,
                meter: Some(MeterTrigger {
                    meter: DOOR_CYCLES.into(),
                    rule: MeterRule::Every(50_000.0),
                }),
                checklist: list(&[
                    "Door closer: check for oil leak and weak closing, readjust or replace",
                    "Hinges / pivots: check wear and play, lubricate, tighten or replace worn hinges",
                    "Lock: check latch, bolt and strike wear, lubricate, test engagement; replace worn lock body",
                    "Record the cycle counter after the service",
                ]),
                only_if_setting: None,
            },
        ],
        offline_timeout_s: 300,
    }
}

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
