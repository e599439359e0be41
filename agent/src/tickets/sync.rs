//! Ticket sync: polls the central service for the tickets the agent holds open and
//! tells the pipeline which ones staff closed.
//!
//! Every `interval`, for each ticket in [`Store::open_tickets`] that has a number
//! (its creation was delivered), one `GET /api/v1/tickets/{id}`, one at a time (a
//! site holds few open tickets; sequential requests keep the load on the service
//! predictable). A ticket whose status is `closed` becomes a [`TicketClosed`] on the
//! channel the pipeline consumes; the pipeline ends the episode (or resets the
//! inspection schedule from `closed_at`) and removes the ticket from the store. The
//! sync itself never writes to the store.
//!
//! An inspection ticket seen `in_progress` (the technician is on site), and later
//! seen no longer so, becomes an [`InspectionProgress`] on its own channel: the
//! pipeline keeps the device under maintenance meanwhile (maintenance.md section 8).
//! Reported when it changes, best effort (a full channel is tried again next round).
//!
//! Only `closed` ends an episode, not `resolved`: `resolved` means the service
//! believes the work is done and a person has still to confirm it. Until then the
//! ticket stays the episode's ticket, so a condition that comes back is reported
//! as `recurred` on it rather than opening a second ticket.
//!
//! Delivery to the pipeline is at least once: a closed ticket is reported once per
//! run of the sync, and again after a restart if the pipeline had not removed it
//! yet. The pipeline ignores a [`TicketClosed`] for a ticket it no longer holds.
//!
//! Failures: a 404 (the service lost the ticket) is logged once and the ticket is
//! skipped; other refusals likewise, and a 2xx answer that cannot be read (it is
//! about that ticket only: the others are still asked). No answer, 5xx, 429 or a
//! refused token ends the round; the next one starts after `interval` plus an
//! exponential, jittered extra delay (at least the server's `Retry-After`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use tokio::sync::mpsc;

use super::backoff::Backoff;
use super::client::{CentralClient, SendError};
use super::dispatcher::{TOKEN_REFUSED, blocking};
use super::model::Status;
use crate::store::{Store, TicketSubject};

/// A ticket staff closed at the central service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketClosed {
    /// The agent's ticket id.
    pub ticket_id: String,
    /// The device it concerns.
    pub device: String,
    /// The fault episode or inspection it was about.
    pub subject: TicketSubject,
    /// When it was closed, as staff stated it (the service's clock when it did not
    /// say).
    pub closed_at: jiff::Timestamp,
    /// What staff wrote on closing.
    pub resolution: Option<String>,
}

/// A ticket the central service shows acknowledged (or further along) for the
/// first time in this run: the archive's response time (an upper bound: when the
/// sync saw it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketAcknowledged {
    /// The agent's ticket id.
    pub ticket_id: String,
    /// The device it concerns.
    pub device: String,
    /// When the sync saw it.
    pub seen_at: jiff::Timestamp,
}

/// An inspection ticket went `in_progress` at the central service, or left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectionProgress {
    /// The agent's ticket id.
    pub ticket_id: String,
    /// The device it concerns.
    pub device: String,
    /// Whether it is `in_progress` now.
    pub in_progress: bool,
    /// When the sync saw it.
    pub seen_at: jiff::Timestamp,
}

/// How the sync paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// Time between two rounds.
    pub interval: Duration,
    /// Extra delay after a failed round, growing with consecutive failures.
    pub backoff: Backoff,
}

impl Default for SyncConfig {
    /// A round a minute; after failures up to 10 more minutes.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            backoff: Backoff::new(Duration::from_secs(10), Duration::from_secs(600)),
        }
    }
}

/// How a round ended.
enum Round {
    /// Every ticket was looked at.
    Done,
    /// The service is unavailable; wait at least `after`.
    Failed {
        /// The server's `Retry-After`.
        after: Option<Duration>,
    },
    /// Shutdown, or the pipeline is gone.
    Stop,
}

/// Polls the central service for closed tickets; see the module docs.
pub struct TicketSync {
    /// The agent's store (read only).
    store: Store,
    /// The central service.
    client: CentralClient,
    /// Where closed tickets go.
    closed: mpsc::Sender<TicketClosed>,
    /// Where acknowledged tickets go, if anywhere.
    acknowledged: Option<mpsc::Sender<TicketAcknowledged>>,
    /// Tickets reported acknowledged in this run.
    acked: HashSet<String>,
    /// Where inspection tickets' `in_progress` changes go, if anywhere.
    progress: Option<mpsc::Sender<InspectionProgress>>,
    /// The `in_progress` state last reported per inspection ticket in this run.
    progress_sent: HashMap<String, bool>,
    /// Pacing.
    config: SyncConfig,
    /// Tickets reported closed in this run (not reported again).
    reported: HashSet<String>,
    /// Tickets the service refused to show, or showed in an answer that cannot be
    /// read (logged once).
    refused: HashSet<String>,
    /// Failed rounds in a row.
    failures: u32,
    /// Inside a refused-token outage (already logged).
    unauthorized: bool,
}

impl TicketSync {
    /// A sync of `store`'s open tickets against the service behind `client`,
    /// reporting closed tickets on `closed`.
    pub fn new(
        store: Store,
        client: CentralClient,
        closed: mpsc::Sender<TicketClosed>,
        config: SyncConfig,
    ) -> Self {
        Self {
            store,
            client,
            closed,
            acknowledged: None,
            acked: HashSet::new(),
            progress: None,
            progress_sent: HashMap::new(),
            config,
            reported: HashSet::new(),
            refused: HashSet::new(),
            failures: 0,
            unauthorized: false,
        }
    }

    /// Also reports tickets first seen acknowledged (or further along) on `tx`.
    pub fn with_acknowledged(mut self, tx: mpsc::Sender<TicketAcknowledged>) -> Self {
        self.acknowledged = Some(tx);
        self
    }

    /// Also reports inspection tickets going `in_progress` and leaving it on `tx`.
    pub fn with_progress(mut self, tx: mpsc::Sender<InspectionProgress>) -> Self {
        self.progress = Some(tx);
        self
    }

    /// Polls until `shutdown` completes or the receiving end of the channel is
    /// dropped. The first round starts at once.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        tracing::info!(interval_s = self.config.interval.as_secs_f64(), "ticket sync started");
        loop {
            let wait = match self.round(&mut shutdown).await {
                Round::Stop => break,
                Round::Done => {
                    if self.failures > 0 {
                        tracing::info!(
                            failed_rounds = self.failures,
                            "ticket sync: central service reachable again"
                        );
                    }
                    self.failures = 0;
                    self.config.interval
                }
                Round::Failed { after } => {
                    let extra = self.config.backoff.delay(self.failures, after, &mut rand::rng());
                    self.failures = self.failures.saturating_add(1);
                    self.config.interval.saturating_add(extra)
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::info!("ticket sync stopped");
    }

    /// Looks at every delivered open ticket once.
    async fn round<F: Future<Output = ()>>(&mut self, shutdown: &mut Pin<&mut F>) -> Round {
        let tickets = match blocking(&self.store, |s| s.open_tickets()).await {
            Ok(tickets) => tickets,
            Err(error) => {
                let error = format!("{error:#}");
                tracing::error!(%error, "ticket sync: reading the open tickets failed");
                return Round::Failed { after: None };
            }
        };
        // Forget tickets the pipeline has removed.
        self.reported.retain(|id| tickets.contains_key(id));
        self.acked.retain(|id| tickets.contains_key(id));
        self.progress_sent.retain(|id, _| tickets.contains_key(id));
        self.refused.retain(|id| tickets.contains_key(id));
        for (ticket_id, held) in tickets {
            // Not delivered yet: the central service does not know it.
            if !held.delivered && held.number.is_none() {
                continue;
            }
            let number = held.number.unwrap_or_else(|| "(unknown)".to_owned());
            if self.reported.contains(&ticket_id) {
                continue;
            }
            let answer = tokio::select! {
                biased;
                () = &mut *shutdown => return Round::Stop,
                answer = self.client.get(&ticket_id) => answer,
            };
            let status = match answer {
                Ok(status) => status,
                Err(SendError::Rejected { status, reason }) => {
                    if self.refused.insert(ticket_id.clone()) {
                        let what = if status == 404 {
                            "the central service does not know this ticket (lost?); skipping it"
                        } else {
                            "the central service refused to show this ticket; skipping it"
                        };
                        tracing::error!(%ticket_id, %number, %reason, "{what}");
                    }
                    continue;
                }
                Err(SendError::Unreadable(problem)) => {
                    if self.refused.insert(ticket_id.clone()) {
                        tracing::error!(
                            %ticket_id,
                            %number,
                            %problem,
                            "the central service's answer about this ticket cannot be read; skipping it"
                        );
                    }
                    continue;
                }
                Err(SendError::Retry { after, reason }) => {
                    if self.failures == 0 {
                        tracing::warn!(%reason, "ticket sync: central service unavailable");
                    }
                    return Round::Failed { after };
                }
                Err(SendError::Unauthorized { status, reason }) => {
                    if !self.unauthorized {
                        self.unauthorized = true;
                        tracing::error!(status, %reason, "{TOKEN_REFUSED}");
                    }
                    return Round::Failed { after: None };
                }
            };
            self.unauthorized = false;
            if self.refused.remove(&ticket_id) {
                tracing::info!(%ticket_id, %number, "the central service shows this ticket again");
            }
            if let (Some(tx), TicketSubject::Inspection { .. }) = (&self.progress, &held.subject) {
                let now = status.status == Status::InProgress;
                if self.progress_sent.get(&ticket_id) != Some(&now) {
                    let p = InspectionProgress {
                        ticket_id: ticket_id.clone(),
                        device: held.device.clone(),
                        in_progress: now,
                        seen_at: jiff::Timestamp::now(),
                    };
                    if tx.try_send(p).is_ok() {
                        self.progress_sent.insert(ticket_id.clone(), now);
                    }
                }
            }
            if status.status != Status::Closed {
                if status.status != Status::Open
                    && let Some(tx) = &self.acknowledged
                    && !self.acked.contains(&ticket_id)
                {
                    let ack = TicketAcknowledged {
                        ticket_id: ticket_id.clone(),
                        device: held.device.clone(),
                        seen_at: jiff::Timestamp::now(),
                    };
                    // Best effort: the archive's response time, not worth blocking for.
                    if tx.try_send(ack).is_ok() {
                        self.acked.insert(ticket_id);
                    }
                }
                continue;
            }
            let closed_at = match status.closed_at {
                Some(at) => at.timestamp(),
                None => {
                    tracing::warn!(%ticket_id, %number, "closed without closed_at; using now");
                    jiff::Timestamp::now()
                }
            };
            let device = &held.device;
            tracing::info!(%ticket_id, %number, %device, %closed_at, "ticket closed by staff");
            let closed = TicketClosed {
                ticket_id: ticket_id.clone(),
                device: held.device,
                subject: held.subject,
                closed_at,
                resolution: status.resolution.clone(),
            };
            let sent = tokio::select! {
                biased;
                () = &mut *shutdown => return Round::Stop,
                sent = self.closed.send(closed) => sent,
            };
            if sent.is_err() {
                tracing::warn!("ticket sync: the pipeline is gone; stopping");
                return Round::Stop;
            }
            self.reported.insert(ticket_id);
        }
        Round::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, TicketRef};
    use crate::tickets::dispatcher::tests::{
        Agent, Central, DEADLINE, Running, TOKEN, client, eventually, fast, fault, open, time,
    };
    use crate::tickets::model::CloseRequest;

    #[tokio::test]
    async fn reports_a_closed_ticket_once() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        let agent = Agent::new()?;
        let closing = fault("swh-01", 2)?;
        let staying = fault("swh-02", 2)?;
        agent.queue(&[open(closing.clone()), open(staying.clone())])?;
        let dispatcher = Running::start(&agent.store, client(&central, TOKEN)?, fast());
        eventually("both are delivered", || agent.store.outbox_len() == 0).await?;
        dispatcher.stop().await?;
        // A ticket the service lost (404) and one not delivered yet (no number).
        let held = |number: Option<&str>| TicketRef {
            device: "swh-09".into(),
            subject: TicketSubject::Inspection { plan: "semiannual".into() },
            number: number.map(str::to_owned),
            delivered: number.is_some(),
        };
        let batch = Batch {
            tickets: vec![
                ("lost".into(), Some(held(Some("T-999999")))),
                ("pending".into(), Some(held(None))),
            ],
            ..Batch::default()
        };
        let receipt = agent.store.commit(&batch)?;
        agent.store.sync(receipt)?;

        let staff = client(&central, TOKEN)?;
        let closed_at = time("2026-11-23T15:30:00+08:00")?;
        let close =
            CloseRequest { resolution: "gasket replaced".into(), closed_at: closed_at.clone() };
        staff.close(&closing.ticket_id, &close).await?;
        staff.acknowledge(&staying.ticket_id).await?;

        let (tx, mut rx) = mpsc::channel(4);
        let config = SyncConfig {
            interval: Duration::from_millis(20),
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(20)),
        };
        let sync = TicketSync::new(agent.store.clone(), client(&central, TOKEN)?, tx, config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sync.run(async move {
            let _ = stopped.await;
        }));
        let got = tokio::time::timeout(DEADLINE, rx.recv()).await?;
        let expected = TicketClosed {
            ticket_id: closing.ticket_id.clone(),
            device: "swh-01".into(),
            subject: TicketSubject::Fault { code: "tank_leak".into(), episode: 1 },
            closed_at: closed_at.timestamp(),
            resolution: Some("gasket replaced".into()),
        };
        assert_eq!(got, Some(expected));

        // Several more rounds (2 GETs each: a reported ticket is not asked again): the
        // acknowledged ticket and the lost one produce nothing, the closed one is
        // not reported twice.
        let seen = central.control.requests();
        eventually("more rounds ran", || central.control.requests() >= seen + 9).await?;
        assert!(rx.try_recv().is_err(), "nothing more reported");

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), task).await??;
        central.stop().await
    }

    #[tokio::test]
    async fn stops_when_the_pipeline_is_gone() -> anyhow::Result<()> {
        let central_dir = tempfile::tempdir()?;
        let central = Central::start(central_dir.path()).await?;
        let agent = Agent::new()?;
        let ticket = fault("swh-01", 2)?;
        agent.queue(&[open(ticket.clone())])?;
        let dispatcher = Running::start(&agent.store, client(&central, TOKEN)?, fast());
        eventually("it is delivered", || agent.store.outbox_len() == 0).await?;
        dispatcher.stop().await?;
        let close = CloseRequest {
            resolution: "done".into(),
            closed_at: time("2026-11-23T15:30:00+08:00")?,
        };
        client(&central, TOKEN)?.close(&ticket.ticket_id, &close).await?;
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let sync = TicketSync::new(
            agent.store.clone(),
            client(&central, TOKEN)?,
            tx,
            SyncConfig::default(),
        );
        tokio::time::timeout(DEADLINE, sync.run(std::future::pending())).await?;
        central.stop().await
    }
}
