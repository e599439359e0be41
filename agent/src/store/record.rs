//! A device's stored value: its [`DeviceRecord`] (alarm state, meters, schedules,
//! the redelivery window) and its plugin's opaque state, in one compact binary value.
//!
//! Encoding: a format byte ([`DEVICE_FORMAT`]), then [postcard] of
//! ([`DeviceRecord`], plugin state). postcard writes integers as varints and strings
//! and byte strings with a length prefix: no field names, no JSON. The redelivery
//! window is written as event-time deltas (zigzag varints) and 32-bit digests,
//! about 6 bytes a message instead of 16. A value whose format byte is not
//! [`DEVICE_FORMAT`] is refused with an error naming the key; the store's format
//! marker (see [`super::Store::open`]) keeps an older store from being read at all.

use std::collections::BTreeSet;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alarms::DeviceAlarms;
use crate::maintenance::inspection::PlanState;
use crate::vecmap::VecMap;

/// How many recent (ts, payload digest) pairs a device remembers to recognise a
/// redelivered message.
pub const RECENT_MESSAGES: usize = 64;

/// Format byte of a device value (bumped whenever [`DeviceRecord`]'s shape changes;
/// nothing is migrated: see [`super::STORE_FORMAT`]).
pub const DEVICE_FORMAT: u8 = 2;

/// The redelivery window: the last [`RECENT_MESSAGES`] (event time ms, digest) pairs
/// of a device, oldest first, kept in memory as written to disk: the count (varint),
/// then per pair the event time as a zigzag varint delta from the previous one (the
/// first from 0) and the digest (4 bytes LE). About 6 bytes a pair instead of 16, for
/// ten thousand devices with a full window each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recent(Vec<u8>);

impl Recent {
    /// The pairs, oldest first.
    pub fn pairs(&self) -> Vec<(i64, u32)> {
        decode_pairs(&self.0).unwrap_or_default()
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        let mut at = 0;
        get_varint(&self.0, &mut at).map_or(0, |n| n as usize)
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if this pair is remembered.
    pub fn contains(&self, pair: &(i64, u32)) -> bool {
        self.pairs().contains(pair)
    }

    fn set(&mut self, pairs: &[(i64, u32)]) {
        self.0 = encode_pairs(pairs);
    }
}

fn encode_pairs(pairs: &[(i64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 7 * pairs.len());
    put_varint(&mut out, pairs.len() as u64);
    let mut prev = 0i64;
    for &(ts, digest) in pairs {
        let delta = ts.wrapping_sub(prev);
        put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
        out.extend_from_slice(&digest.to_le_bytes());
        prev = ts;
    }
    out.shrink_to_fit();
    out
}

fn decode_pairs(bytes: &[u8]) -> Result<Vec<(i64, u32)>, &'static str> {
    // A device that has not sent a message yet: no bytes at all.
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut at = 0;
    let n = get_varint(bytes, &mut at).ok_or("recent: count")?;
    if n > RECENT_MESSAGES as u64 {
        return Err("recent: too many pairs");
    }
    let mut out = Vec::with_capacity(n as usize + 1);
    let mut prev = 0i64;
    for _ in 0..n {
        let z = get_varint(bytes, &mut at).ok_or("recent: ts")?;
        let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let ts = prev.wrapping_add(delta);
        let digest = bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("recent: digest")?;
        at += 4;
        out.push((ts, digest));
        prev = ts;
    }
    if at != bytes.len() {
        return Err("recent: trailing bytes");
    }
    Ok(out)
}

impl Serialize for Recent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Recent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: &[u8] = serde_bytes_borrowed(d)?;
        // Checked once here, so the window in memory always decodes.
        decode_pairs(bytes).map_err(D::Error::custom)?;
        Ok(Self(bytes.to_vec()))
    }
}

/// Borrows a byte string from the deserializer.
fn serde_bytes_borrowed<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = &'de [u8];
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
            Ok(v)
        }
    }
    d.deserialize_bytes(V)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// What the agent keeps per device besides the plugin's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Alarm episodes and offline tracking.
    pub alarms: DeviceAlarms,
    /// Latest meter values reported by the plugin.
    pub meters: VecMap<String, f64>,
    /// Recently processed messages (event time, payload digest): a redelivered
    /// message is recognised and changes nothing.
    pub recent: Recent,
    /// Open tickets of this device by fault code: (ticket id, episode).
    pub open_tickets: VecMap<String, (String, u32)>,
    /// Inspection schedules by plan id.
    pub inspections: VecMap<String, PlanState>,
    /// Out of service (a level-1 fault active or clearing) since then.
    pub down_since: Option<i64>,
    /// The level-1 faults keeping it out of service.
    pub down_codes: BTreeSet<String>,
    /// Past level-1 periods (start, end) in ms, oldest first: the warranty's downtime
    /// extension.
    pub downtime: Vec<(i64, i64)>,
}

impl DeviceRecord {
    /// A device seen for the first time at `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        Self {
            alarms: DeviceAlarms::new(start_ms),
            meters: VecMap::new(),
            recent: Recent::default(),
            open_tickets: VecMap::new(),
            inspections: VecMap::new(),
            down_since: None,
            down_codes: BTreeSet::new(),
            downtime: Vec::new(),
        }
    }

    /// Level-1 periods up to `at`: the past ones and the current one, if any.
    pub fn downtime_until(&self, at: i64) -> Vec<(i64, i64)> {
        let mut out = self.downtime.clone();
        if let Some(since) = self.down_since {
            out.push((since, at.max(since)));
        }
        out
    }

    /// True if this (ts, digest) was processed already, or is older than every
    /// message remembered once the memory is full; otherwise remembers it.
    ///
    /// Older than the horizon, a redelivery cannot be told from a new message: a
    /// broker restored from stale persistence (Mosquitto saves every 30 min by
    /// default, then loses what it acked since on a crash) sends every device's
    /// last hours again, and judging them again would raise faults that already
    /// recovered (a false `recurred`, a second ticket). A maintenance engineer wants
    /// them ignored; a reading that late says nothing about the device now anyway.
    ///
    /// Only times the agent believes may enter: a device whose clock ran a day ahead
    /// for [`RECENT_MESSAGES`] readings would fill the memory with times none of its
    /// later, correct readings can pass, and they would all be taken for
    /// redeliveries. The live pipeline refuses a `ts` too far ahead of its arrival
    /// before it gets here (`ingest.max_clock_skew`, `pipeline::Clock::Live`).
    pub fn seen_before(&mut self, ts_ms: i64, digest: u32) -> bool {
        let mut recent = self.recent.pairs();
        if recent.contains(&(ts_ms, digest)) {
            return true;
        }
        if recent.len() >= RECENT_MESSAGES && recent.iter().all(|(t, _)| ts_ms < *t) {
            return true;
        }
        recent.push((ts_ms, digest));
        let skip = recent.len().saturating_sub(RECENT_MESSAGES);
        self.recent.set(&recent[skip..]);
        false
    }
}

/// A device's stored value, decoded: its record and its plugin's state.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEntry {
    /// The record.
    pub record: DeviceRecord,
    /// The plugin's state (`None`: the plugin never saved one).
    pub plugin_state: Option<Vec<u8>>,
}

/// The value as written: borrowed, so encoding copies nothing first.
#[derive(Serialize)]
struct EntryRef<'a> {
    record: &'a DeviceRecord,
    #[serde(with = "opt_bytes")]
    plugin_state: Option<&'a [u8]>,
}

#[derive(Deserialize)]
struct EntryOwned {
    record: DeviceRecord,
    #[serde(deserialize_with = "opt_bytes::de")]
    plugin_state: Option<Vec<u8>>,
}

/// Plugin state as a byte string (not a sequence of numbers).
mod opt_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&Bytes(b)),
            None => s.serialize_none(),
        }
    }

    struct Bytes<'a>(&'a [u8]);
    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Option<Vec<u8>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("optional bytes")
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                struct B;
                impl<'de> serde::de::Visitor<'de> for B {
                    type Value = Vec<u8>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                        Ok(v.to_vec())
                    }
                }
                d.deserialize_bytes(B).map(Some)
            }
        }
        d.deserialize_option(V)
    }
}

/// Encodes a device's value (see the module docs).
pub fn encode_device(
    record: &DeviceRecord,
    plugin_state: Option<&[u8]>,
) -> Result<Vec<u8>, postcard::Error> {
    let state_len = plugin_state.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(256 + 6 * record.recent.len() + state_len);
    out.push(DEVICE_FORMAT);
    postcard::to_io(&EntryRef { record, plugin_state }, &mut out)?;
    Ok(out)
}

/// Decodes a device's value.
pub fn decode_device(v: &[u8]) -> Result<DeviceEntry, String> {
    match v.split_first() {
        Some((&DEVICE_FORMAT, rest)) => {
            let (e, left): (EntryOwned, _) =
                postcard::take_from_bytes(rest).map_err(|e| e.to_string())?;
            if !left.is_empty() {
                return Err(format!("{} trailing bytes", left.len()));
            }
            Ok(DeviceEntry { record: e.record, plugin_state: e.plugin_state })
        }
        Some((b, _)) => Err(format!("format {b}, this version reads {DEVICE_FORMAT}")),
        None => Err("empty value".to_owned()),
    }
}

/// A stable 32-bit digest of a payload (first 4 bytes of its sha256): with the event
/// time, what tells a redelivery from a new message.
pub fn digest(payload: &[u8]) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(payload);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_value_round_trips_with_and_without_plugin_state() {
        let mut rec = DeviceRecord::new(7);
        for i in 0..70 {
            rec.seen_before(i * 1000 - 5, u32::MAX - i as u32);
        }
        // Out of order and far apart: deltas of both signs.
        rec.seen_before(i64::MAX / 4, 1);
        rec.seen_before(5_000, 2);
        rec.meters.insert("lamp_hours".into(), 1.5);
        rec.open_tickets.insert("tamper".into(), ("site.d1.tamper.1".into(), 1));
        rec.downtime.push((1, 2));
        for state in [None, Some(&b""[..]), Some(&b"\x00\x01binary"[..])] {
            let v = encode_device(&rec, state).unwrap();
            let back = decode_device(&v).unwrap();
            assert_eq!(back.record, rec);
            assert_eq!(back.plugin_state, state.map(<[u8]>::to_vec));
        }
    }

    /// The bench's second start found it: a device that had not sent a message yet
    /// (an empty window) was written in a form that did not read back.
    #[test]
    fn a_device_that_never_sent_a_message_reads_back() {
        let rec = DeviceRecord::new(5);
        let back = decode_device(&encode_device(&rec, None).unwrap()).unwrap();
        assert_eq!(back.record, rec);
        assert!(back.record.recent.is_empty());
        let mut rec = back.record;
        assert!(!rec.seen_before(9, 1));
        assert_eq!(rec.recent.pairs(), [(9, 1)]);
    }

    #[test]
    fn the_redelivery_window_takes_about_six_bytes_a_message() {
        let mut rec = DeviceRecord::new(0);
        let t0 = 1_784_088_360_000;
        for i in 0..RECENT_MESSAGES as i64 {
            rec.seen_before(t0 + i * 60_000, digest(&i.to_le_bytes()));
        }
        let empty = encode_device(&DeviceRecord::new(0), None).unwrap().len();
        let full = encode_device(&rec, None).unwrap().len();
        let per_message = (full - empty) as f64 / RECENT_MESSAGES as f64;
        assert!(per_message <= 7.5, "{per_message} bytes a message");
    }

    #[test]
    fn a_truncated_or_foreign_device_value_is_an_error_not_a_panic() {
        let mut rec = DeviceRecord::new(7);
        rec.seen_before(1, 2);
        rec.meters.insert("m".into(), 2.0);
        let v = encode_device(&rec, Some(b"abc")).unwrap();
        for n in 0..v.len() {
            assert!(decode_device(&v[..n]).is_err(), "{n} bytes accepted");
        }
        let mut longer = v.clone();
        longer.push(0);
        assert!(decode_device(&longer).is_err());
        // A value of an earlier version (JSON, or the first binary form).
        let err = decode_device(br#"{"alarms":{}}"#).unwrap_err();
        assert!(err.contains("format 123"), "{err}");
        assert!(decode_device(&[1, 0, 0, 0, 0]).unwrap_err().contains("format 1"));
    }

    #[test]
    fn recent_messages_are_bounded() {
        let mut rec = DeviceRecord::new(0);
        for i in 0..(RECENT_MESSAGES as i64 + 10) {
            assert!(!rec.seen_before(i, 7));
        }
        assert_eq!(rec.recent.len(), RECENT_MESSAGES);
        // The oldest were forgotten; anything that old counts as seen.
        assert!(rec.seen_before(0, 7));
        assert!(rec.seen_before(9, 8));
        assert_eq!(rec.recent.len(), RECENT_MESSAGES);
    }

    #[test]
    fn stale_redelivery_beyond_the_recent_window_is_recognised() {
        let mut rec = DeviceRecord::new(0);
        let n = RECENT_MESSAGES as i64 * 3;
        for i in 0..n {
            assert!(!rec.seen_before(i * 1000, i as u32));
        }
        // A broker back from old persistence sends everything again, in order.
        for i in 0..n {
            assert!(rec.seen_before(i * 1000, i as u32), "message {i} judged twice");
        }
        // New messages, and late ones inside the window, still count.
        assert!(!rec.seen_before(n * 1000, 1));
        assert!(!rec.seen_before((n - 2) * 1000 + 1, 2));
    }

    #[test]
    fn a_device_with_few_messages_keeps_late_ones() {
        // Until the memory is full it holds the device's whole history: an older
        // message not in it is new.
        let mut rec = DeviceRecord::new(0);
        assert!(!rec.seen_before(5000, 1));
        assert!(!rec.seen_before(1000, 2));
    }
}
