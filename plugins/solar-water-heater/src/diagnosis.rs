//! First diagnoses for the technician: probable cause, hardware or software, parts.
//!
//! Causes and parts follow the seeds' warranty list (vacuum tubes, tank leaks, tank
//! insulation, bracket) and the usual faults of forced-circulation systems.

use tend_plugin_sdk::prelude::*;

/// Tank too hot.
pub fn overheat() -> Diagnosis {
    Diagnosis::hardware(
        "Heat not carried away: hot water unused in strong sun, or the temperature / \
         pressure relief valve, mixing valve or controller over-temperature cut-off failed",
        &["temperature / pressure relief valve", "tank temperature sensor", "controller"],
    )
}

/// Collector near freezing with the pump stopped.
pub fn freeze_risk() -> Diagnosis {
    Diagnosis::hardware(
        "Anti-freeze protection not running: the controller did not start freeze \
         circulation or the pipe heat-trace cable failed",
        &["pipe heat-trace cable", "circulation pump", "pipe insulation"],
    )
}

/// Collector cold in strong sun.
pub fn vacuum_tube_failure() -> Diagnosis {
    Diagnosis::hardware(
        "Vacuum tubes broken or lost their vacuum (collector does not heat in strong sun), \
         or the collector is heavily soiled",
        &["vacuum tubes", "tube seal rings"],
    )
}

/// Level falling with nothing drawn.
pub fn tank_leak() -> Diagnosis {
    Diagnosis::hardware(
        "Storage tank or its connections leaking (weld seam, tube seal rings, drain \
         valve or fittings)",
        &["tube seal rings", "tank gaskets", "drain valve", "pipe fittings"],
    )
}

/// Pump on without flow.
pub fn pump_failure() -> Diagnosis {
    Diagnosis::hardware(
        "Circulation pump seized, burnt out or running dry; air lock, clogged strainer or \
         a closed valve in the collector loop",
        &["circulation pump", "loop strainer", "flow sensor"],
    )
}

/// Refill valve open without the level rising.
pub fn water_supply_abnormal() -> Diagnosis {
    Diagnosis::hardware(
        "Refill not reaching the tank: inlet solenoid valve stuck or coil failed, clogged \
         inlet filter, or mains water pressure too low (supply outage is not a warranty case)",
        &["inlet solenoid valve", "inlet filter", "level sensor"],
    )
}

/// Heater on without the tank warming.
pub fn heater_failure() -> Diagnosis {
    Diagnosis::hardware(
        "Electric backup heater not heating: element burnt out, relay / contactor not \
         closing, or thermostat / thermal cut-out open",
        &["electric heating element", "heater relay / contactor", "thermal cut-out"],
    )
}

/// Tank cooling too fast at night.
pub fn insulation_degraded() -> Diagnosis {
    Diagnosis::hardware(
        "Tank insulation layer failed (damp or collapsed foam, damaged cover), or hot \
         water passing back through a leaking check valve at night",
        &["tank insulation", "pipe insulation", "check valve"],
    )
}

/// Temperature probe out of range or silent.
pub fn sensor_fault() -> Diagnosis {
    Diagnosis::hardware(
        "Temperature probe open or short-circuited, or its cable / connector damaged",
        &["temperature sensor probe", "sensor cable"],
    )
}

/// Controller error code.
pub fn controller_error(code: i64) -> Diagnosis {
    Diagnosis::software(format!(
        "Controller reports error code {code}: look it up in the controller manual, check the \
         parameter settings and reset; replace the controller board if it returns"
    ))
}
