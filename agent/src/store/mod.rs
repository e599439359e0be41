//! The agent's durable state in sled; every sled call of the agent lives here.
//!
//! Trees:
//! - `devices`: device id -> [`DeviceRecord`] (alarm state, meters, recent messages).
//! - `plugin_state`: device id -> the plugin's opaque state bytes.
//! - `outbox`: big-endian sequence -> [`OutboxEntry`] (requests to the central service,
//!   in the order they must be sent).
//! - `dead`: sequence -> [`DeadLetter`] (requests the central service refused for good).
//! - `tickets`: ticket id -> [`TicketRef`] (tickets the agent holds open, for the sync).
//! - `archive`: device id, 0, big-endian sequence -> [`ArchiveEntry`] (the device
//!   archive, oldest first per device).
//!
//! [`Store::commit`] writes a [`Batch`] to all trees in one transaction: plugin state,
//! alarm state and the outbox never diverge. Durability comes from [`Store::flush`],
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
    pub meters: BTreeMap<String, f64>,
    /// Recently processed messages (event time, payload digest): a redelivered
    /// message is recognised and changes nothing.
    #[serde(default)]
    pub recent: VecDeque<(i64, u64)>,
    /// Open tickets of this device by fault code: (ticket id, episode).
    #[serde(default)]
    pub open_tickets: BTreeMap<String, (String, u32)>,
    /// Inspection schedules by plan id.
    #[serde(default)]
    pub inspections: BTreeMap<String, PlanState>,
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
            meters: BTreeMap::new(),
            recent: VecDeque::new(),
            open_tickets: BTreeMap::new(),
            inspections: BTreeMap::new(),
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

/// Everything one batch of messages changed, committed in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Devices whose record changed.
    pub devices: BTreeMap<String, DeviceRecord>,
    /// Devices whose plugin state changed.
    pub plugin_states: BTreeMap<String, Vec<u8>>,
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
            && self.plugin_states.is_empty()
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

    /// Every device record (loaded once at start).
    pub fn devices(&self) -> Result<BTreeMap<String, DeviceRecord>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.devices.iter() {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            let rec: DeviceRecord =
                serde_json::from_slice(&v).map_err(|e| self.corrupt("devices", &k, e))?;
            out.insert(String::from_utf8_lossy(&k).into_owned(), rec);
        }
        Ok(out)
    }

    /// Every device's plugin state.
    pub fn plugin_states(&self) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.plugin_state.iter() {
            let (k, v) = item.map_err(|e| self.sled_err(e))?;
            out.insert(String::from_utf8_lossy(&k).into_owned(), v.to_vec());
        }
        Ok(out)
    }

    /// Writes a batch atomically (not yet durable: see [`Store::flush`]).
    /// Outbox entries get increasing sequence numbers in batch order.
    pub fn commit(&self, batch: &Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut devices = Vec::with_capacity(batch.devices.len());
        for (id, rec) in &batch.devices {
            let bytes =
                serde_json::to_vec(rec).map_err(|e| self.corrupt("devices", id.as_bytes(), e))?;
            devices.push((id.as_bytes(), bytes));
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
        let trees = (&self.devices, &self.plugin_state, &self.outbox, &self.tickets, &self.archive);
        let result = trees.transaction(|(d, s, o, t, a)| {
            for (k, v) in &devices {
                d.insert(*k, v.as_slice())?;
            }
            for (k, v) in &batch.plugin_states {
                s.insert(k.as_bytes(), v.as_slice())?;
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
            batch.devices.insert("d1".into(), rec);
            batch.plugin_states.insert("d1".into(), b"{\"x\":1}".to_vec());
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
        assert_eq!(devices["d1"].meters["door_cycles"], 12.0);
        assert!(devices["d1"].recent.contains(&(1, 42)));
        assert_eq!(store.plugin_states().unwrap()["d1"], b"{\"x\":1}".to_vec());
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
