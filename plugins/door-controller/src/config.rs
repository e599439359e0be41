//! Thresholds, read from the device's inventory settings with the spec's defaults.

use tend_plugin_sdk::prelude::*;

/// Default seconds a fire door may stand open (`held_open_fire_s`).
pub const HELD_OPEN_FIRE_S: f64 = 60.0;
/// Default seconds any other door may stand open (`held_open_s`).
pub const HELD_OPEN_S: f64 = 300.0;
/// Default battery voltage below which `battery_low` is level 3 (`battery_low_v`).
pub const BATTERY_LOW_V: f64 = 11.5;
/// Default battery voltage below which `battery_low` is level 2 (`battery_critical_v`).
pub const BATTERY_CRITICAL_V: f64 = 10.5;
/// Default number of denials that make the reader suspect (`reader_denied_count`).
pub const READER_DENIED_COUNT: f64 = 10.0;
/// Default window for counting denials, in seconds (`reader_window_s`).
pub const READER_WINDOW_S: f64 = 60.0;
/// Default seconds an `access_granted` legitimises an opening (`forced_grace_s`).
pub const FORCED_GRACE_S: f64 = 10.0;
/// Default seconds a closed door may stay unlocked (`lock_delay_s`).
pub const LOCK_DELAY_S: f64 = 10.0;

/// The thresholds in force for one device (durations in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// A fire door open this long raises `door_held_open` (level 2).
    pub held_open_fire_ms: i64,
    /// Any other door open this long raises `door_held_open` (level 3).
    pub held_open_ms: i64,
    /// `battery_v` below this: `battery_low` level 3.
    pub battery_low_v: f64,
    /// `battery_v` below this: `battery_low` level 2.
    pub battery_critical_v: f64,
    /// This many `access_denied` within `reader_window_ms` raise `reader_suspect`.
    pub reader_denied_count: usize,
    /// The window for counting denials.
    pub reader_window_ms: i64,
    /// An `access_granted` this recent makes an opening legitimate.
    pub forced_grace_ms: i64,
    /// A closed door unlocked this long raises `lock_fault`.
    pub lock_delay_ms: i64,
    /// The inventory says this is a fire door (used when telemetry lacks `fire_door`).
    pub fire_door: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            held_open_fire_ms: secs_to_ms(HELD_OPEN_FIRE_S),
            held_open_ms: secs_to_ms(HELD_OPEN_S),
            battery_low_v: BATTERY_LOW_V,
            battery_critical_v: BATTERY_CRITICAL_V,
            reader_denied_count: READER_DENIED_COUNT as usize,
            reader_window_ms: secs_to_ms(READER_WINDOW_S),
            forced_grace_ms: secs_to_ms(FORCED_GRACE_S),
            lock_delay_ms: secs_to_ms(LOCK_DELAY_S),
            fire_door: false,
        }
    }
}

impl Config {
    /// Reads the device's settings; a wrong type or a negative duration is
    /// [`EvalError::BadSettings`] naming the key.
    pub fn from_device(device: &Device) -> Result<Self, EvalError> {
        let s = device.settings()?;
        let secs = |key: &str, default: f64| -> Result<i64, EvalError> {
            let v = s.f64_or(key, default)?;
            if v < 0.0 {
                return Err(EvalError::BadSettings(format!(
                    "setting `{key}` must not be negative, got {v}"
                )));
            }
            Ok(secs_to_ms(v))
        };
        let count = s.f64_or("reader_denied_count", READER_DENIED_COUNT)?;
        if count < 1.0 {
            return Err(EvalError::BadSettings(format!(
                "setting `reader_denied_count` must be at least 1, got {count}"
            )));
        }
        Ok(Self {
            held_open_fire_ms: secs("held_open_fire_s", HELD_OPEN_FIRE_S)?,
            held_open_ms: secs("held_open_s", HELD_OPEN_S)?,
            battery_low_v: s.f64_or("battery_low_v", BATTERY_LOW_V)?,
            battery_critical_v: s.f64_or("battery_critical_v", BATTERY_CRITICAL_V)?,
            // `as` saturates: an absurdly large count simply never fires.
            reader_denied_count: count.ceil() as usize,
            reader_window_ms: secs("reader_window_s", READER_WINDOW_S)?,
            forced_grace_ms: secs("forced_grace_s", FORCED_GRACE_S)?,
            lock_delay_ms: secs("lock_delay_s", LOCK_DELAY_S)?,
            fire_door: s.bool_or("fire_door", false)?,
        })
    }
}

/// Seconds (finite, non-negative) to milliseconds, saturating.
fn secs_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}
