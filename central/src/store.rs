//! The service's database, through sqlx: an SQLite file (the default, no set-up) or
//! PostgreSQL (several `tend central` processes behind a load balancer). Every SQL
//! statement of `central` is in this file; the schema is `central/migrations/`,
//! applied on open (sqlx's migrator; on PostgreSQL it holds an advisory lock, so
//! processes starting together migrate once).
//!
//! The same SQL runs on both databases (sqlx's `Any` driver, `$n` parameters, TEXT
//! and BIGINT columns only). Correctness across processes comes from the database,
//! never from a lock in this process:
//! - a create inserts its idempotency key first (`ON CONFLICT DO NOTHING`): of
//!   concurrent duplicates, one inserts and the others wait on the unique index
//!   until it commits, then read its ticket;
//! - numbers come from `UPDATE counters … RETURNING` inside the create's
//!   transaction (a row lock: unique, and without gaps on rollback);
//! - an event first raises the ticket's `event_count` under `event_count < cap`
//!   (the row lock orders a ticket's events; the cap cannot be overrun);
//! - status changes are single conditional `UPDATE`s (`WHERE status = 'open'`).
//!
//! The desk queue reads the `tickets_queue` index (tickets not closed, in urgency
//! order: `queue_due_ms`, `queue_severity`, kept current by the writes above), so
//! its page costs an index scan of the rows it shows, not a sort of every ticket.
//!
//! Each write transaction starts with a write, so SQLite takes its write lock at
//! once and waits (`busy_timeout`) instead of failing a read-to-write upgrade. An
//! answered write is committed (SQLite `synchronous = FULL` in WAL mode; PostgreSQL
//! commits durably by default).
//!
//! A row that does not decode is logged and skipped by listings; reading it alone
//! is an error (the service answers 500 for that ticket only).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row as _};

use super::record::{EventRecord, TicketRecord};
use tend_wire::model::{Created, EventKind, NewTicket, Status, TicketEvent, TicketKind, WireTime};

/// A storage failure (the service answers 500; the agent retries).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement (connection, I/O, constraint).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be created.
    #[error("creating the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A record does not serialise (cannot happen with the plain types stored).
    #[error("cannot encode a record: {0}")]
    Encode(serde_json::Error),
    /// A stored row does not decode: the data was written by something else.
    #[error("corrupt row {key}: {reason}")]
    Corrupt {
        /// Which row.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Concurrent writers kept colliding (retried; should not happen).
    #[error("the write kept conflicting with concurrent writes; try again")]
    Contention,
    /// A name given to a command is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file `central.db` in this directory (created when missing).
    Sqlite(PathBuf),
    /// A `postgres://…` (or `sqlite://…`) URL.
    Url(String),
}

impl Database {
    /// The database of `--data-dir DIR`, or `--database-url URL` when given.
    pub fn choose(data_dir: &Path, url: Option<&str>) -> Self {
        match url {
            Some(url) => Self::Url(url.to_owned()),
            None => Self::Sqlite(data_dir.to_owned()),
        }
    }

    /// Where it is, for logs (a URL without its password).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite {}", dir.join(SQLITE_FILE).display()),
            Self::Url(url) => redact(url),
        }
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The SQLite file's name in the data directory.
pub const SQLITE_FILE: &str = "central.db";

/// Outcome of [`Store::open_ticket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A new ticket.
    Created(Created),
    /// The key (or an identical body under the same ticket id) was seen before.
    Replayed(Created),
    /// The ticket id exists with a different body, under another key.
    Conflict(Created),
    /// The key was used before with a different body.
    KeyReused(Created),
}

/// Outcome of [`Store::add_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The event was recorded.
    Added(Created),
    /// This key was seen before for this ticket with this body; nothing changed.
    Replayed(Created),
    /// This key was seen before for this ticket with another body.
    KeyReused(Created),
    /// The ticket holds the most events allowed.
    Full {
        /// The cap.
        limit: u32,
    },
    /// No such ticket.
    UnknownTicket,
}

/// Where a ticket id leads, for a caller that may see `scope` (a site; `None`: all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// The ticket's number.
    Found(i64),
    /// No such ticket.
    Unknown,
    /// The ticket belongs to another site.
    OtherSite,
    /// Two sites use this ticket id; a site token tells them apart.
    Ambiguous,
}

/// Outcome of a status change ([`Store::acknowledge`], [`Store::close`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Changed {
    /// The ticket afterwards.
    pub record: TicketRecord,
    /// False when the ticket was already past that state (nothing changed).
    pub changed: bool,
}

/// A site as `tend central site list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteInfo {
    /// The site id (as the agent's tickets name it).
    pub name: String,
    /// When it was added.
    pub created_at: String,
    /// When its token was revoked.
    pub revoked_at: Option<String>,
}

/// What the desk queue shows: a page of tickets and the figures around it.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    /// The tickets matching the filter, most urgent first (at most the limit).
    pub shown: Vec<TicketRecord>,
    /// How many match the filter.
    pub matching: u64,
    /// Every site with tickets (filter choices).
    pub sites: Vec<String>,
    /// Every device type with tickets (filter choices).
    pub device_types: Vec<String>,
    /// Tickets not closed.
    pub active: u64,
    /// Of those, past their next due time.
    pub overdue: u64,
    /// Of those, not acknowledged yet.
    pub unacknowledged: u64,
}

/// Which tickets the desk queue asks for (empty: any).
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Only this site.
    pub site: String,
    /// Only this device type.
    pub device_type: String,
    /// `fault` or `inspection`.
    pub kind: String,
    /// `""`/`active` (not closed), `closed`, `all`, or one status.
    pub status: String,
}

/// The service's database.
#[derive(Debug, Clone)]
pub struct Store {
    /// Connections to it.
    pool: AnyPool,
}

/// The schema (`central/migrations/`), compiled in.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Retries of a write that collided with a concurrent one.
const ATTEMPTS: u32 = 5;

/// `queue_due_ms` of a ticket without a due time.
const NO_DUE: i64 = i64::MAX;

/// `queue_due_ms` once acknowledged (see `desk::board::next_due`): inspections keep
/// their due date, faults work against being on site, then the resolution.
const DUE_ONCE_ACKNOWLEDGED: &str = "CASE WHEN kind = 'inspection' \
    THEN COALESCE(due_at_ms, resolve_by_ms, 9223372036854775807) \
    ELSE COALESCE(onsite_by_ms, resolve_by_ms, 9223372036854775807) END";

/// The desk's urgency order (the `tickets_queue` index).
const QUEUE_ORDER: &str = "site_outage DESC, queue_due_ms, queue_severity, number";

/// The ticket columns every read selects.
const TICKET_COLUMNS: &str = "number, ticket_id, site, status, severity, received_at, \
    idempotency_key, body, acknowledged_at, acknowledged_by, closed_at, closed_by, resolution";

impl Store {
    /// Opens (or creates) the database and brings its schema up to date.
    pub async fn open(database: &Database) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, sqlite) = match database {
            Database::Sqlite(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|source| StoreError::DataDir { path: dir.clone(), source })?;
                (format!("sqlite://{}?mode=rwc", dir.join(SQLITE_FILE).display()), true)
            }
            Database::Url(url) => (url.clone(), url.starts_with("sqlite:")),
        };
        let options = AnyPoolOptions::new()
            .max_connections(if sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(30));
        let options = if sqlite {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    // Wait for the write lock rather than fail under load; every
                    // commit reaches the disk before the answer.
                    for pragma in [
                        "PRAGMA busy_timeout = 30000",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA foreign_keys = ON",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(&url).await?;
        if sqlite {
            // Readers beside the writer; persistent in the file.
            sqlx::raw_sql("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes every connection (waits for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Opens a ticket under `key` (scoped to the ticket's site), unless the key (or
    /// the ticket id, with the same body) was seen before. Committed when it returns.
    pub async fn open_ticket(
        &self,
        key: &str,
        ticket: &NewTicket,
        now: &WireTime,
    ) -> Result<Opened, StoreError> {
        let body = encode(ticket)?;
        let hash = digest(body.as_bytes());
        for _ in 0..ATTEMPTS {
            if let Some(outcome) = self.try_open(key, ticket, &body, &hash, now).await? {
                return Ok(outcome);
            }
        }
        Err(StoreError::Contention)
    }

    /// One attempt of [`Store::open_ticket`]; `None`: collided, try again.
    async fn try_open(
        &self,
        key: &str,
        ticket: &NewTicket,
        body: &str,
        hash: &str,
        now: &WireTime,
    ) -> Result<Option<Opened>, StoreError> {
        let site = ticket.site.as_str();
        let id = ticket.ticket_id.as_str();
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO create_keys (site, idempotency_key, body_hash, ticket_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site, idempotency_key) DO NOTHING",
        )
        .bind(site)
        .bind(key)
        .bind(hash)
        .bind(id)
        .bind(now.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            // Seen before (possibly just now, by a concurrent duplicate that has
            // committed: the insert waited for it).
            let row = sqlx::query(
                "SELECT body_hash, ticket_id FROM create_keys WHERE site = $1 AND idempotency_key = $2",
            )
            .bind(site)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            let Some(row) = row else { return Ok(None) };
            let seen_hash: String = row.try_get("body_hash")?;
            let seen_id: String = row.try_get("ticket_id")?;
            let number =
                self.number_of(site, &seen_id).await?.ok_or_else(|| StoreError::Corrupt {
                    key: format!("create key {key:?} of site {site:?}"),
                    reason: format!("names ticket {seen_id:?}, which does not exist"),
                })?;
            let created = Created { ticket_id: seen_id, number: format_number(number) };
            return Ok(Some(if seen_hash == hash {
                Opened::Replayed(created)
            } else {
                Opened::KeyReused(created)
            }));
        }
        let existing =
            sqlx::query("SELECT number, body_hash FROM tickets WHERE site = $1 AND ticket_id = $2")
                .bind(site)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = existing {
            let number: i64 = row.try_get("number")?;
            let existing_hash: String = row.try_get("body_hash")?;
            let created = Created { ticket_id: id.to_owned(), number: format_number(number) };
            if existing_hash == hash {
                tx.commit().await?;
                return Ok(Some(Opened::Replayed(created)));
            }
            tx.rollback().await?;
            return Ok(Some(Opened::Conflict(created)));
        }
        let number: i64 = sqlx::query(
            "UPDATE counters SET value = value + 1 WHERE name = 'ticket_number' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("value")?;
        let sla = ticket.sla.clone().unwrap_or_default();
        let millis = |t: &Option<WireTime>| t.as_ref().map(|t| t.timestamp().as_millisecond());
        let inserted = sqlx::query(
            "INSERT INTO tickets (number, ticket_id, site, kind, device_type, code, status, severity, \
             site_outage, respond_by_ms, onsite_by_ms, resolve_by_ms, due_at_ms, queue_due_ms, \
             queue_severity, received_at, idempotency_key, body_hash, body, event_count) \
             VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, 0) \
             ON CONFLICT (site, ticket_id) DO NOTHING",
        )
        .bind(number)
        .bind(id)
        .bind(site)
        .bind(kind_text(ticket.kind))
        .bind(ticket.device.device_type.as_str())
        .bind(ticket.code.as_str())
        .bind(ticket.severity.map(i64::from))
        .bind(i64::from(is_site_outage(ticket)))
        .bind(millis(&sla.respond_by))
        .bind(millis(&sla.onsite_by))
        .bind(millis(&sla.resolve_by))
        .bind(millis(&ticket.due_at))
        .bind(first_due(ticket).unwrap_or(NO_DUE))
        .bind(ticket.severity.map_or(99, i64::from))
        .bind(now.as_str())
        .bind(key)
        .bind(hash)
        .bind(body)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            // The same ticket id under another key, committed meanwhile.
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Opened::Created(Created {
            ticket_id: id.to_owned(),
            number: format_number(number),
        })))
    }

    /// The number of `site`'s ticket `ticket_id`.
    async fn number_of(&self, site: &str, ticket_id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT number FROM tickets WHERE site = $1 AND ticket_id = $2")
            .bind(site)
            .bind(ticket_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("number")).transpose()?)
    }

    /// Finds ticket `ticket_id` for a caller limited to `scope` (`None`: every site).
    pub async fn locate(
        &self,
        ticket_id: &str,
        scope: Option<&str>,
    ) -> Result<Located, StoreError> {
        let rows = sqlx::query("SELECT number, site FROM tickets WHERE ticket_id = $1 LIMIT 3")
            .bind(ticket_id)
            .fetch_all(&self.pool)
            .await?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let number: i64 = row.try_get("number")?;
            let site: String = row.try_get("site")?;
            found.push((number, site));
        }
        Ok(match scope {
            Some(scope) => match found.iter().find(|(_, site)| site == scope) {
                Some((number, _)) => Located::Found(*number),
                None if found.is_empty() => Located::Unknown,
                None => Located::OtherSite,
            },
            None => match found.as_slice() {
                [] => Located::Unknown,
                [(number, _)] => Located::Found(*number),
                _ => Located::Ambiguous,
            },
        })
    }

    /// Records `event` on ticket `number` under `key`, unless the key was seen before
    /// for that ticket; at most `max_events` per ticket. Committed when it returns.
    pub async fn add_event(
        &self,
        number: i64,
        key: &str,
        event: &TicketEvent,
        now: &WireTime,
        max_events: u32,
    ) -> Result<Appended, StoreError> {
        let body = encode(event)?;
        let hash = digest(body.as_bytes());
        for _ in 0..ATTEMPTS {
            if let Some(outcome) =
                self.try_add_event(number, key, event, &body, &hash, now, max_events).await?
            {
                return Ok(outcome);
            }
        }
        Err(StoreError::Contention)
    }

    /// One attempt of [`Store::add_event`]; `None`: collided, try again.
    #[allow(clippy::too_many_arguments)]
    async fn try_add_event(
        &self,
        number: i64,
        key: &str,
        event: &TicketEvent,
        body: &str,
        hash: &str,
        now: &WireTime,
        max_events: u32,
    ) -> Result<Option<Appended>, StoreError> {
        let created = |id: String| Created { ticket_id: id, number: format_number(number) };
        let mut tx = self.pool.begin().await?;
        // The write first: takes the ticket's row lock (orders its events) and keeps
        // the count under the cap.
        let severity = match event.kind {
            EventKind::Escalated { severity } => Some(i64::from(severity)),
            _ => None,
        };
        let raised = sqlx::query(
            "UPDATE tickets SET event_count = event_count + 1, severity = COALESCE($1, severity), \
             queue_severity = COALESCE($1, queue_severity) \
             WHERE number = $2 AND event_count < $3 RETURNING event_count, ticket_id",
        )
        .bind(severity)
        .bind(number)
        .bind(i64::from(max_events))
        .fetch_optional(&mut *tx)
        .await?;
        let seen = sqlx::query(
            "SELECT body_hash FROM events WHERE ticket_number = $1 AND idempotency_key = $2",
        )
        .bind(number)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(raised) = raised else {
            let ticket_id: Option<String> =
                sqlx::query("SELECT ticket_id FROM tickets WHERE number = $1")
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get("ticket_id"))
                    .transpose()?;
            tx.rollback().await?;
            return Ok(Some(match (ticket_id, seen) {
                (None, _) => Appended::UnknownTicket,
                (Some(id), Some(seen)) => replay_or_reused(seen, hash, created(id))?,
                (Some(_), None) => Appended::Full { limit: max_events },
            }));
        };
        let seq: i64 = raised.try_get("event_count")?;
        let ticket_id: String = raised.try_get("ticket_id")?;
        if let Some(seen) = seen {
            tx.rollback().await?;
            return Ok(Some(replay_or_reused(seen, hash, created(ticket_id))?));
        }
        let inserted = sqlx::query(
            "INSERT INTO events (ticket_number, seq, idempotency_key, body_hash, received_at, body) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(number)
        .bind(seq)
        .bind(key)
        .bind(hash)
        .bind(now.as_str())
        .bind(body)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Appended::Added(created(ticket_id))))
    }

    /// Staff took ticket `number`: `open` becomes `acknowledged` (by `by`); other
    /// states stay. `None` when unknown.
    pub async fn acknowledge(
        &self,
        number: i64,
        at: &WireTime,
        by: &str,
    ) -> Result<Option<Changed>, StoreError> {
        let sql = format!(
            "UPDATE tickets SET status = 'acknowledged', acknowledged_at = $1, acknowledged_by = $2, \
             queue_due_ms = {DUE_ONCE_ACKNOWLEDGED} WHERE number = $3 AND status = 'open'"
        );
        self.take(&sql, number, at, by).await
    }

    /// Work on ticket `number` is under way (a technician on site, by `by`): open or
    /// acknowledged becomes `in_progress` (taking it, if nobody had: starting work
    /// meets the response commitment); other states stay. `None` when unknown.
    pub async fn start_work(
        &self,
        number: i64,
        at: &WireTime,
        by: &str,
    ) -> Result<Option<Changed>, StoreError> {
        let sql = format!(
            "UPDATE tickets SET status = 'in_progress', \
             acknowledged_at = COALESCE(acknowledged_at, $1), \
             acknowledged_by = COALESCE(acknowledged_by, $2), \
             queue_due_ms = {DUE_ONCE_ACKNOWLEDGED} \
             WHERE number = $3 AND status IN ('open', 'acknowledged')"
        );
        self.take(&sql, number, at, by).await
    }

    /// Runs a conditional status change `sql` (`$1` the time, `$2` who, `$3` the
    /// number), then reads the ticket back: whether it changed, and its record.
    async fn take(
        &self,
        sql: &str,
        number: i64,
        at: &WireTime,
        by: &str,
    ) -> Result<Option<Changed>, StoreError> {
        let changed = sqlx::query(sql)
            .bind(at.as_str())
            .bind(by)
            .bind(number)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0;
        Ok(self.get(number).await?.map(|record| Changed { record, changed }))
    }

    /// Closes ticket `number` (by `by`); closing a closed ticket changes nothing.
    /// `None` when unknown.
    pub async fn close_ticket(
        &self,
        number: i64,
        resolution: &str,
        closed_at: &WireTime,
        by: &str,
    ) -> Result<Option<Changed>, StoreError> {
        let changed = sqlx::query(
            "UPDATE tickets SET status = 'closed', resolution = $1, closed_at = $2, closed_by = $3, \
             queue_due_ms = 9223372036854775807 WHERE number = $4 AND status <> 'closed'",
        )
        .bind(resolution)
        .bind(closed_at.as_str())
        .bind(by)
        .bind(number)
        .execute(&self.pool)
        .await?
        .rows_affected()
            > 0;
        Ok(self.get(number).await?.map(|record| Changed { record, changed }))
    }

    /// Ticket `number` with its events, if known.
    pub async fn get(&self, number: i64) -> Result<Option<TicketRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1"))
            .bind(number)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut record = decode_ticket(&row)?;
        let events = sqlx::query(
            "SELECT ticket_number, seq, idempotency_key, received_at, body FROM events \
             WHERE ticket_number = $1 ORDER BY seq",
        )
        .bind(number)
        .fetch_all(&self.pool)
        .await?;
        record.events =
            events.iter().filter_map(|row| skip_bad(decode_event(row))).map(|(_, e)| e).collect();
        Ok(Some(record))
    }

    /// Every ticket (of `site`, when given) with its events, by number. Rows that do
    /// not decode are logged and left out.
    pub async fn list(&self, site: Option<&str>) -> Result<Vec<TicketRecord>, StoreError> {
        let (tickets, events) = match site {
            Some(site) => (
                sqlx::query(&format!(
                    "SELECT {TICKET_COLUMNS} FROM tickets WHERE site = $1 ORDER BY number"
                ))
                .bind(site)
                .fetch_all(&self.pool)
                .await?,
                sqlx::query(
                    "SELECT e.ticket_number, e.seq, e.idempotency_key, e.received_at, e.body \
                     FROM events e JOIN tickets t ON t.number = e.ticket_number \
                     WHERE t.site = $1 ORDER BY e.ticket_number, e.seq",
                )
                .bind(site)
                .fetch_all(&self.pool)
                .await?,
            ),
            None => (
                sqlx::query(&format!("SELECT {TICKET_COLUMNS} FROM tickets ORDER BY number"))
                    .fetch_all(&self.pool)
                    .await?,
                sqlx::query(
                    "SELECT ticket_number, seq, idempotency_key, received_at, body FROM events \
                     ORDER BY ticket_number, seq",
                )
                .fetch_all(&self.pool)
                .await?,
            ),
        };
        let mut by_number: HashMap<i64, Vec<EventRecord>> = HashMap::new();
        for (number, event) in events.iter().filter_map(|row| skip_bad(decode_event(row))) {
            by_number.entry(number).or_default().push(event);
        }
        Ok(tickets
            .iter()
            .filter_map(|row| skip_bad(decode_ticket_numbered(row)))
            .map(|(number, mut record)| {
                record.events = by_number.remove(&number).unwrap_or_default();
                record
            })
            .collect())
    }

    /// The desk queue: tickets matching `filter`, most urgent first (site outages
    /// on top), at most `limit` of them, without their events; and the counts.
    pub async fn queue(
        &self,
        filter: &QueueFilter,
        now_ms: i64,
        limit: u32,
    ) -> Result<Queue, StoreError> {
        let mut clauses = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        for (column, value) in
            [("site", &filter.site), ("device_type", &filter.device_type), ("kind", &filter.kind)]
        {
            if !value.is_empty() {
                binds.push(value.clone());
                clauses.push(format!("{column} = ${}", binds.len()));
            }
        }
        match filter.status.as_str() {
            "" | "active" => clauses.push("status <> 'closed'".into()),
            "all" => {}
            status => {
                binds.push(status.to_owned());
                clauses.push(format!("status = ${}", binds.len()));
            }
        }
        let condition = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {TICKET_COLUMNS} FROM tickets {condition} ORDER BY {QUEUE_ORDER} LIMIT {limit}"
        );
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value.as_str());
        }
        let rows = query.fetch_all(&self.pool).await?;
        let shown = rows.iter().filter_map(|row| skip_bad(decode_ticket(row))).collect();
        let count_sql = format!("SELECT COUNT(*) AS n FROM tickets {condition}");
        let mut count = sqlx::query(&count_sql);
        for value in &binds {
            count = count.bind(value.as_str());
        }
        let matching: i64 = count.fetch_one(&self.pool).await?.try_get("n")?;
        // Three counts, each answered from an index (one statement summing over
        // every row reads the table).
        let active = self.count("SELECT COUNT(*) AS n FROM tickets WHERE status <> 'closed'", None);
        let active = active.await?;
        let overdue = self.count(
            "SELECT COUNT(*) AS n FROM tickets WHERE status <> 'closed' AND queue_due_ms < $1",
            Some(now_ms),
        );
        let overdue = overdue.await?;
        let unacknowledged =
            self.count("SELECT COUNT(*) AS n FROM tickets WHERE status = 'open'", None).await?;
        let sites = self.distinct("site").await?;
        let device_types = self.distinct("device_type").await?;
        Ok(Queue {
            shown,
            matching: u64::try_from(matching).unwrap_or(0),
            sites,
            device_types,
            active,
            overdue,
            unacknowledged,
        })
    }

    /// The `n` of a `SELECT COUNT(*) AS n` with at most one parameter.
    async fn count(&self, sql: &str, parameter: Option<i64>) -> Result<u64, StoreError> {
        let mut query = sqlx::query(sql);
        if let Some(value) = parameter {
            query = query.bind(value);
        }
        count_of(&query.fetch_one(&self.pool).await?, "n")
    }

    /// The distinct values of an indexed ticket column.
    async fn distinct(&self, column: &'static str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&format!("SELECT DISTINCT {column} AS v FROM tickets ORDER BY v"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get::<String, _>("v")?)).collect()
    }

    // --- Sites -------------------------------------------------------------------

    /// Adds site `name` with a new random token and answers the token (stored only
    /// as its hash). An existing site is refused (revoke and add it to rotate).
    pub async fn add_site(&self, name: &str, now: &WireTime) -> Result<String, StoreError> {
        check_name(name, "site")?;
        let token = random_token();
        let inserted = sqlx::query(
            "INSERT INTO sites (name, token_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(digest(token.as_bytes()))
        .bind(now.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::Invalid(format!(
                "site {name:?} exists (`tend central site revoke {name}` ends its token; `site rotate` gives it a new one)"
            )));
        }
        Ok(token)
    }

    /// Gives site `name` a new token (the old one stops working) and answers it.
    pub async fn rotate_site(&self, name: &str) -> Result<String, StoreError> {
        let token = random_token();
        let updated =
            sqlx::query("UPDATE sites SET token_hash = $1, revoked_at = NULL WHERE name = $2")
                .bind(digest(token.as_bytes()))
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if updated == 0 {
            return Err(StoreError::Invalid(format!("no site {name:?}")));
        }
        Ok(token)
    }

    /// Ends site `name`'s token; false when there is no such site.
    pub async fn revoke_site(&self, name: &str, now: &WireTime) -> Result<bool, StoreError> {
        let updated =
            sqlx::query("UPDATE sites SET revoked_at = COALESCE(revoked_at, $1) WHERE name = $2")
                .bind(now.as_str())
                .bind(name)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(updated > 0)
    }

    /// Every site, by name.
    pub async fn sites(&self) -> Result<Vec<SiteInfo>, StoreError> {
        let rows = sqlx::query("SELECT name, created_at, revoked_at FROM sites ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SiteInfo {
                    name: row.try_get("name")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// The site whose live token is `token`.
    pub async fn site_of_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT name FROM sites WHERE token_hash = $1 AND revoked_at IS NULL")
                .bind(digest(token.as_bytes()))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("name")).transpose()?)
    }

    // --- Desk users and sessions ----------------------------------------------------

    /// Adds (or, with `replace`, updates) desk user `name` with an argon2
    /// `password_hash`. False when the user exists and `replace` is not set.
    pub async fn put_user(
        &self,
        name: &str,
        password_hash: &str,
        now: &WireTime,
        replace: bool,
    ) -> Result<bool, StoreError> {
        check_name(name, "user")?;
        let sql = if replace {
            "INSERT INTO desk_users (name, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash"
        } else {
            "INSERT INTO desk_users (name, password_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING"
        };
        let written = sqlx::query(sql)
            .bind(name)
            .bind(password_hash)
            .bind(now.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
        if replace {
            // A new password ends the user's sessions.
            sqlx::query("DELETE FROM desk_sessions WHERE user_name = $1")
                .bind(name)
                .execute(&self.pool)
                .await?;
        }
        Ok(written > 0)
    }

    /// Removes desk user `name` and ends their sessions; false when unknown.
    pub async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM desk_users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM desk_sessions WHERE user_name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed > 0)
    }

    /// Every desk user's name.
    pub async fn users(&self) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT name FROM desk_users ORDER BY name").fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok(row.try_get::<String, _>("name")?)).collect()
    }

    /// User `name`'s password hash.
    pub async fn password_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM desk_users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("password_hash")).transpose()?)
    }

    /// Records a session (`id_hash`: SHA-256 of the cookie's id) for `user` until
    /// `expires_at_ms`; drops expired ones on the way.
    pub async fn start_session(
        &self,
        id_hash: &str,
        user: &str,
        now: &WireTime,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM desk_sessions WHERE expires_at_ms <= $1")
            .bind(now.timestamp().as_millisecond())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO desk_sessions (id_hash, user_name, created_at, expires_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id_hash)
        .bind(user)
        .bind(now.as_str())
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of a live session.
    pub async fn session_user(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT user_name FROM desk_sessions WHERE id_hash = $1 AND expires_at_ms > $2",
        )
        .bind(id_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("user_name")).transpose()?)
    }

    /// Ends a session.
    pub async fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM desk_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Wrong sign-ins so far under `scope` and when the last was (epoch ms).
    pub async fn failures(&self, scope: &str) -> Result<Option<(u32, i64)>, StoreError> {
        let row =
            sqlx::query("SELECT failures, last_failure_ms FROM sign_in_failures WHERE scope = $1")
                .bind(scope)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(row) => {
                let failures: i64 = row.try_get("failures")?;
                Some((u32::try_from(failures).unwrap_or(u32::MAX), row.try_get("last_failure_ms")?))
            }
            None => None,
        })
    }

    /// Counts a wrong sign-in under `scope`.
    pub async fn record_failure(&self, scope: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sign_in_failures (scope, failures, last_failure_ms) VALUES ($1, 1, $2) \
             ON CONFLICT (scope) DO UPDATE SET failures = sign_in_failures.failures + 1, \
             last_failure_ms = excluded.last_failure_ms",
        )
        .bind(scope)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets the wrong sign-ins under `scope` (after a right one).
    pub async fn clear_failures(&self, scope: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sign_in_failures WHERE scope = $1")
            .bind(scope)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(any(test, feature = "testing"))]
impl Store {
    /// Overwrites ticket `ticket_id`'s stored body with something that does not
    /// decode (tests of the listings' resilience).
    pub async fn spoil_for_tests(&self, ticket_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE tickets SET body = '{not json' WHERE ticket_id = $1")
            .bind(ticket_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A replay when the stored event's body hash is `hash`, else a reused key.
fn replay_or_reused(seen: AnyRow, hash: &str, created: Created) -> Result<Appended, StoreError> {
    let seen_hash: String = seen.try_get("body_hash")?;
    Ok(if seen_hash == hash { Appended::Replayed(created) } else { Appended::KeyReused(created) })
}

fn count_of(row: &AnyRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    Ok(u64::try_from(value).unwrap_or(0))
}

/// `T-000042`.
pub fn format_number(number: i64) -> String {
    format!("T-{number:06}")
}

/// When a new (open) ticket's first commitment falls due, in epoch ms (see
/// `desk::board::next_due`).
fn first_due(ticket: &NewTicket) -> Option<i64> {
    let sla = ticket.sla.clone().unwrap_or_default();
    let stages = match ticket.kind {
        TicketKind::Inspection => [ticket.due_at.clone(), sla.resolve_by, None],
        TicketKind::Fault => [sla.respond_by, sla.onsite_by, sla.resolve_by],
    };
    stages.into_iter().flatten().next().map(|at| at.timestamp().as_millisecond())
}

/// Whether a ticket reports a whole site down (device type `site`).
pub fn is_site_outage(ticket: &NewTicket) -> bool {
    ticket.device.device_type == "site"
}

fn kind_text(kind: TicketKind) -> &'static str {
    match kind {
        TicketKind::Fault => "fault",
        TicketKind::Inspection => "inspection",
    }
}

/// Site and user names: printable, no spaces, at most 128 bytes.
fn check_name(name: &str, what: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || name.len() > 128
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(StoreError::Invalid(format!(
            "a {what} name is 1 to 128 bytes without spaces or control characters, got {name:?}"
        )));
    }
    Ok(())
}

/// 32 random bytes, hex: a site token or a session id.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// SHA-256, hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::Encode)
}

/// Keeps a decoded row; logs and drops one that does not decode.
fn skip_bad<T>(decoded: Result<T, StoreError>) -> Option<T> {
    match decoded {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::error!(%error, "skipping a stored row that does not decode");
            None
        }
    }
}

fn corrupt(key: String, reason: impl ToString) -> StoreError {
    StoreError::Corrupt { key, reason: reason.to_string() }
}

fn decode_ticket(row: &AnyRow) -> Result<TicketRecord, StoreError> {
    decode_ticket_numbered(row).map(|(_, record)| record)
}

fn decode_ticket_numbered(row: &AnyRow) -> Result<(i64, TicketRecord), StoreError> {
    let number: i64 = row.try_get("number")?;
    let key = format!("ticket {}", format_number(number));
    let time = |column: &str| -> Result<Option<WireTime>, StoreError> {
        let text: Option<String> = row.try_get(column)?;
        text.map(|t| WireTime::parse(t).map_err(|e| corrupt(key.clone(), format!("{column}: {e}"))))
            .transpose()
    };
    let status: String = row.try_get("status")?;
    let status = Status::from_name(&status)
        .ok_or_else(|| corrupt(key.clone(), format!("status {status:?}")))?;
    let severity: Option<i64> = row.try_get("severity")?;
    let severity = severity
        .map(|s| u8::try_from(s).map_err(|_| corrupt(key.clone(), format!("severity {s}"))))
        .transpose()?;
    let body: String = row.try_get("body")?;
    let ticket: NewTicket =
        serde_json::from_str(&body).map_err(|e| corrupt(key.clone(), format!("body: {e}")))?;
    let received_at = time("received_at")?.ok_or_else(|| corrupt(key.clone(), "no received_at"))?;
    Ok((
        number,
        TicketRecord {
            number: format_number(number),
            status,
            severity,
            received_at,
            idempotency_key: row.try_get("idempotency_key")?,
            acknowledged_at: time("acknowledged_at")?,
            acknowledged_by: row.try_get("acknowledged_by")?,
            closed_at: time("closed_at")?,
            closed_by: row.try_get("closed_by")?,
            resolution: row.try_get("resolution")?,
            ticket,
            events: Vec::new(),
        },
    ))
}

fn decode_event(row: &AnyRow) -> Result<(i64, EventRecord), StoreError> {
    let number: i64 = row.try_get("ticket_number")?;
    let seq: i64 = row.try_get("seq")?;
    let key = format!("event {seq} of {}", format_number(number));
    let received_at: String = row.try_get("received_at")?;
    let received_at = WireTime::parse(received_at)
        .map_err(|e| corrupt(key.clone(), format!("received_at: {e}")))?;
    let body: String = row.try_get("body")?;
    let event: TicketEvent =
        serde_json::from_str(&body).map_err(|e| corrupt(key.clone(), format!("body: {e}")))?;
    Ok((
        number,
        EventRecord { received_at, idempotency_key: row.try_get("idempotency_key")?, event },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_logged_without_their_password() {
        assert_eq!(
            redact("postgres://tend:s3cret@db:5432/tend"),
            "postgres://tend:***@db:5432/tend"
        );
        assert_eq!(redact("postgres://db/tend"), "postgres://db/tend");
    }
}
