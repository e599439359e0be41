//! The contract's types in plain Rust; field meanings are documented in `wit/plugin.wit`.

use serde::{Deserialize, Serialize};

use crate::settings::Settings;

/// Milliseconds since the Unix epoch (event time).
pub type TimestampMs = i64;

/// The last segment of the message's MQTT topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Periodic readings.
    Telemetry,
    /// Discrete events.
    Event,
    /// "online" / "offline".
    Status,
}

/// One message of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Telemetry, event or status.
    pub kind: MessageKind,
    /// The MQTT topic it arrived on.
    pub topic: String,
    /// Raw payload bytes (compact JSON for the reference formats).
    pub payload: Vec<u8>,
    /// Event time, parsed by the host.
    pub ts_ms: TimestampMs,
}

/// The device a message belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Inventory id (the topic's `{device_id}`).
    pub id: String,
    /// Model name from the inventory.
    pub model: String,
    /// Per-device settings as JSON object text (`{}` when none).
    pub settings: String,
}

impl Device {
    /// A device with no settings.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        Self { id: id.into(), model: model.into(), settings: "{}".into() }
    }

    /// Parses the per-device settings.
    pub fn settings(&self) -> Result<Settings, EvalError> {
        Settings::parse(&self.settings)
    }
}

/// Hardware or software fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A part is broken: repair or replace.
    Hardware,
    /// Configuration or software: adjust.
    Software,
}

/// A first diagnosis for the technician.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// What most likely causes the fault.
    pub probable_cause: String,
    /// Hardware or software.
    pub category: Category,
    /// Spare parts worth bringing.
    pub suggested_parts: Vec<String>,
}

impl Diagnosis {
    /// A hardware diagnosis with suggested parts.
    pub fn hardware(cause: impl Into<String>, parts: &[&str]) -> Self {
        Self {
            probable_cause: cause.into(),
            category: Category::Hardware,
            suggested_parts: parts.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// A software / configuration diagnosis.
    pub fn software(cause: impl Into<String>) -> Self {
        Self { probable_cause: cause.into(), category: Category::Software, suggested_parts: vec![] }
    }
}

/// A reading that supports a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// When it was read.
    pub ts_ms: TimestampMs,
    /// Payload field name.
    pub field: String,
    /// Its value.
    pub value: f64,
}

/// A fault condition as judged on one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// A declared fault code.
    pub code: String,
    /// Holds at this message's time.
    pub active: bool,
    /// 1 (critical) ..= 4 (warning).
    pub severity: u8,
    /// One line for people.
    pub summary: String,
    /// Supporting readings.
    pub evidence: Vec<Evidence>,
    /// First diagnosis.
    pub diagnosis: Option<Diagnosis>,
}

impl Condition {
    /// An active condition.
    pub fn active(code: &str, severity: u8, summary: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            active: true,
            severity,
            summary: summary.into(),
            evidence: vec![],
            diagnosis: None,
        }
    }

    /// A condition that does not hold at this message.
    pub fn inactive(code: &str) -> Self {
        Self {
            code: code.to_owned(),
            active: false,
            severity: 0,
            summary: String::new(),
            evidence: vec![],
            diagnosis: None,
        }
    }

    /// `active(..)` when `holds`, else `inactive(..)`; `make` builds the active one.
    pub fn judge(code: &str, holds: bool, make: impl FnOnce() -> Condition) -> Self {
        if holds { make() } else { Self::inactive(code) }
    }

    /// Adds a supporting reading.
    pub fn evidence(mut self, ts_ms: TimestampMs, field: &str, value: f64) -> Self {
        self.evidence.push(Evidence { ts_ms, field: field.to_owned(), value });
        self
    }

    /// Sets the diagnosis.
    pub fn diagnosis(mut self, diagnosis: Diagnosis) -> Self {
        self.diagnosis = Some(diagnosis);
        self
    }
}

/// The absolute value of a usage meter.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterReading {
    /// A declared meter.
    pub meter: String,
    /// Its value after this message.
    pub value: f64,
}

/// What one message changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Conditions judged on this message (absent codes keep their state).
    pub conditions: Vec<Condition>,
    /// Meters that have a value after this message.
    pub meters: Vec<MeterReading>,
}

impl Outcome {
    /// Adds a meter reading.
    pub fn meter(&mut self, meter: &str, value: f64) {
        self.meters.push(MeterReading { meter: meter.to_owned(), value });
    }

    /// The condition judged for `code`, if any.
    pub fn condition(&self, code: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.code == code)
    }
}

/// A message the plugin cannot use (returned, never trapped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// Payload not in a format the plugin understands.
    BadPayload(String),
    /// Inventory settings invalid for this plugin.
    BadSettings(String),
    /// Stored state unreadable.
    BadState(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadPayload(m) => write!(f, "bad payload: {m}"),
            Self::BadSettings(m) => write!(f, "bad settings: {m}"),
            Self::BadState(m) => write!(f, "bad state: {m}"),
        }
    }
}

impl std::error::Error for EvalError {}

/// The result of evaluating one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// What changed.
    pub outcome: Outcome,
    /// The new opaque state.
    pub state: Vec<u8>,
}

/// The result of evaluating several messages.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEvaluation {
    /// One result per message, in order.
    pub outcomes: Vec<Result<Outcome, EvalError>>,
    /// State after the last message.
    pub state: Vec<u8>,
}

/// A fault code the plugin can raise.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// The code.
    pub code: String,
    /// Ticket title.
    pub title: String,
    /// 1 ..= 4.
    pub default_severity: u8,
    /// Escalates to level 1 after 10 minutes.
    pub interrupts_service: bool,
    /// Warranty component.
    pub component: String,
}

impl FaultSpec {
    /// A fault that does not interrupt service.
    pub fn new(code: &str, title: &str, default_severity: u8, component: &str) -> Self {
        Self {
            code: code.into(),
            title: title.into(),
            default_severity,
            interrupts_service: false,
            component: component.into(),
        }
    }

    /// Marks the fault as interrupting service.
    pub fn interrupts_service(mut self) -> Self {
        self.interrupts_service = true;
        self
    }
}

/// A usage meter.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSpec {
    /// Meter name.
    pub name: String,
    /// Unit for people.
    pub unit: String,
}

impl MeterSpec {
    /// A meter with a unit.
    pub fn new(name: &str, unit: &str) -> Self {
        Self { name: name.into(), unit: unit.into() }
    }
}

/// A component's default warranty.
#[derive(Debug, Clone, PartialEq)]
pub struct WarrantyDefault {
    /// Component name.
    pub component: String,
    /// Months from commissioning.
    pub months: u32,
}

/// When a meter calls for an inspection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MeterRule {
    /// Each time it advanced this much since the last completion.
    Every(f64),
    /// When it reaches this value.
    Reaches(f64),
}

/// A usage trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterTrigger {
    /// Which meter.
    pub meter: String,
    /// Its rule.
    pub rule: MeterRule,
}

/// A calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A number of days.
    Days(u32),
    /// Calendar months (6 months after 03-31 is 09-30).
    Months(u32),
}

/// A preventive inspection plan.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionPlan {
    /// Stable id.
    pub id: String,
    /// Title for tickets.
    pub title: String,
    /// Calendar period.
    pub every: Option<Period>,
    /// Usage trigger.
    pub meter: Option<MeterTrigger>,
    /// What the technician checks.
    pub checklist: Vec<String>,
    /// Applies only to devices whose settings set this key to `true`.
    pub only_if_setting: Option<String>,
}

/// The plugin's static description.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// Inventory `type` served.
    pub equipment_type: String,
    /// Plugin version.
    pub plugin_version: String,
    /// Fault codes.
    pub faults: Vec<FaultSpec>,
    /// Usage meters.
    pub meters: Vec<MeterSpec>,
    /// Warranty defaults.
    pub warranty: Vec<WarrantyDefault>,
    /// Inspection plans.
    pub inspections: Vec<InspectionPlan>,
    /// Offline after this many seconds of silence.
    pub offline_timeout_s: u32,
}
