//! The event loop: the poll task and the ack task, and what they share. All the I/O
//! of the ingest is here; the decisions it acts on are pure: which acks to send
//! ([`AckQueue`]), when to reconnect ([`Reconnect`]).

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rumqttc::QoS;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{debug, error, info, warn};

use super::acks::{AckQueue, Command, PendingAck};
use super::protocol::{Client, EventLoop, Message, Polled};
use super::{AckToken, Delivery, MqttSettings, MqttStats};
use crate::tickets::Backoff;

/// Most queued acks the poll task writes in one go.
const ACK_BATCH: usize = 1024;
/// Longest wait for the socket to take acks written by the poll task.
const ACK_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Ceiling of the first wait between connection attempts.
const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Ceiling of every wait between connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that lasted this long starts the backoff over.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);

/// What the poll task, the ack task and the handles share.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// The ack queue with the connection epoch. The poll task starts a new epoch and
    /// purges the acks in the client's request channel under this lock; the ack task
    /// checks an ack's epoch and hands it to the client under the same lock, so an ack
    /// from an old connection can never reach a new one.
    acks: Mutex<AckQueue>,
    /// Wakes the ack task when something was queued.
    for_ack_task: Notify,
    /// Wakes the poll task when an ack was queued while it waits for room in the
    /// delivery channel (the acks make room at a broker with an in-flight window).
    for_poll_task: Notify,
    /// Signalled whenever the poll task has taken requests off the client's channel:
    /// the ack task waits on it while that channel is full.
    room: Notify,
    /// The poll task has ended: nothing queued now will be sent.
    finished: AtomicBool,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, AckQueue> {
        // Nothing panics while holding the lock; recover the data if it ever did.
        self.acks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an ack or the DISCONNECT and wakes whoever will send it.
    pub(super) fn queue(&self, command: Command) {
        self.lock().push(command);
        self.for_ack_task.notify_one();
        self.for_poll_task.notify_one();
    }

    fn pop(&self) -> Option<Command> {
        self.lock().pop()
    }

    /// Marks the poll task as ended and wakes the ack task so that it ends too.
    pub(super) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.room.notify_one();
        self.for_ack_task.notify_one();
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// The counters so far.
    pub(super) fn stats(&self) -> MqttStats {
        let c = &self.counters;
        MqttStats {
            connects: c.connects.load(Ordering::Relaxed),
            disconnects: c.disconnects.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            acks_sent: c.acks_sent.load(Ordering::Relaxed),
            acks_stale: c.acks_stale.load(Ordering::Relaxed),
        }
    }
}

/// What [`MqttStats`] reports, counted where it happens.
#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    disconnects: AtomicU64,
    messages: AtomicU64,
    acks_sent: AtomicU64,
    acks_stale: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// When to try connecting again: [`Backoff`]'s delays (full jitter), growing with each
/// failed attempt. A connection that held for [`STABLE_CONNECTION`] starts over; one
/// the broker drops at once (another client with our id?) does not, so a flapping
/// connection cannot flood the broker or the log. Pure: the caller passes the time a
/// connection lasted and the random unit.
#[derive(Debug)]
struct Reconnect {
    backoff: Backoff,
    /// Attempts since the backoff last started over.
    attempt: u32,
}

impl Reconnect {
    fn new() -> Self {
        Self { backoff: Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX), attempt: 0 }
    }

    /// A connection that lasted `lasted` was lost.
    fn connection_lost(&mut self, lasted: Duration) {
        if lasted >= STABLE_CONNECTION {
            self.attempt = 0;
        }
    }

    /// The wait before the next attempt, for `unit` drawn uniformly from `[0, 1)`.
    fn next_delay(&mut self, unit: f64) -> Duration {
        let delay = self.backoff.delay_with(self.attempt, None, unit);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }
}

/// The ack task: hands the acks the poll task left (then the final DISCONNECT) to the
/// client's request channel, in order; ends after the DISCONNECT or with the poll task.
pub(super) async fn forward_acks(client: Client, shared: Arc<Shared>) {
    loop {
        let mut queued = pin!(shared.for_ack_task.notified());
        queued.as_mut().enable();
        let Some(command) = shared.pop() else {
            if shared.is_finished() {
                return;
            }
            queued.await;
            // Let a busy poll task take the acks first: it writes them in bulk.
            tokio::task::yield_now().await;
            continue;
        };
        loop {
            let handed = match command {
                Command::Ack(ack) => {
                    let acks = shared.lock();
                    if !acks.is_current(&ack) {
                        add(&shared.counters.acks_stale, 1);
                        true
                    } else if client.try_ack(ack) {
                        add(&shared.counters.acks_sent, 1);
                        true
                    } else {
                        false
                    }
                }
                Command::Disconnect => {
                    if client.try_disconnect() {
                        return;
                    }
                    false
                }
            };
            if handed {
                break;
            }
            // The request channel is full: wait until the poll task took something off
            // it (or has ended, and nothing will be sent any more).
            if shared.is_finished() {
                return;
            }
            shared.room.notified().await;
        }
    }
}

/// The poll task's state.
pub(super) struct Poller {
    event_loop: EventLoop,
    subscription: String,
    /// The broker's address, for the log.
    broker: String,
    shared: Arc<Shared>,
    deliveries: mpsc::Sender<Delivery>,
    /// Acks taken from the queue, reused.
    acks: Vec<PendingAck>,
    stop: watch::Receiver<bool>,
    ready: watch::Sender<bool>,
    /// The current connection's epoch: a copy of the queue's, which only this task
    /// changes (so deliveries are stamped without taking the lock).
    epoch: u64,
}

impl Poller {
    pub(super) fn new(
        event_loop: EventLoop,
        settings: &MqttSettings,
        shared: Arc<Shared>,
        deliveries: mpsc::Sender<Delivery>,
        stop: watch::Receiver<bool>,
        ready: watch::Sender<bool>,
    ) -> Self {
        Self {
            event_loop,
            subscription: settings.subscription.clone(),
            broker: settings.mqtt.url.to_string(),
            shared,
            deliveries,
            acks: Vec::new(),
            stop,
            ready,
            epoch: 0,
        }
    }

    /// Polls, connects, subscribes, delivers and reconnects until stopped (or the
    /// pipeline is gone).
    pub(super) async fn run(mut self) {
        // When the current connection was made; `None`: not connected.
        let mut connected_at: Option<Instant> = None;
        let mut stopping = false;
        // Failed attempts since the last connection, for the log.
        let mut failures: u32 = 0;
        let mut reconnect = Reconnect::new();
        loop {
            stopping |= *self.stop.borrow();
            let polled = if connected_at.is_some() {
                self.write_acks().await;
                // Never cancelled while connected: a half-written packet would corrupt
                // the stream. Shutdown goes through the DISCONNECT request instead.
                self.event_loop.poll().await
            } else if stopping {
                break;
            } else {
                // Connecting: nothing is written yet, so giving up half-way is safe.
                tokio::select! {
                    polled = self.event_loop.poll() => polled,
                    _ = self.stop.wait_for(|s| *s) => continue,
                }
            };
            self.shared.room.notify_one();
            match polled {
                Ok(Polled::ConnAck { session_present }) => {
                    connected_at = Some(Instant::now());
                    add(&self.shared.counters.connects, 1);
                    if failures > 0 {
                        info!(broker = %self.broker, attempts = failures, session_present, "MQTT reconnected");
                    } else {
                        info!(broker = %self.broker, session_present, "MQTT connected");
                    }
                    failures = 0;
                    self.event_loop.queue_subscribe(&self.subscription);
                }
                Ok(Polled::SubAck { granted: Some(qos) }) => {
                    if qos == QoS::AtMostOnce {
                        warn!(filter = %self.subscription, "the MQTT broker granted only QoS 0: messages can be lost");
                    }
                    self.ready.send_replace(true);
                }
                Ok(Polled::SubAck { granted: None }) => {
                    error!(filter = %self.subscription, "the MQTT broker refused the subscription (check its ACL)");
                }
                Ok(Polled::Publish(message)) if !stopping => {
                    let epoch = self.epoch;
                    if !self.deliver(message, epoch).await {
                        stopping = true;
                    }
                }
                Ok(Polled::Disconnected) if stopping => break,
                Ok(_) => {}
                Err(e) => {
                    self.ready.send_replace(false);
                    let buffered = self.event_loop.take_buffered();
                    let old_epoch = self.new_epoch();
                    if let Some(since) = connected_at.take() {
                        reconnect.connection_lost(since.elapsed());
                        add(&self.shared.counters.disconnects, 1);
                        if !stopping {
                            warn!(broker = %self.broker, error = %e, "MQTT connection lost; reconnecting");
                        }
                    } else if failures == 0 {
                        warn!(broker = %self.broker, error = %e, "cannot connect to the MQTT broker; retrying with backoff up to {BACKOFF_MAX:?}");
                    } else {
                        debug!(broker = %self.broker, error = %e, attempt = failures + 1, "MQTT connect failed");
                    }
                    failures = failures.saturating_add(1);
                    // Read before the failure: hand them out (acks of the old connection
                    // are dropped, so a broker that kept the session redelivers them).
                    for message in buffered {
                        if stopping || !self.deliver(message, old_epoch).await {
                            stopping = true;
                            break;
                        }
                    }
                    if stopping {
                        break;
                    }
                    let delay = reconnect.next_delay(rand::random());
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stop.wait_for(|s| *s) => {}
                    }
                }
            }
        }
        self.ready.send_replace(false);
        self.shared.finish();
        debug!(broker = %self.broker, "MQTT ingest stopped");
    }

    /// Starts a new connection epoch: acks of the old one are dropped from now on, and
    /// those already in the request channel are purged. Returns the old epoch.
    fn new_epoch(&mut self) -> u64 {
        let mut acks = self.shared.lock();
        let old = acks.new_connection();
        self.epoch = acks.epoch();
        // rumqttc already cleaned when the connection failed; cleaning again under the
        // lock purges the PUBACKs the ack task queued in between.
        self.event_loop.clean();
        old
    }

    /// Hands a message to the pipeline, waiting while the channel is full. Returns false
    /// when the ingest is stopping or the pipeline is gone (the message stays unacked).
    async fn deliver(&mut self, m: Message, epoch: u64) -> bool {
        let delivery = Delivery {
            topic: m.topic,
            payload: m.payload,
            retained: m.retain,
            redelivered: m.dup,
            ack: AckToken {
                ack: PendingAck::of(m.pkid, m.qos, epoch),
                shared: Arc::clone(&self.shared),
            },
        };
        loop {
            let shared = Arc::clone(&self.shared);
            let acks_queued = shared.for_poll_task.notified();
            let handed = tokio::select! {
                permit = self.deliveries.reserve() => match permit {
                    Ok(permit) => {
                        permit.send(delivery);
                        add(&self.shared.counters.messages, 1);
                        return true;
                    }
                    Err(_) => false,
                },
                // The pipeline committed while the channel is full: send its acks now,
                // they make room at a broker with an in-flight window.
                () = acks_queued => true,
                _ = self.stop.wait_for(|s| *s) => return false,
            };
            if !handed {
                // The receiver is gone: nobody will ack, so leave the broker cleanly.
                self.shared.queue(Command::Disconnect);
                return false;
            }
            self.write_acks().await;
        }
    }

    /// Writes the queued acks of the current connection straight to the socket (MQTT
    /// 3.1.1), one flush for all. Acks of an earlier connection are dropped (counted
    /// as stale). Acks not written (the socket took nothing for a while, or failed) go
    /// back to the queue: sent later on this connection, or dropped as stale once the
    /// next poll reports the connection lost (the broker then redelivers).
    async fn write_acks(&mut self) {
        if !self.event_loop.writes_acks() {
            return;
        }
        let mut acks = std::mem::take(&mut self.acks);
        acks.clear();
        let stale = self.shared.lock().take_acks(ACK_BATCH, &mut acks);
        add(&self.shared.counters.acks_stale, stale);
        let mut written = 0;
        for (i, ack) in acks.iter().enumerate() {
            let failed = match tokio::time::timeout(
                ACK_WRITE_TIMEOUT,
                self.event_loop.write_ack(*ack),
            )
            .await
            {
                Ok(Ok(true)) => {
                    written += 1;
                    continue;
                }
                Ok(Ok(false)) => continue,
                Ok(Err(e)) => e,
                Err(_) => format!("the socket took nothing for {ACK_WRITE_TIMEOUT:?}"),
            };
            debug!(error = %failed, "writing acks failed; they wait in the queue");
            self.shared.lock().requeue(&acks[i..]);
            break;
        }
        self.acks = acks;
        if written > 0 {
            add(&self.shared.counters.acks_sent, written);
            match tokio::time::timeout(ACK_WRITE_TIMEOUT, self.event_loop.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, "flushing acks failed"),
                Err(_) => debug!("the socket took no acks in time"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::mqtt::protocol;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// The waits before the next `n` attempts at their ceilings (unit 1).
    fn ceilings(r: &mut Reconnect, n: usize) -> Vec<Duration> {
        (0..n).map(|_| r.next_delay(1.0)).collect()
    }

    #[test]
    fn reconnect_waits_double_up_to_ten_seconds() {
        let mut r = Reconnect::new();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            ceilings(&mut r, 9),
            [MS(100), MS(200), MS(400), MS(800), MS(1600), MS(3200), MS(6400), secs(10), secs(10)]
        );
        assert_eq!(r.next_delay(0.5), secs(5), "full jitter below the ceiling");
    }

    #[test]
    fn a_stable_connection_starts_the_backoff_over_a_flapping_one_does_not() {
        let mut r = Reconnect::new();
        ceilings(&mut r, 4);
        r.connection_lost(STABLE_CONNECTION - MS(1));
        assert_eq!(r.next_delay(1.0), MS(1600), "dropped at once: keeps backing off");
        r.connection_lost(STABLE_CONNECTION);
        assert_eq!(ceilings(&mut r, 2), [MS(100), MS(200)]);
    }

    /// The requests the ack task put in a 3.1.1 client's channel, moved out of it:
    /// (packet id of each PUBREC, whether a DISCONNECT came last). QoS 2 acks, because
    /// `clean` keeps their PUBRECs (it drops PUBACKs).
    fn drain(event_loop: &mut EventLoop, pubrecs: &mut Vec<u16>) -> bool {
        let EventLoop::V4(l) = event_loop else { panic!("a 3.1.1 client") };
        l.clean();
        let mut disconnected = false;
        for request in l.pending.drain(..) {
            match request {
                rumqttc::Request::PubRec(p) => pubrecs.push(p.pkid),
                rumqttc::Request::Disconnect(_) => disconnected = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        disconnected
    }

    fn ack(pkid: u16, epoch: u64) -> Command {
        Command::Ack(PendingAck { pkid, qos: QoS::ExactlyOnce, epoch })
    }

    #[tokio::test]
    async fn the_ack_task_hands_over_current_acks_then_the_disconnect() {
        let settings = crate::ingest::mqtt::settings::tests::settings();
        let (client, mut event_loop) = protocol::client(&settings, rumqttc::Transport::tcp());
        let shared = Arc::new(Shared::default());
        shared.queue(ack(1, 0));
        shared.lock().new_connection();
        shared.queue(ack(2, 0));
        shared.queue(ack(3, 1));
        shared.queue(Command::Disconnect);
        shared.queue(ack(4, 1));
        tokio::time::timeout(Duration::from_secs(5), forward_acks(client, Arc::clone(&shared)))
            .await
            .expect("the ack task ends after the DISCONNECT");
        let mut pubrecs = Vec::new();
        assert!(drain(&mut event_loop, &mut pubrecs));
        assert_eq!(pubrecs, [3], "acks of the old connection are dropped");
        let stats = shared.stats();
        assert_eq!((stats.acks_sent, stats.acks_stale), (1, 2));
        assert_eq!(shared.pop(), Some(ack(4, 1)), "made after the DISCONNECT: never sent");
    }

    #[tokio::test]
    async fn the_ack_task_waits_for_room_in_the_request_channel_and_keeps_the_order() {
        const N: u16 = 600; // more than twice the channel's capacity
        let settings = crate::ingest::mqtt::settings::tests::settings();
        let (client, mut event_loop) = protocol::client(&settings, rumqttc::Transport::tcp());
        let shared = Arc::new(Shared::default());
        for pkid in 1..=N {
            shared.queue(ack(pkid, 0));
        }
        shared.queue(Command::Disconnect);
        let task = tokio::spawn(forward_acks(client, Arc::clone(&shared)));
        let mut pubrecs = Vec::new();
        let mut disconnected = false;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !disconnected {
            assert!(Instant::now() < deadline, "the ack task is stuck after {pubrecs:?}");
            // What the poll task does: take requests off the channel, signal room.
            disconnected = drain(&mut event_loop, &mut pubrecs);
            shared.room.notify_one();
            tokio::task::yield_now().await;
        }
        task.await.unwrap();
        assert_eq!(pubrecs, (1..=N).collect::<Vec<_>>());
        assert_eq!(shared.stats().acks_sent, u64::from(N));
    }
}
