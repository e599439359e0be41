//! The packed encoding of a batch's outcomes (`packed.evaluate-batch` in the WIT).
//!
//! Lifting `list<result<outcome, eval-error>>` out of a component costs the host a
//! bounds check, a UTF-8 check, an allocation and a copy per string, plus a walk of
//! the canonical-ABI layout per record and list; the guest first lays all of it out
//! and frees it again afterwards. Packed, the outcomes cross as one byte string that
//! the guest writes in one pass and the host reads in one pass (still checking every
//! length and every string, since the bytes come from an untrusted plugin).
//!
//! All integers little-endian; a *string* is a `u32` byte length then UTF-8 bytes; a
//! *count* is a `u32`.
//!
//! ```text
//! outcomes   = count outcome*
//! outcome    = 0x00 count condition* count meter          (ok)
//!            | (0x01 | 0x02 | 0x03) string                 (bad-payload | bad-settings | bad-state)
//! condition  = string(code) u8(active: 0|1) u8(severity) string(summary)
//!              count evidence* diagnosis
//! evidence   = i64(ts-ms) string(field) f64(value)
//! diagnosis  = 0x00 | 0x01 string(probable-cause) u8(category: 0 hardware, 1 software) count string*
//! meter      = string(meter) f64(value)
//! ```

use crate::types::{
    Category, Condition, Diagnosis, EvalError, Evidence, MeterReading, Outcome, TimestampMs,
};

/// Packs a batch's outcomes.
pub fn encode(outcomes: &[Result<Outcome, EvalError>]) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(64 + outcomes.len() * 128));
    w.count(outcomes.len());
    for o in outcomes {
        match o {
            Ok(o) => {
                w.u8(0);
                w.count(o.conditions.len());
                for c in &o.conditions {
                    condition(&mut w, c);
                }
                w.count(o.meters.len());
                for m in &o.meters {
                    w.str(&m.meter);
                    w.f64(m.value);
                }
            }
            Err(e) => {
                let (tag, text) = match e {
                    EvalError::BadPayload(t) => (1, t),
                    EvalError::BadSettings(t) => (2, t),
                    EvalError::BadState(t) => (3, t),
                };
                w.u8(tag);
                w.str(text);
            }
        }
    }
    w.0
}

fn condition(w: &mut Writer, c: &Condition) {
    w.str(&c.code);
    w.u8(u8::from(c.active));
    w.u8(c.severity);
    w.str(&c.summary);
    w.count(c.evidence.len());
    for e in &c.evidence {
        w.0.extend_from_slice(&e.ts_ms.to_le_bytes());
        w.str(&e.field);
        w.f64(e.value);
    }
    match &c.diagnosis {
        None => w.u8(0),
        Some(d) => {
            w.u8(1);
            w.str(&d.probable_cause);
            w.u8(match d.category {
                Category::Hardware => 0,
                Category::Software => 1,
            });
            w.count(d.suggested_parts.len());
            for p in &d.suggested_parts {
                w.str(p);
            }
        }
    }
}

/// Unpacks a batch's outcomes; any malformed input (truncated, a bad tag, a string
/// that is not UTF-8, bytes left over) is an error saying where.
pub fn decode(bytes: &[u8]) -> Result<Vec<Result<Outcome, EvalError>>, String> {
    let mut r = Reader { bytes, at: 0 };
    // Every outcome takes at least 2 bytes, which bounds what a count may reserve.
    let n = r.count(2)?;
    let mut outcomes = Vec::with_capacity(n);
    for _ in 0..n {
        outcomes.push(match r.u8()? {
            0 => {
                let n = r.count(16)?;
                let mut conditions = Vec::with_capacity(n);
                for _ in 0..n {
                    conditions.push(read_condition(&mut r)?);
                }
                let n = r.count(12)?;
                let mut meters = Vec::with_capacity(n);
                for _ in 0..n {
                    meters.push(MeterReading { meter: r.string()?, value: r.f64()? });
                }
                Ok(Outcome { conditions, meters })
            }
            1 => Err(EvalError::BadPayload(r.string()?)),
            2 => Err(EvalError::BadSettings(r.string()?)),
            3 => Err(EvalError::BadState(r.string()?)),
            t => return Err(r.error(&format!("unknown outcome tag {t}"))),
        });
    }
    if r.at != bytes.len() {
        return Err(r.error("bytes after the last outcome"));
    }
    Ok(outcomes)
}

fn read_condition(r: &mut Reader<'_>) -> Result<Condition, String> {
    let code = r.string()?;
    let active = match r.u8()? {
        0 => false,
        1 => true,
        b => return Err(r.error(&format!("`active` is {b}, not 0 or 1"))),
    };
    let severity = r.u8()?;
    let summary = r.string()?;
    let n = r.count(20)?;
    let mut evidence = Vec::with_capacity(n);
    for _ in 0..n {
        let ts_ms: TimestampMs = i64::from_le_bytes(r.array()?);
        evidence.push(Evidence { ts_ms, field: r.string()?, value: r.f64()? });
    }
    let diagnosis = match r.u8()? {
        0 => None,
        1 => {
            let probable_cause = r.string()?;
            let category = match r.u8()? {
                0 => Category::Hardware,
                1 => Category::Software,
                b => return Err(r.error(&format!("unknown category {b}"))),
            };
            let n = r.count(4)?;
            let mut suggested_parts = Vec::with_capacity(n);
            for _ in 0..n {
                suggested_parts.push(r.string()?);
            }
            Some(Diagnosis { probable_cause, category, suggested_parts })
        }
        b => return Err(r.error(&format!("unknown diagnosis tag {b}"))),
    };
    Ok(Condition { code, active, severity, summary, evidence, diagnosis })
}

struct Writer(Vec<u8>);

impl Writer {
    #[inline]
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    /// A length; the guest's lengths fit in `u32` (wasm32 addresses).
    #[inline]
    fn count(&mut self, n: usize) {
        self.0.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }

    #[inline]
    fn str(&mut self, s: &str) {
        self.count(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    #[inline]
    fn f64(&mut self, x: f64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &str) -> String {
        format!("packed outcomes, byte {}: {what}", self.at)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        match self.bytes.get(self.at..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.at += n;
                Ok(s)
            }
            None => Err(self.error(&format!("{n} bytes needed, input ends first"))),
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    fn u32(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    /// A count of items of at least `min_size` bytes each: more than the remaining
    /// input can hold is an error (so a hostile count cannot reserve a huge vector).
    #[inline]
    fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.u32()?;
        let left = self.bytes.len() - self.at;
        if n.saturating_mul(min_size) > left {
            return Err(self.error(&format!("count {n} exceeds the remaining {left} bytes")));
        }
        Ok(n)
    }

    #[inline]
    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    #[inline]
    fn string(&mut self) -> Result<String, String> {
        let n = self.u32()?;
        let s = self.take(n)?;
        match std::str::from_utf8(s) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(self.error(&format!("string is not UTF-8: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Result<Outcome, EvalError>> {
        let mut full = Outcome::default();
        full.conditions.push(
            Condition::active("overheat", 2, "Tank at 95.0 °C (limit 95.0 °C)")
                .evidence(1_784_088_360_000, "temp_tank_c", 95.0)
                .evidence(-5, "ü", f64::NEG_INFINITY)
                .diagnosis(Diagnosis::hardware("Stuck valve", &["valve", "sensor"])),
        );
        full.conditions.push(Condition::inactive("leak"));
        full.conditions.push(
            Condition::active("config", 4, "").diagnosis(Diagnosis::software("Wrong setpoint")),
        );
        full.meter("pump_hours", 12.5);
        vec![
            Ok(full),
            Ok(Outcome::default()),
            Err(EvalError::BadPayload("not JSON: EOF".into())),
            Err(EvalError::BadSettings(String::new())),
            Err(EvalError::BadState("x".into())),
        ]
    }

    #[test]
    fn round_trips() {
        let outcomes = sample();
        assert_eq!(decode(&encode(&outcomes)).unwrap(), outcomes);
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn rejects_every_truncation_and_trailing_bytes() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len} bytes");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).unwrap_err().contains("after the last outcome"));
    }

    #[test]
    fn rejects_bad_tags_utf8_and_huge_counts() {
        // One outcome with tag 7.
        assert!(decode(&[1, 0, 0, 0, 7, 0]).unwrap_err().contains("unknown outcome tag 7"));
        // A bad-payload error whose text is not UTF-8.
        assert!(decode(&[1, 0, 0, 0, 1, 1, 0, 0, 0, 0xff]).unwrap_err().contains("UTF-8"));
        // A count no input could hold.
        assert!(decode(&[0xff, 0xff, 0xff, 0xff]).unwrap_err().contains("exceeds"));
    }
}
