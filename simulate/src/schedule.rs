//! The schedule of injected faults: which device, which fault code, from what
//! event-time offset after the start, for how long; optionally repeated.
//!
//! TOML form (`--faults FILE`; unknown keys are errors):
//!
//! ```toml
//! repeat_every = "8h"     # optional: the whole schedule starts again every 8 h
//!
//! [[fault]]
//! device = "swh-roof-a1"  # an inventory device
//! code = "pump_failure"   # a fault code of its type (telemetry.md)
//! at = "5m"               # event time after the simulation starts
//! for = "30m"             # how long the fault lasts
//! ```
//!
//! On the command line: `--fault DEVICE:CODE:AT:FOR`, e.g. `swh-roof-a1:overheat:1h:3h`.

use std::path::Path;

use serde::Deserialize;

use tend_agent::config::{Inventory, parse_duration};

use super::fault_codes;

/// A problem with a fault schedule.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    /// The file or a `--fault` argument could not be read.
    #[error("{origin}: {message}")]
    Parse {
        /// The file, or `--fault ...`.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A fault names a device the inventory does not have.
    #[error("fault {index}: device `{device}` is not in the inventory")]
    UnknownDevice {
        /// 1-based position in the schedule.
        index: usize,
        /// The device.
        device: String,
    },
    /// A fault code the device's type does not have.
    #[error(
        "fault {index}: `{code}` is not a fault of {equipment_type} `{device}`; it has: {valid}"
    )]
    UnknownCode {
        /// 1-based position in the schedule.
        index: usize,
        /// The device.
        device: String,
        /// Its type.
        equipment_type: String,
        /// The code asked for.
        code: String,
        /// The codes the type has.
        valid: String,
    },
    /// A fault longer than the repeat period (it would overlap itself).
    #[error("fault {index}: lasts {length} but the schedule repeats every {period}")]
    LongerThanRepeat {
        /// 1-based position in the schedule.
        index: usize,
        /// Its length.
        length: String,
        /// The period.
        period: String,
    },
}

/// One injected fault, relative to the start of the simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The device.
    pub device: String,
    /// The fault code (telemetry.md).
    pub code: String,
    /// Event-time offset from the start, ms.
    pub at_ms: i64,
    /// How long it lasts, ms.
    pub for_ms: i64,
}

/// A fault schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// The faults, in the order given.
    pub faults: Vec<Fault>,
    /// When set, every fault happens again this long after its previous start.
    pub repeat_every_ms: Option<i64>,
}

/// One fault of one device in absolute event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultWindow {
    /// The fault code.
    pub code: String,
    /// First onset, ms.
    pub start_ms: i64,
    /// Length, ms.
    pub len_ms: i64,
    /// Repeat period, ms.
    pub period_ms: Option<i64>,
}

impl FaultWindow {
    /// How long the fault has been active at `t` (ms), if it is.
    pub fn active_for(&self, t: i64) -> Option<i64> {
        if t < self.start_ms {
            return None;
        }
        let off = t - self.start_ms;
        let off = self.period_ms.filter(|p| *p > 0).map_or(off, |p| off % p);
        (off < self.len_ms).then_some(off)
    }

    /// The onsets in `(from, to]`, in order.
    pub fn onsets_in(&self, from: i64, to: i64) -> Vec<i64> {
        let mut out = Vec::new();
        match self.period_ms.filter(|p| *p > 0) {
            None => {
                if self.start_ms > from && self.start_ms <= to {
                    out.push(self.start_ms);
                }
            }
            Some(p) => {
                let k = if from < self.start_ms { 0 } else { (from - self.start_ms) / p };
                let mut t = self.start_ms + k * p;
                while t <= to {
                    if t > from {
                        out.push(t);
                    }
                    t += p;
                }
            }
        }
        out
    }
}

/// A fault of the demo plan: code, onset and length in event minutes.
type Planned = (&'static str, i64, i64);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    repeat_every: Option<String>,
    #[serde(default)]
    fault: Vec<RawFault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    device: String,
    code: String,
    at: String,
    #[serde(rename = "for")]
    length: String,
}

fn duration_ms(origin: &str, key: &str, s: &str) -> Result<i64, ScheduleError> {
    let d = parse_duration(s).map_err(|m| ScheduleError::Parse {
        origin: origin.to_owned(),
        message: format!("{key}: {m}"),
    })?;
    Ok(d.as_millis().clamp(0, i64::MAX as i128) as i64)
}

impl Schedule {
    /// Parses the TOML form; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ScheduleError> {
        let raw: RawSchedule = toml::from_str(text).map_err(|e| ScheduleError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let repeat_every_ms = raw
            .repeat_every
            .as_deref()
            .map(|s| duration_ms(origin, "repeat_every", s))
            .transpose()?;
        let faults = raw
            .fault
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let at = format!("{origin}: fault {}", i + 1);
                Ok(Fault {
                    device: f.device,
                    code: f.code,
                    at_ms: duration_ms(&at, "at", &f.at)?,
                    for_ms: duration_ms(&at, "for", &f.length)?,
                })
            })
            .collect::<Result<_, ScheduleError>>()?;
        Ok(Self { faults, repeat_every_ms })
    }

    /// Reads the TOML form from a file.
    pub fn load(path: &Path) -> Result<Self, ScheduleError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScheduleError::Parse {
            origin: origin.clone(),
            message: format!("cannot read the fault schedule: {e}"),
        })?;
        Self::from_toml(&text, &origin)
    }

    /// Parses one `DEVICE:CODE:AT:FOR` argument.
    pub fn parse_cli(arg: &str) -> Result<Fault, ScheduleError> {
        let origin = format!("--fault {arg}");
        let parts: Vec<&str> = arg.split(':').collect();
        let [device, code, at, length] = parts[..] else {
            return Err(ScheduleError::Parse {
                origin,
                message: "write DEVICE:CODE:AT:FOR, e.g. swh-roof-a1:overheat:1h:3h".into(),
            });
        };
        Ok(Fault {
            device: device.to_owned(),
            code: code.to_owned(),
            at_ms: duration_ms(&origin, "AT", at)?,
            for_ms: duration_ms(&origin, "FOR", length)?,
        })
    }

    /// Checks every fault against the inventory (device known, code of its type,
    /// shorter than the repeat period).
    pub fn check(&self, inventory: &Inventory) -> Result<(), ScheduleError> {
        for (i, f) in self.faults.iter().enumerate() {
            let index = i + 1;
            let Some(d) = inventory.device(&f.device) else {
                return Err(ScheduleError::UnknownDevice { index, device: f.device.clone() });
            };
            let codes = fault_codes(&d.equipment_type).unwrap_or(&[]);
            if !codes.contains(&f.code.as_str()) {
                return Err(ScheduleError::UnknownCode {
                    index,
                    device: f.device.clone(),
                    equipment_type: d.equipment_type.clone(),
                    code: f.code.clone(),
                    valid: codes.join(", "),
                });
            }
            if let Some(p) = self.repeat_every_ms
                && f.for_ms >= p
            {
                let fmt = |ms: i64| {
                    tend_agent::config::format_duration(jiff::SignedDuration::from_millis(ms))
                };
                return Err(ScheduleError::LongerThanRepeat {
                    index,
                    length: fmt(f.for_ms),
                    period: fmt(p),
                });
            }
        }
        Ok(())
    }

    /// The faults of `device` in absolute event time, for a simulation starting at
    /// `start_ms`.
    pub fn windows_for(&self, device: &str, start_ms: i64) -> Vec<FaultWindow> {
        self.faults
            .iter()
            .filter(|f| f.device == device)
            .map(|f| FaultWindow {
                code: f.code.clone(),
                start_ms: start_ms.saturating_add(f.at_ms),
                len_ms: f.for_ms,
                period_ms: self.repeat_every_ms,
            })
            .collect()
    }

    /// The demo's schedule for any inventory: per equipment type, a list of faults
    /// dealt round-robin to its devices. The first of each type start within a few
    /// minutes of event time and need no daylight (so at `--speed 60` every type has
    /// a ticket within the first minute, whatever the local time); later ones follow
    /// every quarter hour or so. It repeats every 8 hours (faults come back: the
    /// desk sees recurrences and, after a close, new tickets).
    pub fn demo(inventory: &Inventory) -> Self {
        const M: i64 = 60_000;
        // (code, at, for) in event minutes. Codes that need sun or night come later.
        let plans: [(&str, &[Planned]); 3] = [
            (
                super::solar::TYPE,
                &[
                    ("controller_error", 3, 20),
                    ("pump_failure", 5, 30),
                    ("sensor_fault", 9, 15),
                    ("tank_leak", 40, 60),
                    ("water_supply_abnormal", 55, 45),
                    ("overheat", 75, 240),
                ],
            ),
            (
                super::door::TYPE,
                &[
                    ("forced_open", 2, 1),
                    ("tamper", 6, 10),
                    ("reader_suspect", 12, 2),
                    ("door_held_open", 30, 8),
                    ("mains_failure", 45, 30),
                    ("lock_fault", 70, 20),
                ],
            ),
            (
                super::av::TYPE,
                &[
                    ("amp_protect", 4, 25),
                    ("speaker_line_short", 7, 20),
                    ("player_stalled", 10, 20),
                    ("display_offline", 40, 15),
                    ("fan_failure", 60, 30),
                    ("signal_loss", 85, 10),
                ],
            ),
        ];
        let mut faults = Vec::new();
        for (ty, plan) in plans {
            let devices: Vec<&str> = inventory
                .devices
                .iter()
                .filter(|d| d.equipment_type == ty)
                .map(|d| d.id.as_str())
                .collect();
            if devices.is_empty() {
                continue;
            }
            for (i, (code, at, len)) in plan.iter().enumerate() {
                faults.push(Fault {
                    device: devices[i % devices.len()].to_owned(),
                    code: (*code).to_owned(),
                    at_ms: at * M,
                    for_ms: len * M,
                });
            }
        }
        Self { faults, repeat_every_ms: Some(8 * 60 * M) }
    }
}
