//! A deliberately bad plugin for the host's sandbox tests.
//!
//! What it does wrong is picked per device by the inventory setting `misbehave`:
//! - `"loop"`: never returns (the host's epoch deadline must stop it);
//! - `"hog"`: allocates without bound (the host's memory limit must stop it);
//! - `"sleep"`: waits on a WASI timer that never fires (the host must refuse the wait);
//! - `"panic"`: panics (a trap);
//! - `"garbage"`: returns an undeclared code, severity 9 and a huge summary;
//! - `"hoard"`: behaves, but its state grows by 64 KiB with every message (the
//!   host's state budget must stop it);
//! - anything else / absent: behaves, raising `bad_reading` when `value` > 10 —
//!   except that a reading of exactly 13 is poisonous: it panics.

use serde::{Deserialize, Serialize};
use tend_plugin_sdk::prelude::*;

/// The plugin.
pub struct Misbehaving;

/// Per-device state: a message count, and what `"hoard"` keeps.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    count: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    hoard: String,
}

/// How much `"hoard"` adds to its state per message.
const HOARD_STEP: usize = 64 << 10;

impl Plugin for Misbehaving {
    type State = State;

    fn describe() -> Description {
        Description {
            equipment_type: "misbehaving".into(),
            plugin_version: "0.0.1".into(),
            faults: vec![FaultSpec::new("bad_reading", "Value above 10", 3, "main_unit")],
            meters: vec![MeterSpec::new("messages", "count")],
            warranty: vec![WarrantyDefault { component: "main_unit".into(), months: 12 }],
            inspections: vec![],
            offline_timeout_s: 300,
        }
    }

    fn evaluate(device: &Device, msg: &Message, state: &mut State) -> Result<Outcome, EvalError> {
        let settings = device.settings()?;
        let mut out = Outcome::default();
        match settings.str("misbehave")? {
            Some("loop") => spin(),
            Some("hog") => hog(),
            // Asks WASI for a timer that never fires (`subscribe-duration(u64::MAX)`)
            // and blocks on it: a host call the epoch deadline cannot interrupt.
            Some("sleep") => std::thread::sleep(std::time::Duration::from_nanos(u64::MAX)),
            #[allow(clippy::panic)]
            Some("panic") => panic!("misbehaving plugin panics on purpose"),
            Some("garbage") => {
                out.conditions.push(Condition::active("no_such_code", 9, "x".repeat(1 << 20)));
            }
            Some("hoard") => state.hoard.push_str(&"h".repeat(HOARD_STEP)),
            _ => {
                let p = Payload::parse(&msg.payload)?;
                let value = p.f64("value").ok().ok_or_else(|| {
                    EvalError::BadPayload("`value` is missing or not a number".into())
                })?;
                #[allow(clippy::panic)]
                if value == 13.0 {
                    panic!("poisonous reading 13");
                }
                out.conditions.push(Condition::judge("bad_reading", value > 10.0, || {
                    Condition::active("bad_reading", 3, format!("value {value} > 10"))
                        .evidence(msg.ts_ms, "value", value)
                }));
            }
        }
        state.count += 1;
        out.meter("messages", state.count as f64);
        Ok(out)
    }
}

fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn hog() -> ! {
    let mut keep: Vec<Vec<u8>> = Vec::new();
    loop {
        keep.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&keep);
    }
}

export_plugin!(Misbehaving);
