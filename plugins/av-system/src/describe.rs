//! The plugin's static description: fault codes, meters, warranty, inspections.

use tend_plugin_sdk::prelude::*;

/// Amplifier in protection mode (its zones are silent).
pub const AMP_PROTECT: &str = "amp_protect";
/// Amplifier temperature at or above the limit.
pub const AMP_OVERTEMP: &str = "amp_overtemp";
/// A zone's speaker line impedance far above its baseline.
pub const SPEAKER_LINE_OPEN: &str = "speaker_line_open";
/// A zone's speaker line impedance far below its baseline.
pub const SPEAKER_LINE_SHORT: &str = "speaker_line_short";
/// A zone's speaker line impedance moderately off its baseline.
pub const SPEAKER_LINE_DRIFT: &str = "speaker_line_drift";
/// Projector lamp hours reached the rated hours.
pub const LAMP_END_OF_LIFE: &str = "lamp_end_of_life";
/// Projector temperature at or above the limit.
pub const PROJECTOR_OVERTEMP: &str = "projector_overtemp";
/// Display offline for a while.
pub const DISPLAY_OFFLINE: &str = "display_offline";
/// Media player heartbeat too old.
pub const PLAYER_STALLED: &str = "player_stalled";
/// No video input signal for a while.
pub const SIGNAL_LOSS: &str = "signal_loss";
/// A cooling fan reports failure.
pub const FAN_FAILURE: &str = "fan_failure";

/// Every fault code, in the order of the telemetry.md table.
pub const ALL_CODES: [&str; 11] = [
    AMP_PROTECT,
    AMP_OVERTEMP,
    SPEAKER_LINE_OPEN,
    SPEAKER_LINE_SHORT,
    SPEAKER_LINE_DRIFT,
    LAMP_END_OF_LIFE,
    PROJECTOR_OVERTEMP,
    DISPLAY_OFFLINE,
    PLAYER_STALLED,
    SIGNAL_LOSS,
    FAN_FAILURE,
];

/// Meter: projector lamp hours as reported (h).
pub const METER_LAMP_HOURS: &str = "projector_lamp_hours";
/// Meter: projector filter hours as reported (h).
pub const METER_FILTER_HOURS: &str = "projector_filter_hours";
/// Meter: lamp hours as a percentage of the rated hours (%).
pub const METER_LAMP_LIFE_PCT: &str = "lamp_life_pct";

/// Warranty component: power amplifiers.
pub const C_AMPLIFIER: &str = "amplifier";
/// Warranty component: speakers, line transformers and speaker wiring.
pub const C_SPEAKERS_WIRING: &str = "speakers_wiring";
/// Warranty component: projector (body, lamp housing, fans).
pub const C_PROJECTOR: &str = "projector";
/// Warranty component: displays / information screens.
pub const C_DISPLAY: &str = "display";
/// Warranty component: media players.
pub const C_PLAYER: &str = "player";
/// Warranty component: central control, matrix switcher and signal distribution.
pub const C_CENTRAL_CONTROL: &str = "central_control";

/// Default severity of a code (the first level of the telemetry.md table).
pub fn default_severity(code: &str) -> u8 {
    match code {
        SPEAKER_LINE_OPEN | LAMP_END_OF_LIFE | FAN_FAILURE => 3,
        SPEAKER_LINE_DRIFT => 4,
        _ => 2,
    }
}

/// The description handed to the host.
pub fn description() -> Description {
    let fault = |code: &str, title: &str, component: &str| {
        FaultSpec::new(code, title, default_severity(code), component)
    };
    // The AV seed (the Huaihai Rd. 138 plan: BGM, professional AV, information
    // displays, central control) states no warranty period: it only gives a first
    // maintenance period of about a year after commissioning, and the general
    // electronics seed says "产品保修期为一年". So every AV component defaults to
    // 12 months; the inventory overrides per device.
    let warranty =
        [C_AMPLIFIER, C_SPEAKERS_WIRING, C_PROJECTOR, C_DISPLAY, C_PLAYER, C_CENTRAL_CONTROL]
            .into_iter()
            .map(|component| WarrantyDefault { component: component.into(), months: 12 })
            .collect();

    Description {
        equipment_type: "av-system".into(),
        plugin_version: "0.1.0".into(),
        faults: vec![
            fault(AMP_PROTECT, "Amplifier in protection mode", C_AMPLIFIER).interrupts_service(),
            fault(AMP_OVERTEMP, "Amplifier overheating", C_AMPLIFIER),
            fault(SPEAKER_LINE_OPEN, "Speaker line open", C_SPEAKERS_WIRING),
            fault(SPEAKER_LINE_SHORT, "Speaker line short circuit", C_SPEAKERS_WIRING),
            fault(SPEAKER_LINE_DRIFT, "Speaker line impedance drift", C_SPEAKERS_WIRING),
            fault(LAMP_END_OF_LIFE, "Projector lamp at end of life", C_PROJECTOR),
            fault(PROJECTOR_OVERTEMP, "Projector overheating", C_PROJECTOR),
            fault(DISPLAY_OFFLINE, "Display offline", C_DISPLAY).interrupts_service(),
            fault(PLAYER_STALLED, "Media player stalled", C_PLAYER),
            fault(SIGNAL_LOSS, "Video signal lost", C_CENTRAL_CONTROL).interrupts_service(),
            fault(FAN_FAILURE, "Cooling fan failure", C_PROJECTOR),
        ],
        meters: vec![
            MeterSpec::new(METER_LAMP_HOURS, "h"),
            MeterSpec::new(METER_FILTER_HOURS, "h"),
            MeterSpec::new(METER_LAMP_LIFE_PCT, "%"),
        ],
        warranty,
        inspections: vec![quarterly(), lamp_replacement(), filter_clean()],
        offline_timeout_s: 300,
    }
}

fn plan(
    id: &str,
    title: &str,
    every: Option<Period>,
    meter: Option<MeterTrigger>,
    checklist: &[&str],
) -> InspectionPlan {
    InspectionPlan {
        id: id.into(),
        title: title.into(),
        every,
        meter,
        checklist: checklist.iter().map(|s| (*s).to_owned()).collect(),
        only_if_setting: None,
    }
}

/// Quarterly on-site inspection (巡检) of the whole AV system (maintenance.md §3).
fn quarterly() -> InspectionPlan {
    plan(
        "quarterly",
        "Quarterly AV system inspection",
        Some(Period::Months(3)),
        None,
        &[
            "Check every device against the as-built equipment list and record the results \
             in the monthly/quarterly equipment and operation register \
             (月/季度系统设备和运行情况登记单)",
            "Background music: play a test programme in every zone; check level, distortion, \
             zone switching and paging/emergency priority",
            "Measure each zone's speaker line impedance, compare with its baseline and tighten \
             loose terminals",
            "Amplifiers: check temperature, protection and clip indicators, rack ventilation \
             and fans; remove dust",
            "Projectors: read lamp and filter hours, clean the air filter, check brightness, \
             focus, keystone and fan noise",
            "Displays and information screens: check power-on, picture, network link and \
             scheduled content",
            "Media players: check heartbeat, playlists, free storage and software version; \
             apply vendor patches",
            "Central control: run every control panel scene, test matrix source switching and \
             the signal path to each projector and display",
            "Check mains supply, UPS, earthing and cable labelling; note hidden problems and \
             agree on corrective work with the customer",
            "Fill in and countersign the inspection record; send the report within 3 working \
             days",
        ],
    )
}

/// Lamp replacement when the lamp reaches 90 % of its rated hours (maintenance.md §3).
fn lamp_replacement() -> InspectionPlan {
    plan(
        "lamp-replacement",
        "Projector lamp replacement (90 % of rated hours)",
        None,
        Some(MeterTrigger { meter: METER_LAMP_LIFE_PCT.into(), rule: MeterRule::Reaches(90.0) }),
        &[
            "Bring a lamp module of the projector's model",
            "Replace the lamp with the projector cooled down; record the old and new lamp serials",
            "Reset the projector's lamp hour counter",
            "Clean or replace the air filter and check the cooling fans",
            "Check brightness, colour and focus after the change",
        ],
    )
}

/// Filter cleaning every 500 filter hours (maintenance.md §3).
fn filter_clean() -> InspectionPlan {
    plan(
        "filter-clean",
        "Projector air filter cleaning (every 500 h)",
        None,
        Some(MeterTrigger { meter: METER_FILTER_HOURS.into(), rule: MeterRule::Every(500.0) }),
        &[
            "Clean the projector air filter (replace it if torn or clogged)",
            "Reset the projector's filter hour counter",
            "Clear dust from the intake and exhaust vents; check the cooling fans run",
            "Check the projector temperature reading after 15 minutes of operation",
        ],
    )
}
