//! The agent's durable state, in [fjall] (an LSM tree: a commit is one journal append
//! and a memtable insert); every storage call of the agent lives here.
//!
//! # Keyspaces
//! - `devices`: device id -> its [`DeviceRecord`] and its plugin's opaque state in one
//!   compact binary value ([`record`]): one write per changed device and batch.
//! - `outbox`: big-endian sequence -> [`OutboxEntry`] (JSON: the request as it will be
//!   sent), in the order the requests must go out.
//! - `dead`: sequence -> [`DeadLetter`] (requests the central service refused for good).
//! - `tickets`: ticket id -> [`TicketRef`] (tickets the agent holds open, for the sync).
//! - `archive`: device id, 0, big-endian sequence -> [`ArchiveEntry`]: append-only,
//!   oldest first per device.
//! - `meta`: the store's format ([`STORE_FORMAT`]), the next sequence number and the
//!   site-wide alarm state ([`Batch::site`]: outages, maintenance windows).
//!
//! # Durability
//! [`Store::commit`] writes a [`Batch`] (devices, outbox, tickets, archive and the
//! sequence counter) as one fjall write batch: one journal record, applied atomically
//! or not at all after a crash, so plugin state, alarm state and the outbox never
//! diverge. It reaches the kernel (a `write` to the journal) but is not yet durable.
//! [`Store::flush`] makes everything committed so far durable with one `fdatasync`
//! of the journal (`PersistMode::SyncData`); the live agent calls it once per group
//! commit and acknowledges the batch's MQTT messages only after it returned. So:
//! - a power cut before `flush` returned loses that batch (and possibly batches
//!   committed before it) as a whole, and nothing of it was acknowledged: the broker
//!   delivers those messages again;
//! - a power cut after `flush` returned loses nothing that was acknowledged;
//! - a failed `fdatasync` (full or failing disk) poisons the database: every later
//!   write fails and the agent stops with the store's directory and the OS's reason;
//!   a restart recovers from the journal (fjall checks every batch's checksum and
//!   drops a torn tail);
//! - [`Store::delivered`] and [`Store::dead_letter`] are not synced on their own: a
//!   power cut may undo one, and the request is then sent again under the same
//!   idempotency key, which the central service answers with the same ticket. The
//!   next group commit's `fdatasync` covers them (one journal).
//!
//! Replay ([`Store::scratch`]) never syncs: nothing is acknowledged there.
//!
//! # Why fjall
//! sled 0.34, the first store, deadlocked under load (spacejam/sled#1412: most long
//! replays hung for good), synced with `sync_file_range` (not durable on Linux) and
//! has had no release since 2021. fjall and redb were measured on the agent's own
//! write pattern (`cargo run --release -p tend-store-engines`: a group commit of N
//! changed device records plus outbox and archive appends, then a sync, N from 1 to
//! 1,000, over 10,000 devices):
//!
//! | N records / commit | fjall commits/s (p50 / p99 ms) | redb commits/s (p50 / p99 ms) | bytes written / inserted, fjall : redb |
//! |---:|---:|---:|---:|
//! | 1 | 10,942 (0.08 / 0.17) | 4,628 (0.20 / 0.33) | 15 : 106 |
//! | 10 | 5,142 (0.18 / 0.30) | 2,615 (0.37 / 0.52) | 2.8 : 26 |
//! | 100 | 2,339 (0.31 / 3.6) | 726 (1.4 / 1.7) | 2.0 : 15 |
//! | 1,000 | 449 (1.5 / 9.2) | 128 (7.8 / 10.0) | 1.9 : 8.9 |
//!
//! Both sync with exactly one `fdatasync` per commit (strace). fjall commits 2-3.5x
//! as often and writes 5-9x fewer bytes per commit from N = 10 (flash wear on a site
//! box's eMMC), because a commit appends to its journal where redb rewrites every
//! B-tree page on the path (about 690 pages of 4 KiB at N = 1,000). redb is smaller on
//! disk and in memory (one file; 9-14 MiB RSS against fjall's 16-28 MiB) with a
//! tighter tail; fjall's journal files are created at 64 MiB (sparse) and its p99
//! rises while compaction runs. Load and scan of 10,000 devices take milliseconds on
//! both. fjall's throughput and wear decide it; its memtables are kept small here
//! (`max_write_buffer_size` is a no-op in fjall 3.1) and [`Store::flush`] releases
//! old journals (see there).

pub mod archive;
pub mod record;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};

pub use tend_wire::{OutboxEntry, Request};

pub use archive::{ArchiveEntry, ArchiveEvent};
pub use record::{
    DeviceEntry, DeviceRecord, RECENT_MESSAGES, Recent, decode_device, digest, encode_device,
};

/// The store's on-disk format, kept in `meta`. An agent refuses a store of another
/// format with an error saying what to do (nothing is migrated).
pub const STORE_FORMAT: u64 = 2;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed (I/O, full disk, corruption ...).
    #[error("store at {dir}: {message}")]
    Engine {
        /// The data directory.
        dir: String,
        /// What failed and the OS's reason.
        message: String,
    },
    /// A record could not be decoded.
    #[error("store at {dir}: record `{key}` in `{tree}` is unreadable: {reason}")]
    Corrupt {
        /// The data directory.
        dir: String,
        /// Keyspace name.
        tree: &'static str,
        /// Key, printable.
        key: String,
        /// Decoder message.
        reason: String,
    },
    /// The directory holds a store this version does not read.
    #[error(
        "store at {dir}: {found}; this version of tend keeps its store in format \
         {STORE_FORMAT} and does not convert older ones: stop the agent, move the \
         directory aside (or delete it: open tickets stay at the central service) and \
         start again"
    )]
    Format {
        /// The data directory.
        dir: String,
        /// What was found there.
        found: String,
    },
}

/// A batch written by [`Store::commit`], not yet durable. Only [`Store::sync`] turns
/// it into a [`Durable`] proof.
#[must_use = "a committed batch is not durable until its receipt is synced"]
#[derive(Debug)]
pub struct Committed {
    _sealed: (),
}

/// Proof that everything committed before it was made durable: an MQTT ack or an
/// answer to site staff needs one (`AckToken::ack`, `local::Reply::send`), so the
/// agent cannot acknowledge what a power cut could still take back. Only
/// [`Store::sync`] makes one; it is neither `Clone` nor `Copy`.
#[derive(Debug)]
pub struct Durable {
    _sealed: (),
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
    /// The central service took the ticket (its number may still be unknown: a
    /// service whose answer could not be read).
    #[serde(default)]
    pub delivered: bool,
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
    /// The site-wide alarm state (outages, maintenance windows) when it changed: the
    /// pipeline's encoding, kept in `meta`.
    pub site: Option<Vec<u8>>,
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && self.outbox.is_empty()
            && self.tickets.is_empty()
            && self.archive.is_empty()
            && self.site.is_none()
    }
}

/// The agent's database. Clones share it.
#[derive(Clone)]
pub struct Store {
    dir: String,
    db: Database,
    devices: Keyspace,
    outbox: Keyspace,
    dead: Keyspace,
    tickets: Keyspace,
    archive: Keyspace,
    meta: Keyspace,
    /// The next sequence number (outbox and archive keys). The lock also serialises
    /// the store's read-modify-write calls with commits.
    seq: Arc<Mutex<u64>>,
    /// Whether [`Store::flush`] syncs (not for replay's scratch store).
    durable: bool,
    /// Journal files seen at the last [`Store::release_journals`].
    journals_seen: Arc<AtomicUsize>,
    /// Requests in the outbox (counted once at open, then kept): the status API asks
    /// often, and a scan would walk every delivered request's tombstone.
    outbox_count: Arc<AtomicUsize>,
    /// No outbox entry has a lower sequence: reads start here instead of walking the
    /// tombstones of every request delivered since the last compaction.
    outbox_floor: Arc<AtomicU64>,
    /// Something was committed since the last sync: [`Store::flush`] syncs only then,
    /// so the live agent's idle timer ticks cost no `fdatasync`.
    unsynced: Arc<AtomicBool>,
    /// Tests make commits fail with this (the worker's failed-commit test).
    #[cfg(test)]
    fail_commits: Arc<AtomicBool>,
}

/// Archive key: device id, a 0 byte, big-endian sequence (device ids have no 0 byte).
fn archive_key(device: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(device.len() + 9);
    k.extend_from_slice(device.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

const META_FORMAT: &str = "format";
const META_SEQ: &str = "seq";
const META_SITE: &str = "site_alarms";

/// A readable message for an engine error: the OS's reason once, not Debug output.
fn engine_message(e: &fjall::Error) -> String {
    match e {
        fjall::Error::Io(io) => io.to_string(),
        fjall::Error::Storage(fjall::LsmError::Io(io)) => io.to_string(),
        fjall::Error::Storage(other) => format!("{other:?}"),
        fjall::Error::Poisoned => "an earlier write or sync failed, so the store refuses \
                                   further writes until the agent restarts"
            .to_owned(),
        fjall::Error::Locked => "in use by another process (a running `tend run`?)".to_owned(),
        other => format!("{other:?}"),
    }
}

fn be_u64(b: &[u8]) -> Option<u64> {
    b.try_into().ok().map(u64::from_be_bytes)
}

impl Store {
    /// Opens (or creates) the database in `dir`, with a block cache of `cache_bytes`.
    /// Commits are made durable by [`Store::flush`].
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_with(dir, cache_bytes, true)
    }

    /// A store for `tend replay` in `dir` (a scratch directory): never synced, since
    /// nothing is acknowledged there.
    pub fn scratch(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, 16 << 20, false)
    }

    fn open_with(dir: &Path, cache_bytes: u64, durable: bool) -> Result<Self, StoreError> {
        let name = dir.display().to_string();
        let err = |what: &str, e: fjall::Error| StoreError::Engine {
            dir: name.clone(),
            message: format!("{what}: {}", engine_message(&e)),
        };
        if dir.join("conf").is_file() && dir.join("db").is_file() {
            return Err(StoreError::Format {
                dir: name,
                found: "it was written by an earlier version of tend (sled)".to_owned(),
            });
        }
        let db = Database::builder(dir)
            .cache_size(cache_bytes.max(1 << 20))
            // The journal is bounded: memtables are flushed to tables well before.
            .max_journaling_size(64 << 20)
            // Commits reach the kernel at once when durable (flush syncs them);
            // replay's scratch store keeps them in the journal's buffer.
            .manual_journal_persist(!durable)
            .worker_threads(1)
            .open()
            .map_err(|e| err("opening", e))?;
        // Small memtables: the agent holds its working state in memory itself.
        let ks = |n: &str, memtable: u64| {
            let options = || {
                KeyspaceCreateOptions::default()
                    .max_memtable_size(memtable)
                    .manual_journal_persist(!durable)
            };
            db.keyspace(n, options).map_err(|e| err(&format!("opening keyspace {n}"), e))
        };
        let store = Self {
            devices: ks("devices", 4 << 20)?,
            outbox: ks("outbox", 2 << 20)?,
            dead: ks("dead", 1 << 20)?,
            tickets: ks("tickets", 1 << 20)?,
            archive: ks("archive", 2 << 20)?,
            meta: ks("meta", 1 << 20)?,
            db,
            dir: name,
            seq: Arc::new(Mutex::new(0)),
            durable,
            journals_seen: Arc::new(AtomicUsize::new(0)),
            outbox_count: Arc::new(AtomicUsize::new(0)),
            outbox_floor: Arc::new(AtomicU64::new(0)),
            unsynced: Arc::new(AtomicBool::new(false)),
            #[cfg(test)]
            fail_commits: Arc::new(AtomicBool::new(false)),
        };
        let format = store.meta.get(META_FORMAT).map_err(|e| store.engine("reading", e))?;
        match format.as_deref().map(be_u64) {
            Some(Some(STORE_FORMAT)) => {}
            Some(found) => {
                return Err(StoreError::Format {
                    dir: store.dir.clone(),
                    found: match found {
                        Some(f) => format!("its format is {f}"),
                        None => "its format marker is unreadable".to_owned(),
                    },
                });
            }
            None => {
                store
                    .meta
                    .insert(META_FORMAT, STORE_FORMAT.to_be_bytes())
                    .map_err(|e| store.engine("writing", e))?;
                store.unsynced.store(true, Ordering::Release);
                store.flush()?;
            }
        }
        let next = match store.meta.get(META_SEQ).map_err(|e| store.engine("reading", e))? {
            Some(v) => be_u64(&v).ok_or_else(|| store.corrupt("meta", b"seq", "not 8 bytes"))?,
            None => 1,
        };
        *store.seq.lock().unwrap_or_else(PoisonError::into_inner) = next;
        let mut pending = 0;
        for item in store.outbox.iter() {
            item.key().map_err(|e| store.engine("reading the outbox", e))?;
            pending += 1;
        }
        store.outbox_count.store(pending, Ordering::Relaxed);
        Ok(store)
    }

    /// The data directory, as errors name it.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    fn engine(&self, what: &str, e: fjall::Error) -> StoreError {
        let mut message = format!("{what}: {}", engine_message(&e));
        if matches!(e, fjall::Error::Poisoned) {
            // fjall keeps the OS's reason to its own log: ask the directory itself.
            if let Some(why) = probe_write(Path::new(&self.dir)) {
                message.push_str(&format!(" (writing in the directory fails: {why})"));
            }
        }
        StoreError::Engine { dir: self.dir.clone(), message }
    }

    fn corrupt(&self, tree: &'static str, key: &[u8], reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            dir: self.dir.clone(),
            tree,
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.to_string(),
        }
    }

    /// Every device's record and plugin state (loaded once at start).
    pub fn devices(&self) -> Result<BTreeMap<String, DeviceEntry>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.devices.iter() {
            let (k, v) = item.into_inner().map_err(|e| self.engine("reading devices", e))?;
            let entry = decode_device(&v).map_err(|e| self.corrupt("devices", &k, e))?;
            out.insert(String::from_utf8_lossy(&k).into_owned(), entry);
        }
        Ok(out)
    }

    /// The site-wide alarm state last committed ([`Batch::site`]), if any.
    pub fn site_alarms(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let v = self.meta.get(META_SITE).map_err(|e| self.engine("reading", e))?;
        Ok(v.map(|v| v.to_vec()))
    }

    /// Writes a batch atomically, not yet durable: the receipt's [`Store::sync`] makes
    /// it so. Outbox entries get increasing sequence numbers in batch order. An empty
    /// batch writes nothing and still gives a receipt.
    pub fn commit(&self, batch: &Batch) -> Result<Committed, StoreError> {
        #[cfg(test)]
        if self.fail_commits.load(Ordering::Acquire) {
            return Err(StoreError::Engine { dir: self.dir.clone(), message: "injected".into() });
        }
        if batch.is_empty() {
            return Ok(Committed { _sealed: () });
        }
        let mut seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = *seq;
        let mut b = self.db.batch();
        for (id, v) in &batch.devices {
            b.insert(&self.devices, id.as_bytes(), v.as_slice());
        }
        for entry in &batch.outbox {
            let bytes = serde_json::to_vec(entry)
                .map_err(|e| self.corrupt("outbox", entry.key.as_bytes(), e))?;
            b.insert(&self.outbox, next.to_be_bytes(), bytes);
            next += 1;
        }
        for (id, t) in &batch.tickets {
            match t {
                Some(t) => {
                    let bytes = serde_json::to_vec(t)
                        .map_err(|e| self.corrupt("tickets", id.as_bytes(), e))?;
                    b.insert(&self.tickets, id.as_bytes(), bytes);
                }
                None => b.remove(&self.tickets, id.as_bytes()),
            }
        }
        for (device, entry) in &batch.archive {
            let bytes = serde_json::to_vec(entry)
                .map_err(|e| self.corrupt("archive", device.as_bytes(), e))?;
            b.insert(&self.archive, archive_key(device, next), bytes);
            next += 1;
        }
        if let Some(site) = &batch.site {
            b.insert(&self.meta, META_SITE, site.as_slice());
        }
        if next != *seq {
            b.insert(&self.meta, META_SEQ, next.to_be_bytes());
        }
        b.commit().map_err(|e| self.engine("committing", e))?;
        *seq = next;
        self.unsynced.store(true, Ordering::Release);
        self.outbox_count.fetch_add(batch.outbox.len(), Ordering::Relaxed);
        Ok(Committed { _sealed: () })
    }

    /// Whether something committed is not yet durable.
    pub fn pending_sync(&self) -> bool {
        self.durable && self.unsynced.load(Ordering::Acquire)
    }

    /// Makes every later commit fail (tests of what a failed commit does).
    #[cfg(test)]
    pub(crate) fn fail_commits(&self) {
        self.fail_commits.store(true, Ordering::Release);
    }

    /// Makes the receipt's batch, and everything committed before it, durable (as
    /// [`Store::flush`]) and returns the proof that acknowledging needs.
    pub fn sync(&self, receipt: Committed) -> Result<Durable, StoreError> {
        let Committed { _sealed: () } = receipt;
        self.flush()?;
        Ok(Durable { _sealed: () })
    }

    /// Makes everything committed so far durable: one `fdatasync` of the journal, or
    /// none when nothing was committed since the last one. Blocking: call it from a
    /// blocking thread. A no-op on a scratch store.
    pub fn flush(&self) -> Result<(), StoreError> {
        if !self.durable || !self.unsynced.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        if let Err(e) = self.db.persist(PersistMode::SyncData) {
            self.unsynced.store(true, Ordering::Release);
            return Err(self.engine("syncing", e));
        }
        self.release_journals()
    }

    /// A sealed journal file is deleted once every keyspace with data in it has
    /// flushed that data to a table. The small keyspaces (tickets, meta, dead letters)
    /// fill their memtables rarely, so they would keep old journals, and their disk
    /// space, for days: when journals pile up, their memtables are flushed too (in
    /// the background), once per new journal.
    fn release_journals(&self) -> Result<(), StoreError> {
        let journals = self.db.journal_count();
        if journals <= 2 || self.journals_seen.swap(journals, Ordering::Relaxed) == journals {
            return Ok(());
        }
        for ks in [&self.outbox, &self.dead, &self.tickets, &self.archive, &self.meta] {
            ks.rotate_memtable().map_err(|e| self.engine("flushing a memtable", e))?;
        }
        Ok(())
    }

    /// The oldest `limit` outbox entries, in order, with their sequence numbers.
    pub fn outbox(&self, limit: usize) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
        // Entries committed while this reads get sequences from `next` on.
        let next = *self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        let floor = self.outbox_floor.load(Ordering::Relaxed);
        let mut out = Vec::new();
        for item in self.outbox.range(floor.to_be_bytes()..).take(limit) {
            let (k, v) = item.into_inner().map_err(|e| self.engine("reading the outbox", e))?;
            let seq = be_u64(&k).ok_or_else(|| self.corrupt("outbox", &k, "bad key"))?;
            let entry = serde_json::from_slice(&v).map_err(|e| self.corrupt("outbox", &k, e))?;
            out.push((seq, entry));
        }
        // Sequences only grow: nothing below the oldest entry (or, with none, below
        // `next`) will be there again.
        let oldest = out.first().map_or(next, |(seq, _)| *seq);
        self.outbox_floor.fetch_max(oldest, Ordering::Relaxed);
        Ok(out)
    }

    /// Number of requests waiting.
    pub fn outbox_len(&self) -> usize {
        self.outbox_count.load(Ordering::Relaxed)
    }

    /// One request left the outbox (a delivery or a dead letter, committed).
    fn left_outbox(&self) {
        self.unsynced.store(true, Ordering::Release);
        let _ = self
            .outbox_count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Removes a delivered request and records the ticket's number (not synced on
    /// its own: see the module docs).
    pub fn delivered(
        &self,
        seq: u64,
        ticket_id: &str,
        number: Option<&str>,
    ) -> Result<(), StoreError> {
        let _guard = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        let mut b = self.db.batch();
        b.remove(&self.outbox, seq.to_be_bytes());
        if let Some(v) =
            self.tickets.get(ticket_id.as_bytes()).map_err(|e| self.engine("reading tickets", e))?
        {
            let mut t: TicketRef = serde_json::from_slice(&v)
                .map_err(|e| self.corrupt("tickets", ticket_id.as_bytes(), e))?;
            let number = number.map(str::to_owned).or_else(|| t.number.clone());
            if !t.delivered || t.number != number {
                t.delivered = true;
                t.number = number;
                let bytes = serde_json::to_vec(&t)
                    .map_err(|e| self.corrupt("tickets", ticket_id.as_bytes(), e))?;
                b.insert(&self.tickets, ticket_id.as_bytes(), bytes);
            }
        }
        b.commit().map_err(|e| self.engine("committing", e))?;
        self.left_outbox();
        Ok(())
    }

    /// Moves a refused request to the dead letters (not synced on its own).
    pub fn dead_letter(&self, seq: u64, letter: &DeadLetter) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(letter)
            .map_err(|e| self.corrupt("dead", letter.entry.key.as_bytes(), e))?;
        let _guard = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        let mut b = self.db.batch();
        b.remove(&self.outbox, seq.to_be_bytes());
        b.insert(&self.dead, seq.to_be_bytes(), bytes);
        b.commit().map_err(|e| self.engine("committing", e))?;
        self.left_outbox();
        Ok(())
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let mut out = Vec::new();
        for item in self.dead.iter() {
            let (k, v) = item.into_inner().map_err(|e| self.engine("reading dead letters", e))?;
            out.push(serde_json::from_slice(&v).map_err(|e| self.corrupt("dead", &k, e))?);
        }
        Ok(out)
    }

    /// Tickets the agent holds open, by ticket id.
    pub fn open_tickets(&self) -> Result<BTreeMap<String, TicketRef>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.tickets.iter() {
            let (k, v) = item.into_inner().map_err(|e| self.engine("reading tickets", e))?;
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
        for item in self.archive.prefix(&prefix) {
            let (k, v) = item.into_inner().map_err(|e| self.engine("reading the archive", e))?;
            out.push(serde_json::from_slice(&v).map_err(|e| self.corrupt("archive", &k, e))?);
        }
        Ok(out)
    }

    /// Bytes on disk: tables and journals.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.disk_space().map_err(|e| self.engine("measuring", e))
    }

    /// Live keys and values, bytes (what the store would hold with no overhead).
    pub fn logical_bytes(&self) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for ks in [&self.devices, &self.outbox, &self.dead, &self.tickets, &self.archive] {
            for item in ks.iter() {
                let (k, v) = item.into_inner().map_err(|e| self.engine("measuring", e))?;
                n += (k.len() + v.len()) as u64;
            }
        }
        Ok(n)
    }
}

/// Writes and syncs a small file in `dir` and removes it: the OS's reason when that
/// fails (a full or read-only disk), for an error fjall reports without it.
fn probe_write(dir: &Path) -> Option<String> {
    use std::io::Write;
    let path = dir.join(".tend-write-probe");
    let result = std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&[0u8; 4096]).and_then(|()| f.sync_data()));
    let _ = std::fs::remove_file(&path);
    result.err().map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_wire::{EventKind, WireTime};

    fn event(n: u32) -> OutboxEntry {
        OutboxEntry {
            key: format!("k{n}"),
            request: Request::Event {
                ticket_id: "t1".into(),
                event: tend_wire::TicketEvent {
                    kind: EventKind::Recurred { count: n },
                    at: WireTime::parse("2026-11-22T10:00:00+08:00").unwrap(),
                    note: None,
                },
            },
        }
    }

    fn archived(n: i64) -> ArchiveEntry {
        ArchiveEntry {
            at_ms: n,
            event: ArchiveEvent::TicketClosed { ticket_id: format!("t{n}"), resolution: None },
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
                    delivered: false,
                }),
            ));
            batch.archive = vec![("d1".into(), archived(1)), ("d10".into(), archived(2))];
            let _receipt = store.commit(&batch).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path(), 8 << 20).unwrap();
        let devices = store.devices().unwrap();
        assert_eq!(devices["d1"].record.meters.get("door_cycles"), Some(&12.0));
        assert!(devices["d1"].record.recent.contains(&(1, 42)));
        assert_eq!(devices["d1"].plugin_state.as_deref(), Some(&b"{\"x\":1}"[..]));
        assert_eq!(store.archive("d1").unwrap(), vec![archived(1)]);
        let pending = store.outbox(10).unwrap();
        let keys: Vec<&str> = pending.iter().map(|(_, e)| e.key.as_str()).collect();
        assert_eq!(keys, ["k1", "k2", "k3"]);
        assert_eq!(store.outbox_len(), 3);
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
    fn sequence_numbers_keep_increasing_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut last = 0;
        for round in 0..3u32 {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            let batch = Batch {
                outbox: vec![event(round)],
                archive: vec![("d1".into(), archived(i64::from(round)))],
                ..Batch::default()
            };
            let _receipt = store.commit(&batch).unwrap();
            store.flush().unwrap();
            let (seq, _) = *store.outbox(10).unwrap().last().unwrap();
            assert!(seq > last, "{seq} after {last}");
            last = seq;
            let at: Vec<i64> = store.archive("d1").unwrap().iter().map(|e| e.at_ms).collect();
            assert_eq!(at, (0..=i64::from(round)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_sled_store_of_an_earlier_version_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), "segment_size: 524288\n").unwrap();
        std::fs::write(dir.path().join("db"), [0u8; 64]).unwrap();
        let err = Store::open(dir.path(), 1 << 20).err().unwrap().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("earlier version of tend (sled)"), "{err}");
        assert!(err.contains("move the directory aside"), "{err}");
    }

    #[test]
    fn a_store_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            store.meta.insert(META_FORMAT, 1u64.to_be_bytes()).unwrap();
            store.flush().unwrap();
        }
        let err = Store::open(dir.path(), 1 << 20).err().unwrap().to_string();
        assert!(err.contains("its format is 1"), "{err}");
    }

    #[test]
    fn a_scratch_store_commits_without_syncing_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(dir.path()).unwrap();
        let rec = DeviceRecord::new(3);
        let batch = Batch {
            devices: vec![("d1".into(), encode_device(&rec, None).unwrap())],
            outbox: vec![event(1)],
            ..Batch::default()
        };
        let _receipt = store.commit(&batch).unwrap();
        store.flush().unwrap();
        assert_eq!(store.devices().unwrap()["d1"].record, rec);
        assert_eq!(store.outbox_len(), 1);
    }
}
