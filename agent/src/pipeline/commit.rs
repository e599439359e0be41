//! Where the pure [`Core`]'s batches go, and the [`Pipeline`]: the core over the store.
//!
//! The core hands each batch to a [`Commit`]: [`Collect`] keeps them (tests, anything
//! that wants the batches themselves), the pipeline writes them to the store as they
//! come (a slice of due timers at a time, so memory stays bounded) and returns an
//! [`Applied`]: the receipt of its last commit, which [`Applied::sync`] turns into the
//! [`Durable`] proof that acknowledging needs.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::plugins::PluginSet;
use crate::store::{
    ArchiveEntry, Batch, Committed, DeviceEntry, Durable, OutboxEntry, Store, StoreError,
    TicketSubject, archive::SiteArchive,
};

use super::{
    Clock, CompleteError, Core, Counters, Incoming, MaintenanceError, PluginReport, SetupError,
};

/// Takes the core's batches in the order they must be written.
pub trait Commit {
    /// One batch: a device's record, its tickets and outbox entries are always in the
    /// same batch.
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError>;
}

/// Keeps every batch, in order.
#[derive(Debug, Default)]
pub struct Collect(pub Vec<Batch>);

impl Commit for Collect {
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        self.0.push(batch);
        Ok(())
    }
}

/// Writes batches to a store as they come.
struct ToStore<'a> {
    store: &'a Store,
    receipt: Committed,
    queued: usize,
    /// The requests queued, when the caller wants them (replay, tests).
    requests: Option<Vec<OutboxEntry>>,
}

impl<'a> ToStore<'a> {
    fn new(store: &'a Store, keep_requests: bool) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            receipt: store.commit(&Batch::default())?,
            queued: 0,
            requests: keep_requests.then(Vec::new),
        })
    }

    fn applied(self) -> Applied {
        Applied { receipt: self.receipt, queued: self.queued }
    }
}

impl Commit for ToStore<'_> {
    fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        self.receipt = self.store.commit(&batch)?;
        self.queued += batch.outbox.len();
        if let Some(requests) = &mut self.requests {
            requests.extend(batch.outbox);
        }
        Ok(())
    }
}

/// What one call wrote: the receipt of its last commit (covering the earlier ones)
/// and how many requests it queued for the central service.
#[must_use = "what was applied is not durable until it is synced"]
#[derive(Debug)]
pub struct Applied {
    receipt: Committed,
    /// Requests queued in the outbox.
    pub queued: usize,
}

impl Applied {
    /// Makes it durable; the proof is what acks and answers need.
    pub fn sync(self, store: &Store) -> Result<Durable, StoreError> {
        store.sync(self.receipt)
    }
}

/// The pipeline over its store: loads the devices at start, commits every batch the
/// core produces. Live (`tend run`) and replay (`tend replay`) drive the same code.
pub struct Pipeline {
    core: Core,
    store: Store,
}

impl Pipeline {
    /// Builds the live pipeline ([`Clock::Live`]); loads device records and plugin
    /// states from the store and commits the first records of new schedules.
    /// `start_ms`: when a device that never publishes starts counting toward offline.
    pub fn new(
        config: &Config,
        plugins: PluginSet,
        store: Store,
        start_ms: i64,
    ) -> Result<Self, SetupError> {
        Self::with_clock(config, plugins, store, start_ms, Clock::Live)
    }

    /// [`Pipeline::new`] with the given clock: [`Clock::Replay`] for `tend replay`,
    /// whose `start_ms` is the trace's first `ts`.
    pub fn with_clock(
        config: &Config,
        plugins: PluginSet,
        store: Store,
        start_ms: i64,
        clock: Clock,
    ) -> Result<Self, SetupError> {
        let stored: BTreeMap<String, DeviceEntry> = store.devices()?;
        let mut out = ToStore::new(&store, false)?;
        let mut core = Core::new(config, plugins, stored, start_ms, clock, &mut out)?;
        if let Some(site) = store.site_alarms()? {
            core.restore_site(&site);
        }
        let _written = out.applied();
        Ok(Self { core, store })
    }

    /// The pure core.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.core.counters()
    }

    /// Each plugin's version, health and call counters.
    pub fn plugin_report(&self) -> Vec<PluginReport> {
        self.core.plugin_report()
    }

    /// The MQTT subscription for the site.
    pub fn subscription(&self) -> String {
        self.core.subscription()
    }

    /// Processes messages and the timers due by then ([`Core::step`]) and commits;
    /// returns the requests queued, in order. Not synced: for replay and tests.
    pub fn process(&mut self, msgs: Vec<Incoming>) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = ToStore::new(&self.store, true)?;
        self.core.step(msgs, &mut out)?;
        Ok(out.requests.unwrap_or_default())
    }

    /// [`Pipeline::process`] for the live agent: holds no request in memory and
    /// returns the receipt to sync before acking.
    pub fn ingest(&mut self, msgs: Vec<Incoming>) -> Result<Applied, StoreError> {
        let mut out = ToStore::new(&self.store, false)?;
        self.core.step(msgs, &mut out)?;
        Ok(out.applied())
    }

    /// Fires every timer due at `now_ms` and commits; returns the requests queued.
    pub fn advance(&mut self, now_ms: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut out = ToStore::new(&self.store, true)?;
        self.core.advance(now_ms, &mut out)?;
        Ok(out.requests.unwrap_or_default())
    }

    /// [`Pipeline::advance`] for the live agent.
    pub fn tick(&mut self, now_ms: i64) -> Result<Applied, StoreError> {
        let mut out = ToStore::new(&self.store, false)?;
        self.core.advance(now_ms, &mut out)?;
        Ok(out.applied())
    }

    /// The central service closed a ticket ([`Core::ticket_closed`]). `None` when the
    /// pipeline no longer holds that ticket (a repeated report).
    pub fn ticket_closed(
        &mut self,
        ticket_id: &str,
        device: &str,
        subject: &TicketSubject,
        closed_ms: i64,
        resolution: Option<&str>,
    ) -> Result<Option<Applied>, StoreError> {
        let mut out = ToStore::new(&self.store, false)?;
        let held =
            self.core.ticket_closed(ticket_id, device, subject, closed_ms, resolution, &mut out)?;
        Ok(held.then(|| out.applied()))
    }

    /// The central service shows a ticket acknowledged ([`Core::ticket_acknowledged`]).
    /// `None` when the archive already noted it.
    pub fn ticket_acknowledged(
        &mut self,
        ticket_id: &str,
        device: &str,
        seen_ms: i64,
    ) -> Result<Option<Applied>, StoreError> {
        let history: Vec<ArchiveEntry> = self.store.archive(device)?;
        let mut out = ToStore::new(&self.store, false)?;
        let new = self.core.ticket_acknowledged(ticket_id, device, seen_ms, &history, &mut out)?;
        Ok(new.then(|| out.applied()))
    }

    /// `tend inspection complete` ([`Core::inspection_completed`]).
    pub fn inspection_completed(
        &mut self,
        device: &str,
        plan: &str,
        at_ms: i64,
        note: Option<&str>,
    ) -> Result<Applied, CompleteError> {
        let mut out = ToStore::new(&self.store, false)?;
        self.core.inspection_completed(device, plan, at_ms, note, &mut out)?;
        Ok(out.applied())
    }

    /// `tend maintenance start` ([`Core::maintenance_start`]): when the window ends.
    pub fn maintenance_start(
        &mut self,
        device: &str,
        at_ms: i64,
        length_ms: Option<i64>,
        note: Option<&str>,
    ) -> Result<(i64, Applied), MaintenanceError> {
        let mut out = ToStore::new(&self.store, false)?;
        let until = self.core.maintenance_start(device, at_ms, length_ms, note, &mut out)?;
        Ok((until, out.applied()))
    }

    /// `tend maintenance end` ([`Core::maintenance_end`]): whether a declared window
    /// ended.
    pub fn maintenance_end(
        &mut self,
        device: &str,
        at_ms: i64,
    ) -> Result<(bool, Applied), MaintenanceError> {
        let mut out = ToStore::new(&self.store, false)?;
        let ended = self.core.maintenance_end(device, at_ms, &mut out)?;
        Ok((ended, out.applied()))
    }

    /// The ticket sync saw an inspection ticket in progress, or no longer
    /// ([`Core::inspection_in_progress`]); `None` when that changed nothing.
    pub fn inspection_in_progress(
        &mut self,
        device: &str,
        ticket_id: &str,
        in_progress: bool,
        at_ms: i64,
    ) -> Result<Option<Applied>, StoreError> {
        let mut out = ToStore::new(&self.store, false)?;
        let changed =
            self.core.inspection_in_progress(device, ticket_id, in_progress, at_ms, &mut out)?;
        Ok(changed.then(|| out.applied()))
    }

    /// Replay and tests: [`Pipeline::maintenance_start`], returning the requests queued.
    pub fn maintenance_start_requests(
        &mut self,
        device: &str,
        at_ms: i64,
        length_ms: Option<i64>,
        note: Option<&str>,
    ) -> Result<Vec<OutboxEntry>, MaintenanceError> {
        let mut out = ToStore::new(&self.store, true)?;
        self.core.maintenance_start(device, at_ms, length_ms, note, &mut out)?;
        Ok(out.requests.unwrap_or_default())
    }

    /// Replay and tests: [`Pipeline::maintenance_end`], returning the requests queued.
    pub fn maintenance_end_requests(
        &mut self,
        device: &str,
        at_ms: i64,
    ) -> Result<Vec<OutboxEntry>, MaintenanceError> {
        let mut out = ToStore::new(&self.store, true)?;
        self.core.maintenance_end(device, at_ms, &mut out)?;
        Ok(out.requests.unwrap_or_default())
    }

    /// The device archive of the site (or of one device), as of `now_ms`.
    pub fn archive(&self, device: Option<&str>, now_ms: i64) -> Result<SiteArchive, StoreError> {
        self.core.archive(device, now_ms, &|id| self.store.archive(id))
    }
}
