//! The outbox dispatcher: sends the store's outbox to the central service until
//! every request is delivered or dead-lettered.
//!
//! Guarantees:
//! - **Order per ticket.** The outbox is read in sequence order, a batch at a time.
//!   A batch is split into lanes, one per ticket; a lane's requests go one after
//!   another in outbox order, and a request that fails is retried until it is
//!   settled, never skipped, so a ticket's events always follow its creation. Up to
//!   [`DispatcherConfig::in_flight`] lanes run at once; the next batch is read when
//!   every lane of this one is done. The API has no cross-ticket references, so
//!   order between different tickets carries no meaning; with `in_flight = 1` the
//!   whole outbox goes strictly in sequence order (as long as nothing fails).
//! - **One failing ticket holds back no other.** A request that fails ends its
//!   lane: the ticket waits for its own retry (backoff with jitter, at least the
//!   server's `Retry-After`), its later requests with it, and the batches after go
//!   on without it (a read skips the tickets still waiting). Only failures in a row
//!   from more than one ticket mean the service is down; then one request at a
//!   time probes it until one is answered, the probes taking turns among the
//!   tickets (`dispatcher/health.rs`).
//!
//!   Why lanes: on the first start of a site every device's overdue inspection is
//!   queued at once (16,000 requests for 10,000 devices). Sent one at a time, a
//!   fault found meanwhile waited behind all of them: over a WAN with 100 ms round
//!   trips, about half an hour.
//! - **Nothing lost.** A request leaves the outbox only once the service accepted it
//!   ([`Store::delivered`]) or refused it for good with 400/404/409/422
//!   ([`Store::dead_letter`], logged at error level and counted). 5xx, 429, timeouts
//!   and refused connections are retried with exponential backoff and full jitter,
//!   honouring `Retry-After`; a refused token (401/403) is logged once per outage and
//!   retried the same way, so the tickets go out as soon as a corrected agent runs.
//! - **Too large is cut, not lost.** A 413 (the service refuses the body as too
//!   large: a plugin's long texts, a service with small limits) sends the request
//!   again at once with its free texts and lists cut (`OutboxEntry::cut_to_fit`:
//!   ids, codes, times and severity untouched), logged at error level as the
//!   plugin's fault and counted; later attempts of that request go cut too. Only a
//!   cut request the service still refuses goes to the dead letters.
//! - **Accepted means delivered.** Any 2xx answer is a delivery, whatever its body:
//!   one that cannot be read is logged (by kind of problem, rate-limited) and
//!   counted, and the delivery is recorded without a ticket number; the request is
//!   never sent again.
//! - **Nothing duplicated.** Every request carries the idempotency key it was born
//!   with; the service creates one ticket per key however often it is sent (after a
//!   timeout, a crash, a restart).
//! - **Restarts.** The dispatcher keeps no state of its own: the outbox is the state,
//!   so a new dispatcher over the same store resumes where the last one stopped.
//!
//! Store calls (`delivered` and `dead_letter`) run on tokio's blocking
//! pool via [`tokio::task::spawn_blocking`], never on the async workers. They are not
//! cancelled by shutdown: shutdown interrupts an HTTP request or a wait, never a
//! store write.
//!
//! The dispatcher may read an entry that is committed but not yet flushed; if the
//! agent crashed before the flush, the message that produced it is redelivered and
//! the pipeline queues the same request under the same key again: still one ticket.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Notify, watch};

use super::backoff::Backoff;
use super::client::{Accepted, CentralClient, SendError, Unreadable};
use super::model::Created;
use crate::store::{DeadLetter, OutboxEntry, Request, Store, StoreError};

mod health;
use health::Health;

/// The error logged when the service refuses the agent's token.
pub const TOKEN_REFUSED: &str =
    "central service refused the token: check central.token / TEND_CENTRAL_TOKEN";

/// Default of [`DispatcherConfig::in_flight`] (and of `central.in_flight`).
pub const DEFAULT_IN_FLIGHT: usize = 8;

/// How the dispatcher paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatcherConfig {
    /// How many outbox entries are read per store call.
    pub batch: usize,
    /// How many tickets' requests may be in flight at once (at least 1).
    pub in_flight: usize,
    /// How often the outbox is checked when nobody signals new entries.
    pub poll_interval: Duration,
    /// Delays between retries of a failing request (and after a store failure).
    pub backoff: Backoff,
}

impl Default for DispatcherConfig {
    /// 64 entries per read, 8 tickets in flight, a poll every 5 s, backoff from 1 s
    /// up to 5 min.
    fn default() -> Self {
        Self {
            batch: 64,
            in_flight: DEFAULT_IN_FLIGHT,
            poll_interval: Duration::from_secs(5),
            backoff: Backoff::default(),
        }
    }
}

/// What the dispatcher has done so far, for the status API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DispatcherSnapshot {
    /// Requests the service accepted (creates and events).
    pub sent: u64,
    /// Failed attempts that will be retried (5xx, 429, no answer, refused token).
    pub retried: u64,
    /// Requests moved to the dead letters.
    pub dead_lettered: u64,
    /// Requests the service refused as too large (413) and that were sent again with
    /// their texts and lists cut.
    pub cut_to_fit: u64,
    /// Requests the service accepted with an answer the agent cannot read
    /// (delivered, recorded without a ticket number).
    pub unreadable_answers: u64,
    /// Failed attempts in a row, over all tickets (0 once the service answers).
    pub consecutive_failures: u32,
    /// True while the service refuses the token.
    pub unauthorized: bool,
    /// The latest error (kept after recovery, see `last_error_at`).
    pub last_error: Option<String>,
    /// When the latest error happened.
    pub last_error_at: Option<jiff::Timestamp>,
}

/// Shared, cheap-to-clone handle on the dispatcher's counters.
#[derive(Debug, Clone, Default)]
pub struct DispatcherStatus {
    /// The counters; the lock is held only to copy or bump them.
    inner: Arc<Mutex<DispatcherSnapshot>>,
}

impl DispatcherStatus {
    /// A copy of the current counters.
    pub fn snapshot(&self) -> DispatcherSnapshot {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, DispatcherSnapshot> {
        // Nothing panics while holding the lock; recover the data if it ever did.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut DispatcherSnapshot)) {
        change(&mut self.lock());
    }

    fn error(&self, text: String) {
        self.update(|s| {
            s.last_error = Some(text);
            s.last_error_at = Some(jiff::Timestamp::now());
        });
    }
}

/// Sends the outbox to the central service; see the module docs.
pub struct Dispatcher {
    /// The agent's store (the outbox and dead letters).
    store: Store,
    /// The central service.
    client: CentralClient,
    /// Signalled by the pipeline after it committed new outbox entries.
    notify: Arc<Notify>,
    /// Pacing.
    config: DispatcherConfig,
    /// Counters shared with the status API.
    status: DispatcherStatus,
    /// Outage state and the tickets waiting for a retry, shared by the lanes (the
    /// lock is held only to read or bump it, never across an await).
    health: Mutex<Health>,
    /// Held by the one lane that probes the service during an outage; the other
    /// lanes wait for it instead of retrying in parallel against a failing service.
    probe: tokio::sync::Mutex<()>,
    /// Unreadable answers so far, by kind (request, status, problem): logged at
    /// the 1st, 2nd, 4th, 8th… of each kind, not once per request.
    unreadable: Mutex<HashMap<String, u64>>,
    /// Keys of requests the service refused as too large: sent cut from then on.
    too_large: Mutex<HashSet<String>>,
}

/// What to do after settling (or failing to settle) one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Go on with the next entry of the lane.
    Next,
    /// The entry failed and waits for its retry: the lane's later entries (the same
    /// ticket's) wait with it.
    Deferred,
    /// Read the outbox again (a store write failed).
    Reread,
    /// Shutdown was requested.
    Stop,
}

/// Shutdown as the lanes see it: true once requested.
type Stopping = watch::Receiver<bool>;

/// Completes once shutdown was requested (or its sender is gone).
async fn stopped(stop: &mut Stopping) {
    // An error means the sender was dropped: stop as well.
    let _ = stop.wait_for(|requested| *requested).await;
}

/// The oldest `limit` outbox entries of tickets not in `skip`, in order. Reads
/// further than `limit` entries when entries of skipped tickets are in the way.
fn eligible(
    store: &Store,
    limit: usize,
    skip: &HashSet<String>,
) -> Result<Vec<(u64, OutboxEntry)>, StoreError> {
    let mut want = limit;
    loop {
        let read = store.outbox(want)?;
        let end = read.len() < want;
        let mut batch: Vec<_> =
            read.into_iter().filter(|(_, e)| !skip.contains(e.ticket_id())).collect();
        if batch.len() >= limit || end || skip.is_empty() {
            batch.truncate(limit);
            return Ok(batch);
        }
        want = want.saturating_mul(2);
    }
}

/// Splits a batch into lanes, one per ticket, each in outbox order; lanes are ordered
/// by their first entry.
fn lanes(batch: Vec<(u64, OutboxEntry)>) -> Vec<Vec<(u64, OutboxEntry)>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut lanes: Vec<Vec<(u64, OutboxEntry)>> = Vec::new();
    for (seq, entry) in batch {
        let ticket = entry.ticket_id().to_owned();
        match index.get(&ticket) {
            Some(&i) => lanes[i].push((seq, entry)),
            None => {
                index.insert(ticket, lanes.len());
                lanes.push(vec![(seq, entry)]);
            }
        }
    }
    lanes
}

impl Dispatcher {
    /// A dispatcher over `store`'s outbox, sending with `client` (which holds the
    /// base URL, bearer token and request timeout). The pipeline calls
    /// `notify.notify_one()` after each commit that added outbox entries.
    pub fn new(
        store: Store,
        client: CentralClient,
        notify: Arc<Notify>,
        config: DispatcherConfig,
    ) -> Self {
        Self {
            store,
            client,
            notify,
            config,
            status: DispatcherStatus::default(),
            health: Mutex::new(Health::default()),
            probe: tokio::sync::Mutex::new(()),
            unreadable: Mutex::new(HashMap::new()),
            too_large: Mutex::new(HashSet::new()),
        }
    }

    fn health(&self) -> MutexGuard<'_, Health> {
        // Nothing panics while holding the lock; recover the data if it ever did.
        self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The counters' handle (clone it before [`Dispatcher::run`]).
    pub fn status(&self) -> DispatcherStatus {
        self.status.clone()
    }

    /// Sends the outbox until `shutdown` completes; returns promptly then (an HTTP
    /// request in flight is abandoned: its key makes the resend harmless; a store
    /// write in progress is finished first).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let (stop_tx, stop) = watch::channel(false);
        let in_flight = self.config.in_flight.max(1);
        tracing::info!(central = %self.client.base_url(), in_flight, "outbox dispatcher started");
        loop {
            // Registered before reading, so a commit between the read and the wait
            // still wakes us (with `notify_one` and `notify_waiters` alike).
            let notify = Arc::clone(&self.notify);
            let notified = notify.notified();
            let mut notified = pin!(notified);
            notified.as_mut().enable();
            let limit = self.config.batch.max(1);
            // Tickets waiting for the retry of a failed request stay out of the batch.
            let (skip, next_retry) = self.health().waiting_at(tokio::time::Instant::now());
            let read = tokio::select! {
                biased;
                () = &mut shutdown => break,
                read = blocking(&self.store, move |s| eligible(s, limit, &skip)) => read,
            };
            let batch = match read {
                Ok(batch) => {
                    self.store_recovered();
                    batch
                }
                Err(error) => {
                    let mut lane_stop = stop.clone();
                    let waited = tokio::select! {
                        biased;
                        () = &mut shutdown => false,
                        waited = self.store_failed("reading the outbox", &error, &mut lane_stop) => waited,
                    };
                    if !waited {
                        break;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                let poll = tokio::time::Instant::now() + self.config.poll_interval;
                let wake = next_retry.map_or(poll, |retry| retry.min(poll));
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = notified => {}
                    () = tokio::time::sleep_until(wake) => {}
                }
                continue;
            }
            let mut pending = futures_util::stream::iter(lanes(batch))
                .map(|lane| self.settle_lane(lane, stop.clone()))
                .buffer_unordered(in_flight);
            let mut stopping = false;
            loop {
                let next = if stopping {
                    // Lanes return at their next wait; a store write finishes first.
                    pending.next().await
                } else {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => {
                            stopping = true;
                            stop_tx.send_replace(true);
                            continue;
                        }
                        next = pending.next() => next,
                    }
                };
                match next {
                    None => break,
                    Some(Flow::Stop) => stopping = true,
                    // A lane whose store write failed waited its backoff; the other
                    // lanes finish, then the outbox is read again.
                    Some(Flow::Next | Flow::Deferred | Flow::Reread) => {}
                }
            }
            if stopping {
                break;
            }
        }
        tracing::info!("outbox dispatcher stopped");
    }

    /// Settles one ticket's requests in order; stops at the first that could not be.
    async fn settle_lane(&self, lane: Vec<(u64, OutboxEntry)>, mut stop: Stopping) -> Flow {
        for (seq, entry) in lane {
            match self.settle(seq, &entry, &mut stop).await {
                Flow::Next => {}
                // The ticket's later requests wait for its retry (a later batch).
                Flow::Deferred => return Flow::Deferred,
                other => return other,
            }
        }
        Flow::Next
    }

    /// Sends one entry once: delivered, dead-lettered, or failed and deferred.
    ///
    /// A failure ends the lane: the ticket waits for its own retry (see
    /// [`Health::failed`]) while every other ticket goes on. While the service
    /// counts as down (failures in a row from more than one ticket), one lane at a
    /// time probes it, no sooner than the outage's backoff allows, and the others
    /// wait for that probe, so an outage sees one request at a time, as with a
    /// single lane. A probe that fails hands over to the next lane, so probes take
    /// turns and a ticket that fails on its own cannot keep the outage going.
    async fn settle(&self, seq: u64, entry: &OutboxEntry, stop: &mut Stopping) -> Flow {
        let mut probe = None;
        if self.in_outage() {
            let guard = tokio::select! {
                biased;
                () = stopped(stop) => return Flow::Stop,
                guard = self.probe.lock() => guard,
            };
            // The outage may have ended while this lane queued for the probe.
            let probe_at = self.health().probe_at();
            if let Some(at) = probe_at {
                tokio::select! {
                    biased;
                    () = stopped(stop) => return Flow::Stop,
                    () = tokio::time::sleep_until(at) => {}
                }
                probe = Some(guard);
            }
        }
        let result = tokio::select! {
            biased;
            () = stopped(stop) => return Flow::Stop,
            result = self.send_fitting(entry) => result,
        };
        let (after, reason) = match result {
            Ok(accepted) => {
                drop(probe);
                return self.accepted(seq, entry, accepted, stop).await;
            }
            // A read answers this; a create, an event or a close never does. It is
            // a 2xx all the same: delivered.
            Err(SendError::Unreadable(problem)) => {
                drop(probe);
                return self.accepted(seq, entry, Accepted::Unreadable(problem), stop).await;
            }
            Err(SendError::Rejected { status, reason }) => {
                drop(probe);
                return self.rejected(seq, entry, status, reason, stop).await;
            }
            Err(SendError::Retry { after, reason }) => (after, reason),
            Err(SendError::Unauthorized { status, reason }) => {
                let first = !std::mem::replace(&mut self.health().unauthorized, true);
                if first {
                    tracing::error!(
                        status,
                        %reason,
                        ticket_id = entry.ticket_id(),
                        "{TOKEN_REFUSED}"
                    );
                }
                self.status.update(|s| s.unauthorized = true);
                (None, format!("{TOKEN_REFUSED} ({reason})"))
            }
        };
        let ticket_id = entry.ticket_id();
        let (failed, unauthorized) = {
            let mut health = self.health();
            let failed = health.failed(
                ticket_id,
                probe.is_some(),
                after,
                tokio::time::Instant::now(),
                &self.config.backoff,
                &mut rand::rng(),
            );
            (failed, health.unauthorized)
        };
        // The next probe is another lane's turn, once the outage's backoff allows.
        drop(probe);
        let retry_in_ms = u64::try_from(failed.retry_in.as_millis()).unwrap_or(u64::MAX);
        // Rate-limited: attempts 1, 2, 4, 8, … of the outage, or of the ticket when
        // it fails alone (the refused token logs its own error).
        let count = if failed.outage { failed.streak } else { failed.attempts };
        if unauthorized || !count.is_power_of_two() {
            tracing::debug!(
                ticket_id,
                attempt = failed.attempts,
                %reason,
                "request failed, will retry"
            );
        } else if failed.outage {
            tracing::warn!(
                attempt = failed.streak,
                ticket_id,
                key = %entry.key,
                %reason,
                retry_in_ms,
                "central service unavailable, will retry"
            );
        } else {
            tracing::warn!(
                attempt = failed.attempts,
                ticket_id,
                key = %entry.key,
                %reason,
                retry_in_ms,
                "central service failed this ticket's request; will retry it, other tickets go on"
            );
        }
        self.status.error(reason);
        self.status.update(|s| {
            s.retried += 1;
            s.consecutive_failures = failed.streak;
        });
        Flow::Deferred
    }

    /// One attempt at sending an entry, and at once its cut version if the service
    /// refuses it as too large (413); a request refused so before goes cut.
    async fn send_fitting(&self, entry: &OutboxEntry) -> Result<Accepted<Created>, SendError> {
        let known = self.lock_too_large().contains(&entry.key);
        if known && let Some(cut) = entry.cut_to_fit() {
            return self.send(&cut).await;
        }
        match self.send(entry).await {
            Err(SendError::Rejected { status: 413, reason }) => match entry.cut_to_fit() {
                Some(cut) => {
                    self.too_large(entry, &reason);
                    self.send(&cut).await
                }
                None => Err(SendError::Rejected { status: 413, reason }),
            },
            other => other,
        }
    }

    fn lock_too_large(&self) -> MutexGuard<'_, HashSet<String>> {
        self.too_large.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records and reports a request refused as too large, about to go cut.
    fn too_large(&self, entry: &OutboxEntry, reason: &str) {
        self.lock_too_large().insert(entry.key.clone());
        let whose = match &entry.request {
            Request::Open { ticket } => {
                format!("the `{}` plugin's output", ticket.device.device_type)
            }
            Request::Event { .. } => "the event's note".to_owned(),
            Request::Close { .. } => "the resolution".to_owned(),
        };
        tracing::error!(
            ticket_id = entry.ticket_id(),
            key = %entry.key,
            %reason,
            "central service refused the request as too large: {whose} is too long for it; \
             sending it again with its texts and lists cut"
        );
        self.status.error(format!(
            "too large for the central service, sent cut: {} (key {}): {whose}",
            entry.ticket_id(),
            entry.key
        ));
        self.status.update(|s| s.cut_to_fit += 1);
    }

    /// One attempt at sending an entry.
    async fn send(&self, entry: &OutboxEntry) -> Result<Accepted<Created>, SendError> {
        match &entry.request {
            Request::Open { ticket } => self.client.open(ticket, &entry.key).await,
            Request::Event { ticket_id, event } => {
                self.client.event(ticket_id, event, &entry.key).await
            }
            // Closing is idempotent at the service (a second close changes nothing).
            Request::Close { ticket_id, close } => self
                .client
                .close(ticket_id, close)
                .await
                .map(|a| a.map(|s| Created { ticket_id: s.ticket_id, number: s.number })),
        }
    }

    /// True while the service counts as down.
    fn in_outage(&self) -> bool {
        self.health().in_outage()
    }

    /// The service answered a request for `ticket_id` past authentication: the
    /// ticket waits no more, any outage ends.
    fn answered(&self, ticket_id: &str) {
        let recovered = self.health().answered(ticket_id);
        if recovered.was_unauthorized {
            tracing::info!("central service accepts the token again");
        } else if let Some(failed_attempts) = recovered.outage_failures {
            tracing::info!(failed_attempts, "central service reachable again");
        } else if recovered.ticket_attempts > 0 {
            tracing::info!(
                ticket_id,
                failed_attempts = recovered.ticket_attempts,
                "central service answered this ticket's request again"
            );
        }
        self.status.update(|s| {
            s.consecutive_failures = 0;
            s.unauthorized = false;
        });
    }

    /// Logs an answer that cannot be read: the 1st, 2nd, 4th, 8th… of its kind.
    fn unreadable(&self, entry: &OutboxEntry, problem: &Unreadable) {
        let request = match entry.request {
            Request::Open { .. } => "create",
            Request::Event { .. } => "event",
            Request::Close { .. } => "close",
        };
        let count = {
            let mut seen = self.unreadable.lock().unwrap_or_else(|p| p.into_inner());
            let kind = format!("{request} {} {}", problem.status, problem.kind);
            let count = seen.entry(kind).or_default();
            *count += 1;
            *count
        };
        let (status, kind, detail) = (problem.status, problem.kind, &problem.detail);
        if count.is_power_of_two() {
            tracing::warn!(
                request,
                status,
                kind,
                %detail,
                count,
                ticket_id = entry.ticket_id(),
                key = %entry.key,
                "central service accepted the request but its answer cannot be read; \
                 recorded as delivered without a ticket number"
            );
        } else {
            tracing::debug!(request, status, kind, %detail, count, "unreadable answer");
        }
        self.status.update(|s| s.unreadable_answers += 1);
    }

    async fn accepted(
        &self,
        seq: u64,
        entry: &OutboxEntry,
        accepted: Accepted<Created>,
        stop: &mut Stopping,
    ) -> Flow {
        let ticket_id = entry.ticket_id().to_owned();
        self.answered(&ticket_id);
        let number = match accepted {
            Accepted::Read(created) => Some(created.number),
            Accepted::Unreadable(problem) => {
                self.unreadable(entry, &problem);
                None
            }
        };
        let (id, n) = (ticket_id.clone(), number.clone());
        if let Err(error) =
            blocking(&self.store, move |s| s.delivered(seq, &id, n.as_deref())).await
        {
            // Still in the outbox: it is sent again (same key, same ticket).
            return self.store_failed_flow("recording a delivery", &error, stop).await;
        }
        self.store_recovered();
        self.status.update(|s| s.sent += 1);
        let number = number.as_deref().unwrap_or("unknown");
        match &entry.request {
            Request::Open { .. } => {
                let key = &entry.key;
                tracing::info!(%ticket_id, %number, %key, "ticket opened at the central service");
            }
            Request::Event { event, .. } => {
                let kind = serde_json::to_value(&event.kind)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_owned)))
                    .unwrap_or_default();
                let key = &entry.key;
                tracing::info!(%ticket_id, %number, event = %kind, %key, "ticket event delivered");
            }
            Request::Close { .. } => {
                tracing::info!(%ticket_id, %number, "ticket closed at the central service for work recorded on site");
            }
        }
        Flow::Next
    }

    async fn rejected(
        &self,
        seq: u64,
        entry: &OutboxEntry,
        status: u16,
        reason: String,
        stop: &mut Stopping,
    ) -> Flow {
        self.answered(entry.ticket_id());
        // The client's reason reads "422 Unprocessable Entity: <message>"; keep the
        // status visible even if a service sends no message.
        let reason = if reason.starts_with(&status.to_string()) {
            reason
        } else {
            format!("{status}: {reason}")
        };
        let letter = DeadLetter {
            entry: entry.clone(),
            reason: reason.clone(),
            at_ms: jiff::Timestamp::now().as_millisecond(),
        };
        if let Err(error) = blocking(&self.store, move |s| s.dead_letter(seq, &letter)).await {
            return self
                .store_failed_flow("moving a request to the dead letters", &error, stop)
                .await;
        }
        self.store_recovered();
        tracing::error!(
            ticket_id = entry.ticket_id(),
            key = %entry.key,
            %reason,
            "central service rejected the request for good; moved to the dead letters"
        );
        self.status.error(format!("rejected {} (key {}): {reason}", entry.ticket_id(), entry.key));
        self.status.update(|s| s.dead_lettered += 1);
        Flow::Next
    }

    async fn store_failed_flow(
        &self,
        what: &str,
        error: &anyhow::Error,
        stop: &mut Stopping,
    ) -> Flow {
        if self.store_failed(what, error, stop).await { Flow::Reread } else { Flow::Stop }
    }

    /// Logs a store failure (once per streak), then waits a backoff delay. False
    /// when shutdown came first.
    async fn store_failed(&self, what: &str, error: &anyhow::Error, stop: &mut Stopping) -> bool {
        let attempt = {
            let mut health = self.health();
            let attempt = health.store_failures;
            health.store_failures = health.store_failures.saturating_add(1);
            attempt
        };
        if attempt == 0 {
            let error = format!("{error:#}");
            tracing::error!(%error, "outbox dispatcher: store failed {what}; will retry");
        }
        self.status.error(format!("store failed {what}: {error:#}"));
        let delay = self.config.backoff.delay(attempt, None, &mut rand::rng());
        tokio::select! {
            biased;
            () = stopped(stop) => false,
            () = tokio::time::sleep(delay) => true,
        }
    }

    fn store_recovered(&self) {
        let had_failed = std::mem::take(&mut self.health().store_failures) > 0;
        if had_failed {
            tracing::info!("outbox dispatcher: store working again");
        }
    }
}

/// Runs a store call on tokio's blocking pool.
pub(crate) async fn blocking<T, C>(store: &Store, call: C) -> anyhow::Result<T>
where
    T: Send + 'static,
    C: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
{
    let store = store.clone();
    let result = tokio::task::spawn_blocking(move || call(&store)).await?;
    Ok(result?)
}

#[cfg(test)]
mod foreign;

#[cfg(test)]
pub(crate) mod tests {
    //! Against the real reference service on 127.0.0.1 and a real store in a
    //! temporary directory. Helpers are shared with the sync's tests.

    use std::time::Instant;

    use axum::http::StatusCode;
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::store::{Batch, TicketRef, TicketSubject};
    use crate::tickets::model::{Device, EventKind, NewTicket, TicketEvent, TicketKind, WireTime};
    use tend_central::TicketList;

    /// The reference service for these tests, and the token it accepts.
    pub(crate) use tend_central::testing::{TOKEN, TestServer as Central};
    /// A client of `central` with `token`.
    pub(crate) fn client(central: &Central, token: &str) -> anyhow::Result<CentralClient> {
        Ok(CentralClient::new(&central.url, token, Duration::from_secs(5))?)
    }

    /// How long a condition may take before a test fails.
    pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

    /// (creating key, event keys in arrival order) of every ticket, by creating key:
    /// tickets are sent in parallel, so their numbers follow no fixed order.
    pub(crate) fn keys(list: &TicketList) -> Vec<(String, Vec<String>)> {
        let mut keys: Vec<_> = list
            .tickets
            .iter()
            .map(|t| {
                let events = t.events.iter().map(|e| e.idempotency_key.clone()).collect();
                (t.idempotency_key.clone(), events)
            })
            .collect();
        keys.sort();
        keys
    }

    /// (creating key, event keys in arrival order) of every ticket, by number.
    fn keys_by_number(list: &TicketList) -> Vec<(String, Vec<String>)> {
        list.tickets
            .iter()
            .map(|t| {
                let events = t.events.iter().map(|e| e.idempotency_key.clone()).collect();
                (t.idempotency_key.clone(), events)
            })
            .collect()
    }

    /// The agent's store in a temporary directory.
    pub(crate) struct Agent {
        /// Kept alive for the store's lifetime.
        pub(crate) dir: tempfile::TempDir,
        /// The store.
        pub(crate) store: Store,
    }

    impl Agent {
        pub(crate) fn new() -> anyhow::Result<Self> {
            let dir = tempfile::tempdir()?;
            let store = Store::open(dir.path(), 4 << 20)?;
            Ok(Self { dir, store })
        }

        /// Commits `entries` like the pipeline does (an `Open` also records the
        /// ticket as held open) and flushes.
        pub(crate) fn queue(&self, entries: &[OutboxEntry]) -> anyhow::Result<()> {
            let mut batch = Batch { outbox: entries.to_vec(), ..Batch::default() };
            for entry in entries {
                if let Request::Open { ticket } = &entry.request {
                    let subject = TicketSubject::Fault { code: ticket.code.clone(), episode: 1 };
                    let held = TicketRef {
                        device: ticket.device.id.clone(),
                        subject,
                        number: None,
                        delivered: false,
                    };
                    batch.tickets.push((ticket.ticket_id.clone(), Some(held)));
                }
            }
            let receipt = self.store.commit(&batch)?;
            self.store.sync(receipt)?;
            Ok(())
        }
    }

    pub(crate) fn time(text: &str) -> anyhow::Result<WireTime> {
        Ok(WireTime::parse(text)?)
    }

    /// A fault ticket `site/{device}/tank_leak/1` with `severity`.
    pub(crate) fn fault(device: &str, severity: u8) -> anyhow::Result<NewTicket> {
        Ok(NewTicket {
            ticket_id: format!("huaihai-138/{device}/tank_leak/1"),
            kind: TicketKind::Fault,
            site: "huaihai-138".into(),
            device: Device {
                id: device.into(),
                device_type: "solar-water-heater".into(),
                model: Some("SWH-300".into()),
                serial: None,
                location: Some("Roof, block A".into()),
            },
            code: "tank_leak".into(),
            severity: Some(severity),
            title: "Tank level falling with no draw".into(),
            description: None,
            opened_at: time("2026-11-22T10:04:00+08:00")?,
            sla: None,
            coverage: None,
            diagnosis: None,
            checklist: vec![],
            due_at: None,
            evidence: vec![],
            occurrence: Some(1),
            replacement_recommended: false,
        })
    }

    /// Opening `ticket`, keyed by its id.
    pub(crate) fn open(ticket: NewTicket) -> OutboxEntry {
        OutboxEntry {
            key: ticket.ticket_id.clone(),
            request: Request::Open { ticket: ticket.into() },
        }
    }

    /// An event on `device`'s ticket, keyed `{ticket id}/{label}`.
    pub(crate) fn event(device: &str, label: &str, kind: EventKind) -> anyhow::Result<OutboxEntry> {
        let ticket_id = format!("huaihai-138/{device}/tank_leak/1");
        let at = time("2026-11-22T10:30:00+08:00")?;
        Ok(OutboxEntry {
            key: format!("{ticket_id}/{label}"),
            request: Request::Event { ticket_id, event: TicketEvent { kind, at, note: None } },
        })
    }

    /// Small delays so retries take milliseconds; small batches and lanes so batch
    /// and lane edges are crossed.
    pub(crate) fn fast() -> DispatcherConfig {
        DispatcherConfig {
            batch: 5,
            in_flight: 2,
            poll_interval: Duration::from_millis(50),
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(20)),
        }
    }

    /// A dispatcher running in a task.
    pub(crate) struct Running {
        /// Its counters.
        pub(crate) status: DispatcherStatus,
        /// Wakes it.
        pub(crate) notify: Arc<Notify>,
        stop: oneshot::Sender<()>,
        task: JoinHandle<()>,
    }

    impl Running {
        pub(crate) fn start(
            store: &Store,
            client: CentralClient,
            config: DispatcherConfig,
        ) -> Self {
            let notify = Arc::new(Notify::new());
            let dispatcher = Dispatcher::new(store.clone(), client, Arc::clone(&notify), config);
            let status = dispatcher.status();
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(dispatcher.run(async move {
                let _ = stopped.await;
            }));
            Self { status, notify, stop, task }
        }

        /// Shuts it down; it must return promptly.
        pub(crate) async fn stop(self) -> anyhow::Result<()> {
            let _ = self.stop.send(());
            tokio::time::timeout(Duration::from_secs(5), self.task).await??;
            Ok(())
        }
    }

    /// Polls `condition` until it holds or the deadline passes.
    pub(crate) async fn eventually(
        what: &str,
        mut condition: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        while !condition() {
            anyhow::ensure!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Three tickets with events, interleaved as the pipeline would queue them.
    fn three_tickets() -> anyhow::Result<Vec<OutboxEntry>> {
        Ok(vec![
            open(fault("swh-01", 2)?),
            open(fault("swh-02", 3)?),
            event("swh-01", "recurred-2", EventKind::Recurred { count: 2 })?,
            open(fault("swh-03", 4)?),
            event("swh-02", "escalated-1", EventKind::Escalated { severity: 1 })?,
            event("swh-03", "recovered", EventKind::Recovered)?,
            event("swh-01", "recovered", EventKind::Recovered)?,
        ])
    }

    /// What the service must hold after `three_tickets`, in order.
    fn three_tickets_keys() -> Vec<(String, Vec<String>)> {
        let id = |d: &str| format!("huaihai-138/{d}/tank_leak/1");
        vec![
            (
                id("swh-01"),
                vec![format!("{}/recurred-2", id("swh-01")), format!("{}/recovered", id("swh-01"))],
            ),
            (id("swh-02"), vec![format!("{}/escalated-1", id("swh-02"))]),
            (id("swh-03"), vec![format!("{}/recovered", id("swh-03"))]),
        ]
    }

    #[tokio::test]
    async fn delivers_everything_in_order_exactly_once() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        let agent = Agent::new()?;
        let entries = three_tickets()?;
        agent.queue(&entries)?;
        // No polling: only the start and the notification can wake it.
        let config = DispatcherConfig { poll_interval: Duration::from_secs(3600), ..fast() };
        let running = Running::start(&agent.store, client(&central, TOKEN)?, config);
        // The counters follow the durable removal: wait for both.
        eventually("the outbox is empty and counted", || {
            agent.store.outbox_len() == 0 && {
                let s = running.status.snapshot();
                s.sent == 7
            }
        })
        .await?;
        assert_eq!(central.control.requests(), 7, "one request per entry, no more");
        let list = central.list().await?;
        assert_eq!(keys(&list), three_tickets_keys());
        let held = agent.store.open_tickets()?;
        for record in &list.tickets {
            assert_eq!(
                held[&record.ticket.ticket_id].number.as_deref(),
                Some(record.number.as_str())
            );
        }
        let swh_02 = list.tickets.iter().find(|t| t.ticket.device.id == "swh-02");
        assert_eq!(swh_02.and_then(|t| t.severity), Some(1), "the escalation arrived");

        // A new commit plus a notification is sent without waiting for a poll.
        let late = event("swh-02", "recovered", EventKind::Recovered)?;
        agent.queue(std::slice::from_ref(&late))?;
        running.notify.notify_one();
        eventually("the late event is delivered", || {
            agent.store.outbox_len() == 0 && running.status.snapshot().sent == 8
        })
        .await?;
        let list = central.list().await?;
        assert_eq!(keys(&list)[1].1.last(), Some(&late.key));
        let status = running.status.snapshot();
        assert_eq!((status.sent, status.retried, status.dead_lettered), (8, 0, 0));
        assert_eq!(status.last_error, None);
        running.stop().await?;
        assert!(agent.store.dead_letters()?.is_empty());
        central.stop().await
    }

    #[tokio::test]
    async fn rides_out_503s_without_duplicates() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        // A count, not a time window: on a loaded machine the first request may come
        // after any window, and the test would see no 503 at all.
        central.control.fail_next(3, StatusCode::SERVICE_UNAVAILABLE, None);
        let agent = Agent::new()?;
        agent.queue(&three_tickets()?)?;
        let running = Running::start(&agent.store, client(&central, TOKEN)?, fast());
        // The counters follow the durable removal: wait for both.
        eventually("the outbox is empty and counted", || {
            agent.store.outbox_len() == 0 && {
                let s = running.status.snapshot();
                s.sent == 7
            }
        })
        .await?;
        assert_eq!(keys(&central.list().await?), three_tickets_keys());
        let status = running.status.snapshot();
        assert!(status.retried > 0, "{status:?}");
        assert_eq!((status.sent, status.consecutive_failures), (7, 0));
        assert!(status.last_error.as_deref().is_some_and(|e| e.contains("503")));
        running.stop().await?;
        central.stop().await
    }

    #[tokio::test]
    async fn honours_retry_after() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        central.control.fail_next(1, StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(1)));
        let agent = Agent::new()?;
        agent.queue(&[open(fault("swh-01", 2)?)])?;
        let start = Instant::now();
        let config = DispatcherConfig {
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_secs(5)),
            ..fast()
        };
        let running = Running::start(&agent.store, client(&central, TOKEN)?, config);
        eventually("the outbox is empty", || agent.store.outbox_len() == 0).await?;
        assert!(start.elapsed() >= Duration::from_secs(1), "retried before Retry-After");
        assert_eq!(central.control.requests(), 2);
        running.stop().await?;
        central.stop().await
    }

    #[tokio::test]
    async fn waits_for_a_service_that_is_not_there_yet() -> anyhow::Result<()> {
        // Reserve a port, then free it: nothing listens there until the service starts.
        let addr = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
        let agent = Agent::new()?;
        agent.queue(&three_tickets()?)?;
        let client = CentralClient::new(&format!("http://{addr}"), TOKEN, Duration::from_secs(2))?;
        let running = Running::start(&agent.store, client, fast());
        eventually("a few attempts failed", || running.status.snapshot().retried >= 3).await?;
        assert_eq!(agent.store.outbox_len(), 7, "nothing dropped");
        let status = running.status.snapshot();
        assert!(status.last_error.as_deref().is_some_and(|e| e.contains("connect")), "{status:?}");

        let central_dir = tempfile::tempdir()?;
        let central = Central::start_on(TcpListener::bind(addr).await?, central_dir.path())?;
        eventually("the outbox is empty", || agent.store.outbox_len() == 0).await?;
        assert_eq!(keys(&central.list().await?), three_tickets_keys());
        running.stop().await?;
        central.stop().await
    }

    #[tokio::test]
    async fn dead_letters_what_the_service_refuses_and_goes_on() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        let agent = Agent::new()?;
        let bad = open(fault("swh-bad", 9)?);
        let bad_event = event("swh-bad", "recovered", EventKind::Recovered)?;
        agent.queue(&[
            open(fault("swh-01", 2)?),
            bad.clone(),
            open(fault("swh-02", 2)?),
            bad_event.clone(),
            event("swh-01", "recovered", EventKind::Recovered)?,
        ])?;
        let running = Running::start(&agent.store, client(&central, TOKEN)?, fast());
        // The counters follow the durable removal: wait for both.
        eventually("the outbox is empty and counted", || {
            agent.store.outbox_len() == 0 && {
                let s = running.status.snapshot();
                s.sent + s.dead_lettered == 5
            }
        })
        .await?;

        let letters = agent.store.dead_letters()?;
        assert_eq!(letters.len(), 2, "{letters:?}");
        assert_eq!(letters[0].entry, bad);
        assert!(letters[0].reason.starts_with("422"), "{}", letters[0].reason);
        assert!(
            letters[0].reason.contains("severity must be 1..=4, got 9"),
            "{}",
            letters[0].reason
        );
        assert_eq!(letters[1].entry, bad_event, "an event on the refused ticket is unknown there");
        assert!(letters[1].reason.starts_with("404"), "{}", letters[1].reason);

        let id = |d: &str| format!("huaihai-138/{d}/tank_leak/1");
        assert_eq!(
            keys(&central.list().await?),
            [(id("swh-01"), vec![format!("{}/recovered", id("swh-01"))]), (id("swh-02"), vec![])]
        );
        let status = running.status.snapshot();
        assert_eq!((status.sent, status.retried, status.dead_lettered), (3, 0, 2));
        assert!(status.last_error.as_deref().is_some_and(|e| e.contains("swh-bad")));
        assert_eq!(agent.store.open_tickets()?[&id("swh-bad")].number, None);
        running.stop().await?;
        central.stop().await
    }

    #[tokio::test]
    async fn a_refused_token_drops_nothing() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        let agent = Agent::new()?;
        agent.queue(&three_tickets()?)?;
        let running = Running::start(&agent.store, client(&central, "wrong-token")?, fast());
        eventually("a few attempts were refused", || {
            let s = running.status.snapshot();
            s.unauthorized && s.retried >= 3
        })
        .await?;
        running.stop().await?;
        assert_eq!(agent.store.outbox_len(), 7, "nothing dropped");
        assert!(agent.store.dead_letters()?.is_empty(), "nothing dead-lettered");
        assert!(central.list().await?.tickets.is_empty());

        // The operator fixes the token and restarts the agent.
        let running = Running::start(&agent.store, client(&central, TOKEN)?, fast());
        eventually("the outbox is empty", || agent.store.outbox_len() == 0).await?;
        assert_eq!(keys(&central.list().await?), three_tickets_keys());
        assert!(!running.status.snapshot().unauthorized);
        running.stop().await?;
        central.stop().await
    }

    #[tokio::test]
    async fn a_restarted_dispatcher_resumes_without_duplicates() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        // Answers come late, after the request took effect: a shutdown then most
        // likely abandons a request the service already committed.
        central.control.delay_for(Duration::from_secs(60), Duration::from_millis(100));
        let agent = Agent::new()?;
        let mut entries = Vec::new();
        for n in 1..=5 {
            let device = format!("swh-{n:02}");
            entries.push(open(fault(&device, 2)?));
            entries.push(event(&device, "recovered", EventKind::Recovered)?);
        }
        agent.queue(&entries)?;
        let running = Running::start(&agent.store, client(&central, TOKEN)?, fast());
        eventually("three are delivered", || agent.store.outbox_len() <= 7).await?;
        running.stop().await?;
        let left = agent.store.outbox_len();
        assert!(left > 0, "stopped mid-way");

        // Restart: a new store handle over the same directory, a new dispatcher.
        central.control.clear();
        let Agent { dir, store } = agent;
        drop(store);
        let agent = Agent { store: Store::open(dir.path(), 4 << 20)?, dir };
        assert_eq!(agent.store.outbox_len(), left, "the outbox survived");
        let running = Running::start(&agent.store, client(&central, TOKEN)?, fast());
        eventually("the outbox is empty", || agent.store.outbox_len() == 0).await?;
        let expected: Vec<(String, Vec<String>)> = entries
            .chunks(2)
            .map(|pair| (pair[0].key.clone(), vec![pair[1].key.clone()]))
            .collect();
        assert_eq!(keys(&central.list().await?), expected, "one ticket and one event per key");
        assert!(agent.store.open_tickets()?.values().all(|t| t.number.is_some()));
        running.stop().await?;
        central.stop().await
    }

    /// `count` tickets, each opened and then recovered, queued in that order.
    fn tickets_with_events(count: usize) -> anyhow::Result<Vec<OutboxEntry>> {
        let mut entries = Vec::new();
        for n in 1..=count {
            entries.push(open(fault(&format!("swh-{n:02}"), 2)?));
        }
        for n in 1..=count {
            entries.push(event(&format!("swh-{n:02}"), "recovered", EventKind::Recovered)?);
        }
        Ok(entries)
    }

    #[tokio::test]
    async fn with_one_in_flight_the_outbox_goes_in_sequence_order() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        central.control.delay_for(Duration::from_secs(60), Duration::from_millis(5));
        let agent = Agent::new()?;
        agent.queue(&three_tickets()?)?;
        let config = DispatcherConfig { in_flight: 1, ..fast() };
        let running = Running::start(&agent.store, client(&central, TOKEN)?, config);
        eventually("the outbox is empty", || agent.store.outbox_len() == 0).await?;
        let list = central.list().await?;
        assert_eq!(keys_by_number(&list), three_tickets_keys(), "numbers follow the outbox");
        assert_eq!(central.control.max_in_flight(), 1);
        running.stop().await?;
        central.stop().await
    }

    /// On a first start every device's overdue inspection is queued at once; a slow
    /// service must not make each of them wait for the one before.
    #[tokio::test]
    async fn other_tickets_go_out_while_one_waits_for_a_slow_answer() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        central.control.delay_for(Duration::from_secs(60), Duration::from_millis(50));
        let agent = Agent::new()?;
        let entries = tickets_with_events(12)?;
        agent.queue(&entries)?;
        let config = DispatcherConfig { batch: 64, in_flight: 4, ..fast() };
        let running = Running::start(&agent.store, client(&central, TOKEN)?, config);
        eventually("the outbox is empty", || agent.store.outbox_len() == 0).await?;
        assert_eq!(central.control.requests(), 24, "one request per entry");
        let most = central.control.max_in_flight();
        assert!((2..=4).contains(&most), "{most} requests in flight at most, want 2 to 4");
        // Each ticket's event arrived after its creation (an event on a ticket the
        // service does not know yet would have been refused and dead-lettered).
        let (opens, events) = entries.split_at(12);
        let expected: Vec<(String, Vec<String>)> =
            opens.iter().zip(events).map(|(o, e)| (o.key.clone(), vec![e.key.clone()])).collect();
        assert_eq!(keys(&central.list().await?), expected);
        assert!(agent.store.dead_letters()?.is_empty());
        running.stop().await?;
        central.stop().await
    }
}
