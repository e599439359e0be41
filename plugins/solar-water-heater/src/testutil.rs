//! Test helpers: a reading builder, a simulated device and RFC 3339 for traces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tend_plugin_sdk::prelude::*;
use tend_plugin_sdk::runner;

use crate::SolarWaterHeater;
use crate::rules::State;

/// One reading's fields as raw JSON texts (the `ts` is added when sent).
#[derive(Debug, Clone)]
pub struct Rd {
    fields: Vec<(String, String)>,
}

impl Rd {
    /// A healthy sunny reading: pump circulating, nothing drawn, valve closed.
    pub fn day() -> Self {
        Rd { fields: vec![] }
            .f("collector_temp_c", 62.0)
            .f("tank_temp_c", 55.0)
            .f("tank_level_pct", 90.0)
            .f("inlet_temp_c", 20.0)
            .f("ambient_temp_c", 28.0)
            .f("irradiance_w_m2", 750.0)
            .b("pump_on", true)
            .f("circulation_flow_l_min", 8.0)
            .f("draw_flow_l_min", 0.0)
            .b("inlet_valve_open", false)
            .b("heater_on", false)
            .i("error_code", 0)
    }

    /// A healthy night reading: no sun, pump off.
    pub fn night() -> Self {
        Rd::day()
            .f("collector_temp_c", 19.0)
            .f("ambient_temp_c", 18.0)
            .f("irradiance_w_m2", 0.0)
            .b("pump_on", false)
            .f("circulation_flow_l_min", 0.0)
    }

    /// Sets a field to raw JSON text.
    pub fn raw(mut self, key: &str, json: &str) -> Self {
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = json.to_owned(),
            None => self.fields.push((key.to_owned(), json.to_owned())),
        }
        self
    }

    /// Sets a number (must be finite).
    pub fn f(self, key: &str, v: f64) -> Self {
        assert!(v.is_finite());
        self.raw(key, &format!("{v}"))
    }

    /// Sets a boolean.
    pub fn b(self, key: &str, v: bool) -> Self {
        self.raw(key, if v { "true" } else { "false" })
    }

    /// Sets an integer.
    pub fn i(self, key: &str, v: i64) -> Self {
        self.raw(key, &v.to_string())
    }

    /// Removes a field.
    pub fn without(mut self, key: &str) -> Self {
        self.fields.retain(|(k, _)| k != key);
        self
    }

    /// The payload text with `ts` given as raw JSON.
    pub fn json(&self, ts_json: &str) -> String {
        let mut s = format!("{{\"ts\":{ts_json}");
        for (k, v) in &self.fields {
            s.push_str(&format!(",\"{k}\":{v}"));
        }
        s.push('}');
        s
    }
}

/// One device fed readings through `runner::evaluate` (state round-tripped as bytes).
pub struct Sim {
    /// The device (settings included).
    pub device: Device,
    /// Stored state bytes.
    pub state: Option<Vec<u8>>,
    /// Time of the next `step`.
    pub ts: i64,
}

/// 2026-07-15T10:00:00+08:00.
pub fn t0() -> i64 {
    parse_rfc3339("2026-07-15T10:00:00+08:00").unwrap()
}

impl Sim {
    /// A device with no settings, starting at [`t0`].
    pub fn new() -> Self {
        Sim { device: Device::new("swh-1", "SWH-300"), state: None, ts: t0() }
    }

    /// A device with settings.
    pub fn with_settings(settings: &str) -> Self {
        let mut s = Sim::new();
        s.device.settings = settings.to_owned();
        s
    }

    /// Sends one message.
    pub fn send(
        &mut self,
        kind: MessageKind,
        ts: i64,
        payload: &[u8],
    ) -> Result<Outcome, EvalError> {
        let name = match kind {
            MessageKind::Telemetry => "telemetry",
            MessageKind::Event => "event",
            MessageKind::Status => "status",
        };
        let msg = Message {
            kind,
            topic: format!("tend/test-site/swh-1/{name}"),
            payload: payload.to_vec(),
            ts_ms: ts,
        };
        let ev = runner::evaluate::<SolarWaterHeater>(&self.device, &msg, self.state.as_deref())?;
        self.state = Some(ev.state);
        Ok(ev.outcome)
    }

    /// Sends a reading at `ts` (does not move the clock).
    pub fn at(&mut self, ts: i64, r: &Rd) -> Outcome {
        self.send(MessageKind::Telemetry, ts, r.json(&ts.to_string()).as_bytes()).unwrap()
    }

    /// Sends a reading at the clock, then advances it by 60 s.
    pub fn step(&mut self, r: &Rd) -> Outcome {
        let out = self.at(self.ts, r);
        self.ts += MINUTE_MS;
        out
    }

    /// `n` steps of the same reading; the outcomes.
    pub fn steps(&mut self, r: &Rd, n: usize) -> Vec<Outcome> {
        (0..n).map(|_| self.step(r)).collect()
    }

    /// The decoded state.
    pub fn state(&self) -> State {
        runner::load_state::<SolarWaterHeater>(self.state.as_deref()).unwrap()
    }
}

/// `Some(active)` when `code` was judged, `None` when not.
pub fn judged(out: &Outcome, code: &str) -> Option<bool> {
    out.condition(code).map(|c| c.active)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM)` to epoch ms.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let (y, mo, d, h, mi, sec) =
        (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    let mut i = 19;
    let mut frac_ms = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = s.get(start..i)?;
        let padded = format!("{digits:0<3}");
        frac_ms = padded.get(0..3)?.parse::<i64>().ok()?;
    }
    let offset_s = match b.get(i)? {
        b'Z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let o = n(i + 1..i + 3)? * 3600 + n(i + 4..i + 6)? * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    Some(secs * 1000 + frac_ms)
}

/// Formats epoch ms as `YYYY-MM-DDTHH:MM:SS+08:00` (whole seconds).
pub fn format_cst(ms: i64) -> String {
    let local = ms.div_euclid(1000) + 8 * 3600;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+08:00", sod / 3600, sod % 3600 / 60, sod % 60)
}

#[test]
fn rfc3339_round_trips() {
    let ms = parse_rfc3339("2026-11-22T10:00:00+08:00").unwrap();
    assert_eq!(ms, 1_795_312_800_000);
    assert_eq!(format_cst(ms), "2026-11-22T10:00:00+08:00");
    assert_eq!(parse_rfc3339("2026-11-22T02:00:00.5Z"), Some(ms + 500));
    assert_eq!(parse_rfc3339("2026-11-22T10:00:00"), None);
    assert_eq!(
        format_cst(parse_rfc3339("2024-02-29T23:59:59-01:00").unwrap()),
        "2024-03-01T08:59:59+08:00"
    );
}
