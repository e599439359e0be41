//! The reference service's storage. Every sled call of `central` is in this file.
//!
//! Trees:
//! - `tickets`: ticket id -> [`TicketRecord`] (JSON)
//! - `create_keys`: idempotency key of a create -> ticket id
//! - `event_keys`: (ticket id, idempotency key) -> nothing; the events seen
//! - `by_number`: ticket number (u64, big-endian) -> ticket id; listing order
//! - `meta`: `last_number` -> u64 big-endian
//!
//! Writers are serialised by one async mutex (the service is small; a flush costs
//! more than the lock), and each write that touches several trees is one sled
//! transaction, so a crash leaves either all of it or none. Every write is flushed
//! ([`Store::flush`]) before the caller answers, so an answered request survives a
//! crash; a replayed answer flushes too, because it may be reporting a write that
//! a concurrent request made and has not flushed yet.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::record::TicketRecord;
use tend_wire::model::{Created, NewTicket, TicketEvent, WireTime};

/// A storage failure (the service answers 500; the agent retries).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption it detected).
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    /// The flush task did not complete (the runtime is shutting down).
    #[error("flush did not complete: {0}")]
    Flush(String),
    /// A record does not serialise (cannot happen with the plain types stored).
    #[error("cannot encode a record: {0}")]
    Encode(serde_json::Error),
    /// A stored value does not decode: the data was written by something else.
    #[error("corrupt record {key:?}: {reason}")]
    Corrupt {
        /// The key of the value.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Outcome of [`Store::open_ticket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A new ticket.
    Created(Created),
    /// The key (or an identical body under the same ticket id) was seen before.
    Replayed(Created),
    /// The ticket id exists with a different body, under another key.
    Conflict(Created),
}

/// Outcome of [`Store::add_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The event was recorded.
    Added(Created),
    /// This key was seen before for this ticket; nothing changed.
    Replayed(Created),
    /// No such ticket.
    UnknownTicket,
}

/// The service's database.
pub struct Store {
    /// The database, for flushing.
    db: sled::Db,
    /// Ticket id -> record.
    tickets: sled::Tree,
    /// Create idempotency key -> ticket id.
    create_keys: sled::Tree,
    /// Event idempotency keys seen, per ticket.
    event_keys: sled::Tree,
    /// Number -> ticket id, for listing in order.
    by_number: sled::Tree,
    /// The number counter.
    meta: sled::Tree,
    /// Serialises writers (see the module docs).
    writer: tokio::sync::Mutex<()>,
}

const LAST_NUMBER: &[u8] = b"last_number";

impl Store {
    /// Opens (or creates) the database in `dir` with a page cache of
    /// `cache_capacity` bytes. Blocking.
    pub fn open(dir: &Path, cache_capacity: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new().path(dir).cache_capacity(cache_capacity).open()?;
        Ok(Self {
            tickets: db.open_tree("tickets")?,
            create_keys: db.open_tree("create_keys")?,
            event_keys: db.open_tree("event_keys")?,
            by_number: db.open_tree("by_number")?,
            meta: db.open_tree("meta")?,
            db,
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// Makes every write so far durable.
    ///
    /// A blocking `flush` on the blocking pool rather than sled's `flush_async`:
    /// in sled 0.34, `flush_async` futures polled near-simultaneously (several
    /// requests, or several databases in one process) can stay pending forever
    /// (spacejam/sled#1241, #1308); this crate's tests, several services flushing
    /// at once, hung on it.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Flush(e.to_string()))??;
        Ok(())
    }

    /// Opens a ticket under `key`, unless the key (or the ticket id, with the same
    /// body) was seen before. Durable when it returns.
    pub async fn open_ticket(
        &self,
        key: &str,
        ticket: &NewTicket,
        now: &WireTime,
    ) -> Result<Opened, StoreError> {
        let guard = self.writer.lock().await;
        let trees = (&self.tickets, &self.create_keys, &self.by_number, &self.meta);
        let outcome = trees.transaction(|(tickets, keys, by_number, meta)| {
            if let Some(id) = keys.get(key)? {
                let record = tickets
                    .get(&id)?
                    .ok_or_else(|| abort(corrupt(&id, "idempotency key names a missing ticket")))?;
                let record: TicketRecord = decode(&id, &record).map_err(abort)?;
                return Ok(Opened::Replayed(record.created()));
            }
            let id = ticket.ticket_id.as_bytes();
            if let Some(existing) = tickets.get(id)? {
                let existing: TicketRecord = decode(id, &existing).map_err(abort)?;
                if existing.ticket != *ticket {
                    return Ok(Opened::Conflict(existing.created()));
                }
                keys.insert(key, id)?;
                return Ok(Opened::Replayed(existing.created()));
            }
            let last = match meta.get(LAST_NUMBER)? {
                Some(bytes) => read_u64(&bytes).map_err(abort)?,
                None => 0,
            };
            let number = last + 1;
            let record =
                TicketRecord::new(format!("T-{number:06}"), key, ticket.clone(), now.clone());
            tickets.insert(id, encode(&record).map_err(abort)?)?;
            keys.insert(key, id)?;
            by_number.insert(&number.to_be_bytes(), id)?;
            meta.insert(LAST_NUMBER, &number.to_be_bytes())?;
            Ok(Opened::Created(record.created()))
        });
        drop(guard);
        let outcome = outcome.map_err(from_transaction)?;
        self.flush().await?;
        Ok(outcome)
    }

    /// Records `event` on ticket `ticket_id` under `key`, unless the key was seen
    /// before for that ticket. Durable when it returns.
    pub async fn add_event(
        &self,
        ticket_id: &str,
        key: &str,
        event: &TicketEvent,
        now: &WireTime,
    ) -> Result<Appended, StoreError> {
        let guard = self.writer.lock().await;
        let seen_key = event_key(ticket_id, key);
        let id = ticket_id.as_bytes();
        let outcome = (&self.tickets, &self.event_keys).transaction(|(tickets, event_keys)| {
            let Some(bytes) = tickets.get(id)? else {
                return Ok(Appended::UnknownTicket);
            };
            let mut record: TicketRecord = decode(id, &bytes).map_err(abort)?;
            if event_keys.get(seen_key.as_slice())?.is_some() {
                return Ok(Appended::Replayed(record.created()));
            }
            record.apply(event.clone(), key, now.clone());
            tickets.insert(id, encode(&record).map_err(abort)?)?;
            event_keys.insert(seen_key.as_slice(), &[])?;
            Ok(Appended::Added(record.created()))
        });
        drop(guard);
        let outcome = outcome.map_err(from_transaction)?;
        if outcome != Appended::UnknownTicket {
            self.flush().await?;
        }
        Ok(outcome)
    }

    /// Applies `change` to ticket `ticket_id` and stores it; `None` when unknown.
    /// Durable when it returns.
    pub async fn update(
        &self,
        ticket_id: &str,
        change: impl FnOnce(&mut TicketRecord),
    ) -> Result<Option<TicketRecord>, StoreError> {
        let guard = self.writer.lock().await;
        let Some(mut record) = self.get(ticket_id)? else {
            return Ok(None);
        };
        change(&mut record);
        self.tickets.insert(ticket_id.as_bytes(), encode(&record)?)?;
        drop(guard);
        self.flush().await?;
        Ok(Some(record))
    }

    /// Ticket `ticket_id`, if known.
    pub fn get(&self, ticket_id: &str) -> Result<Option<TicketRecord>, StoreError> {
        let id = ticket_id.as_bytes();
        match self.tickets.get(id)? {
            Some(bytes) => Ok(Some(decode(id, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Every ticket, by number.
    pub fn list(&self) -> Result<Vec<TicketRecord>, StoreError> {
        let mut records = Vec::with_capacity(self.by_number.len());
        for entry in self.by_number.iter() {
            let (number, id) = entry?;
            let bytes = self
                .tickets
                .get(&id)?
                .ok_or_else(|| corrupt(&number, "number names a missing ticket"))?;
            records.push(decode(&id, &bytes)?);
        }
        Ok(records)
    }
}

/// (ticket id, key) as one sled key: the id's length first, so no id/key split
/// is ambiguous.
fn event_key(ticket_id: &str, key: &str) -> Vec<u8> {
    let len = u32::try_from(ticket_id.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + ticket_id.len() + key.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(ticket_id.as_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(StoreError::Encode)
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(key, &e.to_string()))
}

fn read_u64(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] =
        bytes.try_into().map_err(|_| corrupt(LAST_NUMBER, "counter is not 8 bytes"))?;
    Ok(u64::from_be_bytes(array))
}

fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt { key: String::from_utf8_lossy(key).into_owned(), reason: reason.into() }
}

fn abort(error: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(error)
}

fn from_transaction(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => StoreError::Sled(error),
    }
}
