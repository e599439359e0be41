//! The pipeline thread's loop: deliveries in batches (group commit), timers, ticket
//! closures and acknowledgements from the sync, site staff's commands.
//!
//! Commit-then-ack is a rule of the types here: a delivery's [`Ack`] and a command's
//! [`Reply`] take a [`Durable`] proof, and the only way to get one is to sync the
//! receipt ([`Applied`]) of the batch that holds their effects. A batch whose commit
//! or sync fails acks nothing: the worker stops with the error and the broker
//! redelivers.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::api::PipelineSnapshot;
use crate::ingest::mqtt::{AckToken, Delivery};
use crate::local::LocalCommand;
use crate::pipeline::{Applied, Incoming, Pipeline};
use crate::store::Durable;
use crate::tickets::TicketClosed;
use crate::tickets::sync::{InspectionProgress, TicketAcknowledged};

use super::{TICK, wall_ms};

/// Acknowledges one message to whoever delivered it, once its effects are durable.
pub trait Ack: Send {
    /// Acknowledges; `proof` shows the batch with the message's effects is durable.
    fn ack(self, proof: &Durable);
}

impl Ack for AckToken {
    fn ack(self, proof: &Durable) {
        AckToken::ack(self, proof);
    }
}

/// A message the worker takes: topic, payload, and its acknowledgement.
pub trait Inbound: Send {
    /// How it is acknowledged.
    type Ack: Ack;
    /// Topic, payload, acknowledgement.
    fn into_parts(self) -> (String, Vec<u8>, Self::Ack);
}

impl Inbound for Delivery {
    type Ack = AckToken;
    fn into_parts(self) -> (String, Vec<u8>, AckToken) {
        (self.topic, self.payload, self.ack)
    }
}

/// Runs `f` with the thread's Tokio context exited. Plugin calls go through
/// wasmtime-wasi's synchronous bindings, which drive their streams with a nested
/// `block_on` (a plugin's panic message written to stderr, for one): inside the
/// worker's own `block_on` that panics ("cannot start a runtime from within a
/// runtime") and took the pipeline thread down.
fn outside_runtime<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// The pipeline thread's state.
pub(super) struct Worker<M> {
    pub(super) pipeline: Pipeline,
    pub(super) deliveries: mpsc::Receiver<M>,
    pub(super) closed: mpsc::Receiver<TicketClosed>,
    pub(super) commands: mpsc::Receiver<LocalCommand>,
    pub(super) acknowledged: mpsc::Receiver<TicketAcknowledged>,
    /// Inspection tickets going `in_progress` and leaving it (maintenance windows).
    pub(super) progress: mpsc::Receiver<InspectionProgress>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) notify: Arc<Notify>,
    /// Counters and plugin health for the log line and the status API.
    pub(super) snapshot: Arc<Mutex<PipelineSnapshot>>,
    pub(super) batch_max: usize,
    pub(super) window: Duration,
}

impl<M: Inbound> Worker<M> {
    /// Until stopped (`Ok`), the ingest ends (`Ok`) or the store fails (`Err`).
    pub(super) async fn run(mut self) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut closed_open = true;
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Ok(()),
                d = self.deliveries.recv() => {
                    let Some(first) = d else { return Ok(()) };
                    let batch = self.gather(first).await;
                    self.commit(batch)?;
                }
                c = self.closed.recv(), if closed_open => match c {
                    Some(c) => self.closed(c)?,
                    None => closed_open = false,
                },
                Some(a) = self.acknowledged.recv() => {
                    let seen = a.seen_at.as_millisecond();
                    let applied = self
                        .pipeline
                        .ticket_acknowledged(&a.ticket_id, &a.device, seen)
                        .with_context(|| format!("recording that ticket {} was acknowledged", a.ticket_id))?;
                    if let Some(applied) = applied {
                        self.durable(applied)?;
                    }
                }
                Some(p) = self.progress.recv() => {
                    let seen = p.seen_at.as_millisecond();
                    let applied = self
                        .pipeline
                        .inspection_in_progress(&p.device, &p.ticket_id, p.in_progress, seen)
                        .with_context(|| format!("recording that inspection {} is in progress or not", p.ticket_id))?;
                    if let Some(applied) = applied {
                        self.durable(applied)?;
                    }
                }
                Some(command) = self.commands.recv() => {
                    if let Some((applied, reply)) =
                        crate::local::apply(&mut self.pipeline, command, wall_ms())
                    {
                        let proof = self.durable(applied)?;
                        reply.send(&proof);
                    }
                }
                _ = tick.tick() => {
                    let pipeline = &mut self.pipeline;
                    let applied =
                        outside_runtime(|| pipeline.tick(wall_ms())).context("firing timers")?;
                    self.durable(applied)?;
                }
            }
        }
    }

    /// The first delivery plus what is waiting, up to `batch_max`, waiting at most
    /// `window` for more.
    async fn gather(&mut self, first: M) -> Vec<M> {
        let mut batch = vec![first];
        let deadline = Instant::now() + self.window;
        while batch.len() < self.batch_max {
            match self.deliveries.try_recv() {
                Ok(d) => batch.push(d),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    if self.window.is_zero() || *self.stop.borrow() {
                        break;
                    }
                    match tokio::time::timeout_at(deadline, self.deliveries.recv()).await {
                        Ok(Some(d)) => batch.push(d),
                        _ => break,
                    }
                }
            }
        }
        batch
    }

    /// Processes and commits the whole batch, makes it durable, then acks it all.
    fn commit(&mut self, batch: Vec<M>) -> anyhow::Result<()> {
        let now = wall_ms();
        let mut incoming = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        for d in batch {
            let (topic, payload, ack) = d.into_parts();
            incoming.push(Incoming { topic, payload, arrival_ms: now });
            acks.push(ack);
        }
        let n = incoming.len();
        let pipeline = &mut self.pipeline;
        let applied = outside_runtime(|| pipeline.ingest(incoming))
            .with_context(|| format!("committing a batch of {n} messages"))?;
        let proof = self.durable(applied)?;
        for ack in acks {
            ack.ack(&proof);
        }
        Ok(())
    }

    /// A ticket staff closed: applied if the pipeline still holds it.
    fn closed(&mut self, c: TicketClosed) -> anyhow::Result<()> {
        let applied = self
            .pipeline
            .ticket_closed(
                &c.ticket_id,
                &c.device,
                &c.subject,
                c.closed_at.as_millisecond(),
                c.resolution.as_deref(),
            )
            .with_context(|| format!("recording that ticket {} was closed", c.ticket_id))?;
        match applied {
            Some(applied) => {
                tracing::info!(ticket = %c.ticket_id, device = %c.device, "ticket closed at the central service");
                self.durable(applied).map(drop)
            }
            None => {
                tracing::debug!(ticket = %c.ticket_id, "closed ticket no longer held; ignored");
                Ok(())
            }
        }
    }

    /// Syncs what was committed; publishes the counters; wakes the dispatcher when
    /// requests were queued.
    fn durable(&mut self, applied: Applied) -> anyhow::Result<Durable> {
        let queued = applied.queued;
        let proof = applied.sync(self.pipeline.store()).context("flushing the store")?;
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = PipelineSnapshot {
            counters: self.pipeline.counters(),
            plugins: self.pipeline.plugin_report(),
        };
        if queued > 0 {
            self.notify.notify_one();
        }
        Ok(proof)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use tend_tests::site::test_site;

    use super::*;
    use crate::config::Config;
    use crate::store::Store;

    /// A message whose ack records what the store held when it came.
    struct Probe {
        topic: String,
        payload: Vec<u8>,
        ack: ProbeAck,
    }

    struct ProbeAck {
        store: Store,
        /// Acks given with the store still holding unsynced commits.
        early: Arc<AtomicUsize>,
        /// Acks given.
        acked: Arc<AtomicUsize>,
    }

    impl Ack for ProbeAck {
        fn ack(self, _proof: &Durable) {
            if self.store.pending_sync() {
                self.early.fetch_add(1, Ordering::SeqCst);
            }
            self.acked.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Inbound for Probe {
        type Ack = ProbeAck;
        fn into_parts(self) -> (String, Vec<u8>, ProbeAck) {
            (self.topic, self.payload, self.ack)
        }
    }

    struct Bench {
        _site: tend_tests::site::TestSite,
        store: Store,
        worker: Worker<Probe>,
        deliveries: mpsc::Sender<Probe>,
        _others: Others,
    }

    /// The senders the bench keeps alive (the worker stops when they close).
    type Others = (
        mpsc::Sender<TicketClosed>,
        mpsc::Sender<LocalCommand>,
        mpsc::Sender<TicketAcknowledged>,
        mpsc::Sender<InspectionProgress>,
        watch::Sender<bool>,
    );

    fn bench() -> Bench {
        let site = test_site("http://127.0.0.1:9", "mqtt://127.0.0.1:9", "").unwrap();
        let config = Config::load(&site.config).unwrap();
        let plugins = crate::app::load_plugins(&config, Some(&config.plugins.cache_dir)).unwrap();
        std::fs::create_dir_all(&config.store.data_dir).unwrap();
        let store = Store::open(&config.store.data_dir, 1 << 20).unwrap();
        let pipeline = Pipeline::new(&config, plugins, store.clone(), wall_ms()).unwrap();
        let (deliveries, deliveries_rx) = mpsc::channel(64);
        let (closed, closed_rx) = mpsc::channel(1);
        let (commands, commands_rx) = mpsc::channel(1);
        let (acknowledged, acknowledged_rx) = mpsc::channel(1);
        let (progress, progress_rx) = mpsc::channel(1);
        let (stop, stop_rx) = watch::channel(false);
        let worker = Worker {
            pipeline,
            deliveries: deliveries_rx,
            closed: closed_rx,
            commands: commands_rx,
            acknowledged: acknowledged_rx,
            progress: progress_rx,
            stop: stop_rx,
            notify: Arc::new(Notify::new()),
            snapshot: Arc::new(Mutex::new(PipelineSnapshot::default())),
            batch_max: 16,
            window: Duration::from_millis(20),
        };
        Bench {
            _site: site,
            store,
            worker,
            deliveries,
            _others: (closed, commands, acknowledged, progress, stop),
        }
    }

    /// `n` overheat readings of `swh-1` (each opens or keeps a fault episode).
    fn readings(
        b: &Bench,
        n: usize,
        early: &Arc<AtomicUsize>,
        acked: &Arc<AtomicUsize>,
    ) -> Vec<Probe> {
        let start = wall_ms();
        (0..n)
            .map(|i| Probe {
                topic: "tend/test-site/swh-1/telemetry".into(),
                payload: serde_json::json!({
                    "ts": jiff::Timestamp::from_millisecond(start + i as i64 * 1000)
                        .unwrap()
                        .to_string(),
                    "collector_temp_c": 100, "tank_temp_c": 97, "tank_level_pct": 90,
                    "inlet_temp_c": 20, "ambient_temp_c": 28, "irradiance_w_m2": 900,
                    "pump_on": true, "circulation_flow_l_min": 8, "draw_flow_l_min": 0,
                    "inlet_valve_open": false, "heater_on": false, "error_code": 0,
                })
                .to_string()
                .into_bytes(),
                ack: ProbeAck {
                    store: b.store.clone(),
                    early: Arc::clone(early),
                    acked: Arc::clone(acked),
                },
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_is_acked_before_its_batch_is_durable() {
        let b = bench();
        let (early, acked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        for p in readings(&b, 40, &early, &acked) {
            b.deliveries.send(p).await.unwrap();
        }
        let Bench { worker, deliveries, store, .. } = b;
        drop(deliveries);
        worker.run().await.unwrap();
        assert_eq!(acked.load(Ordering::SeqCst), 40, "every delivery acked");
        assert_eq!(early.load(Ordering::SeqCst), 0, "an ack came before its batch was synced");
        assert!(!store.pending_sync());
        // What was acked is in the store: the heater's record saw the messages and
        // the overheat ticket is queued.
        assert!(store.outbox_len() >= 1, "the overheat ticket is in the outbox");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_acks_nothing() {
        let b = bench();
        let (early, acked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        b.store.fail_commits();
        for p in readings(&b, 5, &early, &acked) {
            b.deliveries.send(p).await.unwrap();
        }
        let Bench { worker, deliveries, .. } = b;
        drop(deliveries);
        let err = worker.run().await.expect_err("the commit failed");
        assert!(format!("{err:#}").contains("injected"), "{err:#}");
        assert_eq!(acked.load(Ordering::SeqCst), 0, "a delivery of a failed batch was acked");
    }
}
