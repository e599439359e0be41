//! The plugin's static description: fault codes, warranty, meter, inspections.

use tend_plugin_sdk::prelude::*;

/// `tank_temp_c` at or above the overheat limit.
pub const OVERHEAT: &str = "overheat";
/// Collector near freezing with the pump stopped.
pub const FREEZE_RISK: &str = "freeze_risk";
/// Collector not heating in strong sun.
pub const VACUUM_TUBE_FAILURE: &str = "vacuum_tube_failure";
/// Level falling with no draw and the inlet valve closed.
pub const TANK_LEAK: &str = "tank_leak";
/// Pump on with no circulation flow.
pub const PUMP_FAILURE: &str = "pump_failure";
/// Inlet valve open but the level does not rise.
pub const WATER_SUPPLY_ABNORMAL: &str = "water_supply_abnormal";
/// Heater on but the tank does not warm.
pub const HEATER_FAILURE: &str = "heater_failure";
/// The tank cools too fast at night.
pub const INSULATION_DEGRADED: &str = "insulation_degraded";
/// A temperature out of range, missing or not a number.
pub const SENSOR_FAULT: &str = "sensor_fault";
/// The controller reports an error code.
pub const CONTROLLER_ERROR: &str = "controller_error";

/// Every fault code, in table order.
pub const ALL_CODES: [&str; 10] = [
    OVERHEAT,
    FREEZE_RISK,
    VACUUM_TUBE_FAILURE,
    TANK_LEAK,
    PUMP_FAILURE,
    WATER_SUPPLY_ABNORMAL,
    HEATER_FAILURE,
    INSULATION_DEGRADED,
    SENSOR_FAULT,
    CONTROLLER_ERROR,
];

/// Warranty component: tank, vacuum tubes (collector) and bracket.
pub const MAIN_UNIT: &str = "main_unit";
/// Warranty component: pipes, valves and fittings.
pub const PIPES_FITTINGS: &str = "pipes_fittings";
/// Warranty component: pump, heater, controller, sensors and wiring.
pub const ELECTRICAL: &str = "electrical";

/// The usage meter: circulation pump run hours.
pub const PUMP_RUN_HOURS: &str = "pump_run_hours";

/// Default severity of a code (the solar table of `telemetry.md`).
pub fn default_severity(code: &str) -> u8 {
    match code {
        HEATER_FAILURE | INSULATION_DEGRADED | SENSOR_FAULT | CONTROLLER_ERROR => 3,
        _ => 2,
    }
}

fn fault(code: &str, title: &str, component: &str) -> FaultSpec {
    FaultSpec::new(code, title, default_severity(code), component)
}

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The description handed to the host.
pub fn description() -> Description {
    Description {
        equipment_type: "solar-water-heater".into(),
        plugin_version: "0.1.0".into(),
        faults: vec![
            fault(OVERHEAT, "Storage tank overheating", MAIN_UNIT),
            fault(FREEZE_RISK, "Collector freeze risk", PIPES_FITTINGS),
            fault(VACUUM_TUBE_FAILURE, "Vacuum tube (collector) failure", MAIN_UNIT),
            fault(TANK_LEAK, "Storage tank leak", MAIN_UNIT),
            fault(PUMP_FAILURE, "Circulation pump failure", ELECTRICAL),
            fault(WATER_SUPPLY_ABNORMAL, "Water supply abnormal", PIPES_FITTINGS),
            fault(HEATER_FAILURE, "Electric backup heater failure", ELECTRICAL),
            fault(INSULATION_DEGRADED, "Tank insulation degraded", MAIN_UNIT),
            fault(SENSOR_FAULT, "Temperature sensor fault", ELECTRICAL),
            fault(CONTROLLER_ERROR, "Controller error", ELECTRICAL),
        ],
        meters: vec![MeterSpec::new(PUMP_RUN_HOURS, "h")],
        warranty: vec![
            WarrantyDefault { component: MAIN_UNIT.into(), months: 36 },
            WarrantyDefault { component: PIPES_FITTINGS.into(), months: 12 },
            WarrantyDefault { component: ELECTRICAL.into(), months: 12 },
        ],
        inspections: vec![semiannual(), pump_service()],
        offline_timeout_s: 300,
    }
}

/// Twice-yearly maintenance visit (seeds: "每年兩次免費上門保養").
fn semiannual() -> InspectionPlan {
    InspectionPlan {
        id: "semiannual".into(),
        title: "Solar water heater semiannual maintenance".into(),
        every: Some(Period::Months(6)),
        meter: None,
        checklist: list(&[
            "Vacuum tubes: check every tube for breakage or lost vacuum (whitened getter), \
             clean dust and scale off the glass, replace failed tubes",
            "Tube seal rings and collector manifold: check for leaks, aging and loose tubes",
            "Storage tank: check shell, welds and connections for leaks, seepage and corrosion",
            "Tank insulation: check the insulation layer and cover for damage, damp or \
             collapsed foam",
            "Bracket: check for deformation, corrosion, loose bolts and roof anchoring",
            "Pipes and fittings: check for leaks; check pipe insulation and the anti-freeze \
             heat-trace cable",
            "Circulation pump: check noise, vibration, seal, run current and loop flow",
            "Electric backup heater: check element insulation resistance, relay / contactor \
             and thermostat; confirm the tank warms when it runs",
            "Controller: check parameter settings, clock, error log and display; update \
             settings if the site's usage changed",
            "Sensors: compare collector, tank and inlet temperature and level readings with a \
             reference; check probe wiring and connectors",
            "Valves: test the inlet (refill) solenoid valve, check valve and temperature / \
             pressure relief valve; clean the inlet filter",
            "Flush the tank through the drain valve to remove scale and sediment",
            "Fill in the inspection record with the customer's engineer; report within 3 \
             working days",
        ]),
        only_if_setting: None,
    }
}

/// Pump service every 2,000 run hours (maintenance.md §3).
fn pump_service() -> InspectionPlan {
    InspectionPlan {
        id: "pump-service".into(),
        title: "Circulation pump service (every 2,000 run hours)".into(),
        every: None,
        meter: Some(MeterTrigger { meter: PUMP_RUN_HOURS.into(), rule: MeterRule::Every(2000.0) }),
        checklist: list(&[
            "Record the pump run hours and measure the run current against the rating",
            "Listen for bearing noise and vibration; check the shaft seal for leaks",
            "Clean the collector-loop strainer / filter",
            "Bleed air from the collector loop and the pump housing",
            "Check the check (non-return) valve and the isolation valves",
            "Confirm circulation flow with the pump running and the controller's \
             start / stop temperature differential",
            "Replace the pump if worn; record the part and reset the run-hour counter",
        ]),
        only_if_setting: None,
    }
}
