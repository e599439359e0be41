//! The agent's durable state in sled; every sled call of the agent lives here.
//!
//! Trees:
//! - `devices`: device id -> the device's [`DeviceRecord`] (alarm state, meters,
//!   schedules, recent messages) and its plugin's opaque state, in one value (see
//!   [`DeviceEntry`]): one write per changed device and batch.
//! - `plugin_state`: device id -> plugin state, as stores written before the combined
//!   value kept it; read for devices whose value is still in the old (JSON) form.
//! - `outbox`: big-endian sequence -> [`OutboxEntry`] (requests to the central service,
//!   in the order they must be sent).
//! - `dead`: sequence -> [`DeadLetter`] (requests the central service refused for good).
//! - `tickets`: ticket id -> [`TicketRef`] (tickets the agent holds open, for the sync).
//! - `archive`: device id, 0, big-endian sequence -> [`ArchiveEntry`] (the device
//!   archive, oldest first per device).
//!
//! [`Store::commit`] writes a [`Batch`] to all trees in one transaction (a batch that
//! touches devices only is one atomic batch of that tree): plugin state, alarm state
//! and the outbox never diverge. Durability comes from [`Store::flush`],
//! called once per batch (group commit) before the MQTT messages are acknowledged.

pub mod archive;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::alarms::DeviceAlarms;
use crate::maintenance::inspection::PlanState;
use crate::tickets::model::{CloseRequest, NewTicket, TicketEvent};
use crate::vecmap::VecMap;

pub use archive::{ArchiveEntry, ArchiveEvent};

/// How many recent (ts, payload digest) pairs a device remembers to recognise a
/// redelivered message.
pub const RECENT_MESSAGES: usize = 64;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption, full disk ...).
    ///
    /// sled's error is part of the message and deliberately not a `source`: an
    /// error chain would print it twice ("store at DIR: IO error: X: IO error: X").
    #[error("store at {dir}: {error}")]
    Sled {
        /// The data directory.
        dir: String,
        /// sled's error.
        error: sled::Error,
    },
    /// A record could not be decoded.
    #[error("store at {dir}: record `{key}` in `{tree}` is unreadable: {reason}")]
    Corrupt {
        /// The data directory.
        dir: String,
        /// Tree name.
        tree: &'static str,
        /// Key, printable.
        key: String,
        /// Decoder message.
        reason: String,
    },
}

/// What the agent keeps per device besides the plugin's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Alarm episodes and offline tracking.
    pub alarms: DeviceAlarms,
    /// Latest meter values reported by the plugin.
    #[serde(default)]
    pub meters: VecMap<String, f64>,
    /// Recently processed messages (event time, payload digest): a redelivered
    /// message is recognised and changes nothing. Stored as raw bytes beside the
    /// record's JSON (see [`DeviceEntry`]); read from the JSON of older stores.
    #[serde(default, skip_serializing)]
    pub recent: VecDeque<(i64, u64)>,
    /// Open tickets of this device by fault code: (ticket id, episode).
    #[serde(default)]
    pub open_tickets: VecMap<String, (String, u32)>,
    /// Inspection schedules by plan id.
    #[serde(default)]
    pub inspections: VecMap<String, PlanState>,
    /// Out of service (a level-1 fault active or clearing) since then.
    #[serde(default)]
    pub down_since: Option<i64>,
    /// The level-1 faults keeping it out of service.
    #[serde(default)]
    pub down_codes: std::collections::BTreeSet<String>,
    /// Past level-1 periods (start, end) in ms, oldest first: the warranty's downtime
    /// extension.
    #[serde(default)]
    pub downtime: Vec<(i64, i64)>,
}

impl DeviceRecord {
    /// A device seen for the first time at `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        Self {
            alarms: DeviceAlarms::new(start_ms),
            meters: VecMap::new(),
            recent: VecDeque::new(),
            open_tickets: VecMap::new(),
            inspections: VecMap::new(),
            down_since: None,
            down_codes: std::collections::BTreeSet::new(),
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
    pub fn seen_before(&mut self, ts_ms: i64, digest: u64) -> bool {
        if self.recent.contains(&(ts_ms, digest)) {
            return true;
        }
        if self.recent.len() >= RECENT_MESSAGES && self.recent.iter().all(|(t, _)| ts_ms < *t) {
            return true;
        }
        self.recent.push_back((ts_ms, digest));
        while self.recent.len() > RECENT_MESSAGES {
            self.recent.pop_front();
        }
        false
    }
}

/// One request for the central service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// `POST /api/v1/tickets`.
    Open {
        /// The ticket.
        ticket: Box<NewTicket>,
    },
    /// `POST /api/v1/tickets/{ticket_id}/events`.
    Event {
        /// The ticket it belongs to.
        ticket_id: String,
        /// The event.
        event: TicketEvent,
    },
    /// `POST /api/v1/tickets/{ticket_id}/close`: work recorded at the site (an
    /// inspection completed with `tend inspection complete`).
    Close {
        /// The ticket.
        ticket_id: String,
        /// Resolution and time.
        close: CloseRequest,
    },
}

/// A request waiting in the outbox, with the idempotency key it was born with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Idempotency key, stable across retries and restarts.
    pub key: String,
    /// The request.
    pub request: Request,
}

impl OutboxEntry {
    /// The HTTP path, relative to the central service's base URL.
    pub fn path(&self) -> String {
        match &self.request {
            Request::Open { .. } => "/api/v1/tickets".to_owned(),
            Request::Event { ticket_id, .. } => format!("/api/v1/tickets/{ticket_id}/events"),
            Request::Close { ticket_id, .. } => format!("/api/v1/tickets/{ticket_id}/close"),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let v = match &self.request {
            Request::Open { ticket } => serde_json::to_value(ticket),
            Request::Event { event, .. } => serde_json::to_value(event),
            Request::Close { close, .. } => serde_json::to_value(close),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// The ticket the request is about.
    pub fn ticket_id(&self) -> &str {
        match &self.request {
            Request::Open { ticket } => &ticket.ticket_id,
            Request::Event { ticket_id, .. } | Request::Close { ticket_id, .. } => ticket_id,
        }
    }
}

/// A request the central service refused for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The request.
    pub entry: OutboxEntry,
    /// Why (status and the service's message).
    pub reason: String,
    /// When it was given up (ms).
    pub at_ms: i64,
}

/// What kind of thing a ticket is about, for the sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TicketSubject {
    /// A fault episode.
    Fault {
        /// Fault code.
        code: String,
        /// Episode number.
        episode: u32,
    },
    /// An inspection occurrence.
    Inspection {
        /// Plan id.
        plan: String,
    },
    /// The level-3 report of an overdue inspection.
    InspectionOverdue {
        /// Plan id.
        plan: String,
    },
}

/// A ticket the agent holds open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRef {
    /// Device id.
    pub device: String,
    /// What it is about.
    pub subject: TicketSubject,
    /// The central service's number, once known.
    #[serde(default)]
    pub number: Option<String>,
}

/// A device's stored value: its record and its plugin's state.
///
/// Encoding (version 1): `0x01`, the record's JSON length (u32 LE), the record as
/// JSON without `recent`, the number of recent messages (u16 LE) and each as event
/// time (i64 LE) and digest (u64 LE), then `0x00` (no plugin state) or `0x01` and the
/// state bytes to the end. The hot part (`recent`, the state) is copied, not
/// formatted; the JSON part stays readable. A value starting with `{` is the older
/// form: the record as JSON, its plugin state in the `plugin_state` tree.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEntry {
    /// The record.
    pub record: DeviceRecord,
    /// The plugin's state (`None`: the plugin never saved one).
    pub plugin_state: Option<Vec<u8>>,
}

/// Version byte of [`DeviceEntry`]'s encoding.
const DEVICE_V1: u8 = 1;

/// Encodes a device's value (see [`DeviceEntry`]).
pub fn encode_device(
    record: &DeviceRecord,
    plugin_state: Option<&[u8]>,
) -> Result<Vec<u8>, serde_json::Error> {
    let recent = record.recent.len().min(usize::from(u16::MAX));
    let state_len = plugin_state.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(512 + 16 * recent + state_len);
    out.push(DEVICE_V1);
    out.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut out, record)?;
    let json_len = u32::try_from(out.len() - 5).map_err(serde::ser::Error::custom)?;
    out[1..5].copy_from_slice(&json_len.to_le_bytes());
    out.extend_from_slice(&(recent as u16).to_le_bytes());
    for (ts, digest) in record.recent.iter().skip(record.recent.len() - recent) {
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&digest.to_le_bytes());
    }
    match plugin_state {
        Some(state) => {
            out.push(1);
            out.extend_from_slice(state);
        }
        None => out.push(0),
    }
    Ok(out)
}

/// Eight little-endian bytes (`b` has at least 8).
fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Where a decoded device value's plugin state is.
#[derive(Debug, PartialEq)]
enum StateIn {
    /// In the value (current encoding): the state, if the plugin saved one.
    Value(Option<Vec<u8>>),
    /// In the `plugin_state` tree (the older JSON form).
    LegacyTree,
}

/// Decodes a device's value: the record and where its plugin state is.
fn decode_device(v: &[u8]) -> Result<(DeviceRecord, StateIn), String> {
    if v.first() != Some(&DEVICE_V1) {
        let record = serde_json::from_slice(v).map_err(|e| e.to_string())?;
        return Ok((record, StateIn::LegacyTree));
    }
    let short = || "truncated value".to_owned();
    let take = |at: usize, n: usize| v.get(at..at + n).ok_or_else(short);
    let json_len = take(1, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))? as usize;
    let mut record: DeviceRecord =
        serde_json::from_slice(take(5, json_len)?).map_err(|e| e.to_string())?;
    let mut at = 5 + json_len;
    let n = take(at, 2).map(|b| u16::from_le_bytes([b[0], b[1]]))? as usize;
    at += 2;
    let pairs = take(at, 16 * n)?;
    record.recent = pairs.chunks_exact(16).map(|c| (le_u64(c) as i64, le_u64(&c[8..]))).collect();
    at += 16 * n;
    let state = match take(at, 1)?[0] {
        0 => None,
        1 => Some(v[at + 1..].to_vec()),
        b => return Err(format!("bad plugin-state marker {b}")),
    };
    Ok((record, StateIn::Value(state)))
}

/// Everything one batch of messages changed, committed in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Devices whose record or plugin state changed: id and [`encode_device`] value,
    /// each device at most once.
    pub devices: Vec<(String, Vec<u8>)>,
    /// New requests, in order.
    pub outbox: Vec<OutboxEntry>,
    /// Tickets opened (inserted) or ended (`None`: removed).
    pub tickets: Vec<(String, Option<TicketRef>)>,
    /// Archive entries by device, in order.
    pub archive: Vec<(String, ArchiveEntry)>,
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && self.outbox.is_empty()
            && self.tickets.is_empty()
            && self.archive.is_empty()
    }
}

/// The agent's database.
#[derive(Clone)]
pub struct Store {
    dir: String,
    db: sled::Db,
    devices: sled::Tree,
    plugin_state: sled::Tree,
    outbox: sled::Tree,
    dead: sled::Tree,
    tickets: sled::Tree,
    archive: sled::Tree,
}

/// Archive key: device id, a 0 byte, big-endian sequence (device ids have no 0 byte).
fn archive_key(device: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(device.len() + 9);
    k.extend_from_slice(device.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl Store {
    /// Opens (or creates) the database in `dir`, with sled's page cache bounded to
    /// `cache_capacity` bytes (sled's default is 1 GB).
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<Self, StoreError> {
        let name = dir.display().to_string();
        let err = |error| StoreError::Sled { dir: name.clone(), error };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_capacity)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(err)?;
        let tree = |n: &str| db.open_tree(n).map_err(err);
        Ok(Self {
            devices: tree("devices")?,
            plugin_state: tree("plugin_state")?,
            outbox: tree("outbox")?,
            dead: tree("dead")?,
            tickets: tree("tickets")?,
            archive: tree("archive")?,
            db,
            dir: name,
        })
    }

    /// The data directory, as errors name it.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    fn sled_err(&self, source: sled::Error) -> StoreError {
        StoreError::Sled { dir: self.dir.clone(), error: source }
    }

    fn corrupt(&self, tree: &'static str, key: &[u8], reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            dir: self.dir.clone(),
            tree,
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.to_string(),
        }
    }

    /// Every device's record and plugin state (loaded once at start). Devices still
    /// in the older form take their state from the `plugin_state` tree.
    pub fn devices(&self) -> Result<BTreeMap<String, DeviceEntry>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.devices.iter() {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            let (record, state) = decode_device(&v).map_err(|e| self.corrupt("devices", &k, e))?;
            let plugin_state = match state {
                StateIn::Value(state) => state,
                StateIn::LegacyTree => {
                    self.plugin_state.get(&k).map_err(|e| self.sled_err(e))?.map(|v| v.to_vec())
                }
            };
            out.insert(
                String::from_utf8_lossy(&k).into_owned(),
                DeviceEntry { record, plugin_state },
            );
        }
        Ok(out)
    }

    /// Writes a batch atomically (not yet durable: see [`Store::flush`]).
    /// Outbox entries get increasing sequence numbers in batch order.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        if batch.outbox.is_empty() && batch.tickets.is_empty() && batch.archive.is_empty() {
            // One tree: its atomic batch, cheaper than a transaction.
            let mut b = sled::Batch::default();
            for (id, v) in &batch.devices {
                b.insert(id.as_bytes(), v.as_slice());
            }
            return self.devices.apply_batch(b).map_err(|e| self.sled_err(e));
        }
        let mut outbox = Vec::with_capacity(batch.outbox.len());
        for entry in &batch.outbox {
            let seq = self.db.generate_id().map_err(|e| self.sled_err(e))?;
            let bytes = serde_json::to_vec(entry)
                .map_err(|e| self.corrupt("outbox", entry.key.as_bytes(), e))?;
            outbox.push((seq.to_be_bytes(), bytes));
        }
        let mut tickets = Vec::with_capacity(batch.tickets.len());
        for (id, t) in &batch.tickets {
            let bytes = match t {
                Some(t) => Some(
                    serde_json::to_vec(t).map_err(|e| self.corrupt("tickets", id.as_bytes(), e))?,
                ),
                None => None,
            };
            tickets.push((id.as_bytes(), bytes));
        }
        let mut archive = Vec::with_capacity(batch.archive.len());
        for (device, entry) in &batch.archive {
            let seq = self.db.generate_id().map_err(|e| self.sled_err(e))?;
            let bytes = serde_json::to_vec(entry)
                .map_err(|e| self.corrupt("archive", device.as_bytes(), e))?;
            archive.push((archive_key(device, seq), bytes));
        }
        let trees = (&self.devices, &self.outbox, &self.tickets, &self.archive);
        let result = trees.transaction(|(d, o, t, a)| {
            for (k, v) in &batch.devices {
                d.insert(k.as_bytes(), v.as_slice())?;
            }
            for (k, v) in &outbox {
                o.insert(k, v.as_slice())?;
            }
            for (k, v) in &tickets {
                match v {
                    Some(v) => t.insert(*k, v.as_slice())?,
                    None => t.remove(*k)?,
                };
            }
            for (k, v) in &archive {
                a.insert(k.as_slice(), v.as_slice())?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(self.sled_err(e)),
            Err(TransactionError::Abort(())) => Err(self.sled_err(sled::Error::ReportableBug(
                "transaction aborted without a reason".into(),
            ))),
        }
    }

    /// Makes everything committed so far durable (fsync). Blocking: call it from a
    /// blocking thread. (sled 0.34's `flush_async` can hang with several databases in
    /// one process, spacejam/sled#1241, so it is not used.)
    pub fn flush(&self) -> Result<usize, StoreError> {
        self.db.flush().map_err(|e| self.sled_err(e))
    }

    /// The oldest `limit` outbox entries, in order, with their sequence numbers.
    pub fn outbox(&self, limit: usize) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        let mut out = Vec::new();
        for item in self.outbox.iter().take(limit) {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            let seq = k
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| self.corrupt("outbox", &k, "bad key"))?;
            let entry = serde_json::from_slice(&v).map_err(|e| self.corrupt("outbox", &k, e))?;
            out.push((seq, entry));
        }
        Ok(out)
    }

    /// Number of requests waiting.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Removes a delivered request and records the ticket's number, durably.
    pub fn delivered(
        &self,
        seq: u64,
        ticket_id: &str,
        number: Option<&str>,
    ) -> Result<(), StoreError> {
        self.outbox.remove(seq.to_be_bytes()).map_err(|e| self.sled_err(e))?;
        if let Some(number) = number
            && let Some(v) = self.tickets.get(ticket_id.as_bytes()).map_err(|e| self.sled_err(e))?
        {
            let mut t: TicketRef = serde_json::from_slice(&v)
                .map_err(|e| self.corrupt("tickets", ticket_id.as_bytes(), e))?;
            if t.number.as_deref() != Some(number) {
                t.number = Some(number.to_owned());
                let bytes = serde_json::to_vec(&t)
                    .map_err(|e| self.corrupt("tickets", ticket_id.as_bytes(), e))?;
                self.tickets.insert(ticket_id.as_bytes(), bytes).map_err(|e| self.sled_err(e))?;
            }
        }
        self.flush().map(|_| ())
    }

    /// Moves a refused request to the dead-letter tree, durably.
    pub fn dead_letter(&self, seq: u64, letter: &DeadLetter) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(letter)
            .map_err(|e| self.corrupt("dead", letter.entry.key.as_bytes(), e))?;
        let key = seq.to_be_bytes();
        let r = (&self.outbox, &self.dead).transaction(|(o, d)| {
            o.remove(&key)?;
            d.insert(&key, bytes.as_slice())?;
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        match r {
            Ok(()) => self.flush().map(|_| ()),
            Err(TransactionError::Storage(e)) => Err(self.sled_err(e)),
            Err(TransactionError::Abort(())) => {
                Err(self.sled_err(sled::Error::ReportableBug("dead-letter aborted".into())))
            }
        }
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let mut out = Vec::new();
        for item in self.dead.iter() {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            out.push(serde_json::from_slice(&v).map_err(|e| self.corrupt("dead", &k, e))?);
        }
        Ok(out)
    }

    /// Tickets the agent holds open, by ticket id.
    pub fn open_tickets(&self) -> Result<BTreeMap<String, TicketRef>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.tickets.iter() {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            let t = serde_json::from_slice(&v).map_err(|e| self.corrupt("tickets", &k, e))?;
            out.insert(String::from_utf8_lossy(&k).into_owned(), t);
        }
        Ok(out)
    }

    /// A device's archive, oldest first.
    pub fn archive(&self, device: &str) -> Result<Vec<ArchiveEntry>, StoreError> {
        let mut prefix = device.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.archive.scan_prefix(&prefix) {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            out.push(serde_json::from_slice(&v).map_err(|e| self.corrupt("archive", &k, e))?);
        }
        Ok(out)
    }

    /// Bytes on disk (sled's estimate).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(|e| self.sled_err(e))
    }
}

/// A stable 64-bit digest of a payload (first 8 bytes of its sha256).
pub fn digest(payload: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(payload);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::model::{EventKind, WireTime};

    fn event(n: u32) -> OutboxEntry {
        OutboxEntry {
            key: format!("k{n}"),
            request: Request::Event {
                ticket_id: "t1".into(),
                event: TicketEvent {
                    kind: EventKind::Recurred { count: n },
                    at: WireTime::parse("2026-11-22T10:00:00+08:00").unwrap(),
                    note: None,
                },
            },
        }
    }

    #[test]
    fn a_batch_is_committed_together_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 8 << 20).unwrap();
            let mut batch = Batch::default();
            let mut rec = DeviceRecord::new(0);
            assert!(!rec.seen_before(1, 42));
            assert!(rec.seen_before(1, 42));
            rec.meters.insert("door_cycles".into(), 12.0);
            let value = encode_device(&rec, Some(b"{\"x\":1}")).unwrap();
            batch.devices.push(("d1".into(), value));
            batch.outbox = vec![event(1), event(2), event(3)];
            batch.tickets.push((
                "t1".into(),
                Some(TicketRef {
                    device: "d1".into(),
                    subject: TicketSubject::Fault { code: "tamper".into(), episode: 1 },
                    number: None,
                }),
            ));
            store.commit(&batch).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path(), 8 << 20).unwrap();
        let devices = store.devices().unwrap();
        assert_eq!(devices["d1"].record.meters.get("door_cycles"), Some(&12.0));
        assert!(devices["d1"].record.recent.contains(&(1, 42)));
        assert_eq!(devices["d1"].plugin_state.as_deref(), Some(&b"{\"x\":1}"[..]));
        let pending = store.outbox(10).unwrap();
        let keys: Vec<&str> = pending.iter().map(|(_, e)| e.key.as_str()).collect();
        assert_eq!(keys, ["k1", "k2", "k3"]);
        store.delivered(pending[0].0, "t1", Some("T-000001")).unwrap();
        assert_eq!(store.open_tickets().unwrap()["t1"].number.as_deref(), Some("T-000001"));
        let letter =
            DeadLetter { entry: pending[1].1.clone(), reason: "422: bad".into(), at_ms: 5 };
        store.dead_letter(pending[1].0, &letter).unwrap();
        let keys: Vec<String> = store.outbox(10).unwrap().into_iter().map(|(_, e)| e.key).collect();
        assert_eq!(keys, ["k3"]);
        assert_eq!(store.dead_letters().unwrap(), vec![letter]);
    }

    #[test]
    fn a_device_value_round_trips_with_and_without_plugin_state() {
        let mut rec = DeviceRecord::new(7);
        for i in 0..70 {
            rec.seen_before(i * 1000 - 5, u64::MAX - i as u64);
        }
        rec.meters.insert("lamp_hours".into(), 1.5);
        for state in [None, Some(&b""[..]), Some(&b"\x00\x01binary"[..])] {
            let v = encode_device(&rec, state).unwrap();
            let (back, s) = decode_device(&v).unwrap();
            assert_eq!(back, rec);
            assert_eq!(s, StateIn::Value(state.map(<[u8]>::to_vec)));
        }
    }

    #[test]
    fn a_truncated_device_value_is_an_error_not_a_panic() {
        let mut rec = DeviceRecord::new(7);
        rec.seen_before(1, 2);
        let v = encode_device(&rec, Some(b"abc")).unwrap();
        let cut = v.len() - 4; // inside the state marker and the recent pairs
        for n in 1..cut {
            assert!(decode_device(&v[..n]).is_err(), "{n} bytes accepted");
        }
    }

    /// Stores written before the combined value: the record as JSON (with `recent`),
    /// the plugin state in its own tree. They still load, and a rewrite moves on.
    #[test]
    fn a_store_with_json_device_records_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 8 << 20).unwrap();
        let legacy = r#"{"alarms":{"now":5,"last_seen":5,"offline_since":null,"codes":{}},
            "meters":{"door_cycles":3.0},"recent":[[5,99]],"open_tickets":{}}"#;
        store.devices.insert("d1", legacy.as_bytes()).unwrap();
        store.plugin_state.insert("d1", &b"{\"n\":1}"[..]).unwrap();
        store.devices.insert("d2", legacy.as_bytes()).unwrap();
        let loaded = store.devices().unwrap();
        assert_eq!(loaded["d1"].record.recent, VecDeque::from([(5, 99)]));
        assert_eq!(loaded["d1"].record.meters.get("door_cycles"), Some(&3.0));
        assert_eq!(loaded["d1"].plugin_state.as_deref(), Some(&b"{\"n\":1}"[..]));
        assert_eq!(loaded["d2"].plugin_state, None);
        // Rewritten in the current form, the value carries its own (newer) state.
        let mut batch = Batch::default();
        batch
            .devices
            .push(("d1".into(), encode_device(&loaded["d1"].record, Some(b"new")).unwrap()));
        store.commit(&batch).unwrap();
        let loaded = store.devices().unwrap();
        assert_eq!(loaded["d1"].plugin_state.as_deref(), Some(&b"new"[..]));
        assert_eq!(loaded["d1"].record.recent, VecDeque::from([(5, 99)]));
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
            assert!(!rec.seen_before(i * 1000, i as u64));
        }
        // A broker back from old persistence sends everything again, in order.
        for i in 0..n {
            assert!(rec.seen_before(i * 1000, i as u64), "message {i} judged twice");
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
