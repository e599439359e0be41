//! Decoding of the reference door-controller payloads (telemetry.md).
//!
//! Decoding happens before any state changes, so an invalid payload leaves the
//! device's state untouched.

use tend_plugin_sdk::prelude::*;

/// One telemetry reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The door stands open (required).
    pub door_open: bool,
    /// The lock is engaged (required).
    pub locked: bool,
    /// The door is a fire door (optional; the `fire_door` setting is the fallback).
    pub fire_door: Option<bool>,
    /// Backup battery voltage, 12 V system (optional).
    pub battery_v: Option<f64>,
    /// Mains supply present (optional).
    pub mains_ok: Option<bool>,
    /// Tamper switch open (optional).
    pub tamper: Option<bool>,
    /// Open/close cycles since installation (optional).
    pub cycles_total: Option<i64>,
}

impl Reading {
    /// Decodes a telemetry payload. A missing required field, or any known field
    /// with the wrong type, is [`EvalError::BadPayload`] naming the field.
    pub fn decode(p: &Payload) -> Result<Self, EvalError> {
        let cycles_total = optional(p.i64("cycles_total"), "cycles_total", "an integer")?;
        if let Some(c) = cycles_total
            && c < 0
        {
            return Err(EvalError::BadPayload(format!(
                "`cycles_total` must not be negative, got {c}"
            )));
        }
        Ok(Self {
            door_open: required(p.bool("door_open"), "door_open", "a boolean")?,
            locked: required(p.bool("locked"), "locked", "a boolean")?,
            fire_door: optional(p.bool("fire_door"), "fire_door", "a boolean")?,
            battery_v: optional(p.f64("battery_v"), "battery_v", "a number")?,
            mains_ok: optional(p.bool("mains_ok"), "mains_ok", "a boolean")?,
            tamper: optional(p.bool("tamper"), "tamper", "a boolean")?,
            cycles_total,
        })
    }
}

/// A discrete event of the door controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorEvent {
    /// A valid credential was presented; the lock releases.
    AccessGranted,
    /// A credential was refused.
    AccessDenied,
    /// The door position sensor reports the door opening.
    DoorOpened,
    /// The door position sensor reports the door closing.
    DoorClosed,
    /// The controller itself reports a forced opening.
    ForcedOpen,
    /// The controller itself reports a lock fault.
    LockFault,
}

impl DoorEvent {
    /// Decodes an event payload `{"ts": .., "event": NAME}`; an unknown NAME is
    /// [`EvalError::BadPayload`].
    pub fn decode(p: &Payload) -> Result<Self, EvalError> {
        let name = required(p.str("event"), "event", "a string")?;
        match name {
            "access_granted" => Ok(Self::AccessGranted),
            "access_denied" => Ok(Self::AccessDenied),
            "door_opened" => Ok(Self::DoorOpened),
            "door_closed" => Ok(Self::DoorClosed),
            "forced_open" => Ok(Self::ForcedOpen),
            "lock_fault" => Ok(Self::LockFault),
            other => Err(EvalError::BadPayload(format!("unknown event `{}`", clip(other)))),
        }
    }
}

fn required<T>(f: Field<T>, name: &str, what: &str) -> Result<T, EvalError> {
    match f {
        Field::Value(v) => Ok(v),
        Field::Missing => Err(EvalError::BadPayload(format!("`{name}` is missing"))),
        Field::Invalid => Err(EvalError::BadPayload(format!("`{name}` is not {what}"))),
    }
}

fn optional<T>(f: Field<T>, name: &str, what: &str) -> Result<Option<T>, EvalError> {
    match f {
        Field::Value(v) => Ok(Some(v)),
        Field::Missing => Ok(None),
        Field::Invalid => Err(EvalError::BadPayload(format!("`{name}` is not {what}"))),
    }
}

/// At most 64 characters of untrusted text, for error messages.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
