//! The ack queue: pure state, no I/O (rumqttc's `state.rs` shape). The tasks in
//! [`super::tasks`] hold it under one lock and do the I/O around it.
//!
//! It holds the acks the pipeline made and the final DISCONNECT, in the order they were
//! made, and the connection generation (*epoch*). An ack names a packet id, and packet
//! ids are per connection: once a connection is gone, its id may name another message
//! on the next one. So every ack carries the epoch of the connection its message came
//! on, and an ack of an earlier connection is dropped (counted as stale), never sent;
//! the broker redelivers that message instead.

use std::collections::VecDeque;

use rumqttc::QoS;

/// The ack of one delivered message (QoS 1 or 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PendingAck {
    /// The packet id the PUBLISH came with.
    pub(super) pkid: u16,
    /// Its QoS: a PUBACK for QoS 1, a PUBREC for QoS 2.
    pub(super) qos: QoS,
    /// The connection it came on.
    pub(super) epoch: u64,
}

impl PendingAck {
    /// The ack a message of `qos` with `pkid` from connection `epoch` needs; `None` for
    /// QoS 0 (nothing to send).
    pub(super) fn of(pkid: u16, qos: QoS, epoch: u64) -> Option<Self> {
        (qos != QoS::AtMostOnce).then_some(Self { pkid, qos, epoch })
    }
}

/// What is queued for the broker, in the order the pipeline made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    /// Acknowledge a message.
    Ack(PendingAck),
    /// Leave the broker (the session stays); always after the acks made before it.
    Disconnect,
}

/// The queue of acks and the final DISCONNECT, and the current connection's epoch.
///
/// Two takers: the poll task takes acks from the front in bulk ([`AckQueue::take_acks`]),
/// the ack task one command at a time ([`AckQueue::pop`]); each command is taken once.
#[derive(Debug, Default)]
pub(super) struct AckQueue {
    queue: VecDeque<Command>,
    /// The current connection's generation; only [`AckQueue::new_connection`] moves it.
    epoch: u64,
}

impl AckQueue {
    /// The current connection's generation.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether `ack` belongs to the current connection (so it may be sent).
    pub(super) fn is_current(&self, ack: &PendingAck) -> bool {
        ack.epoch == self.epoch
    }

    /// Queues a command at the back.
    pub(super) fn push(&mut self, command: Command) {
        self.queue.push_back(command);
    }

    /// Takes the front command (stale acks included: the caller checks
    /// [`AckQueue::is_current`] when it hands the ack over, which may be later).
    pub(super) fn pop(&mut self) -> Option<Command> {
        self.queue.pop_front()
    }

    /// The connection ended: acks queued so far, and any made later for its messages,
    /// are stale from now on. Returns the old epoch.
    pub(super) fn new_connection(&mut self) -> u64 {
        let old = self.epoch;
        self.epoch += 1;
        old
    }

    /// Moves the acks at the front into `out` until `out` holds `max` or a DISCONNECT
    /// comes (it stays for the ack task, after every ack queued before it). Stale acks
    /// are dropped on the way; returns how many.
    pub(super) fn take_acks(&mut self, max: usize, out: &mut Vec<PendingAck>) -> u64 {
        let mut stale = 0;
        while out.len() < max {
            match self.queue.front() {
                Some(Command::Ack(ack)) => {
                    if self.is_current(ack) {
                        out.push(*ack);
                    } else {
                        stale += 1;
                    }
                    self.queue.pop_front();
                }
                Some(Command::Disconnect) | None => break,
            }
        }
        stale
    }

    /// Puts acks taken but not written back at the front, in their order.
    pub(super) fn requeue(&mut self, acks: &[PendingAck]) {
        for ack in acks.iter().rev() {
            self.queue.push_front(Command::Ack(*ack));
        }
    }

    /// Commands queued.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(pkid: u16, epoch: u64) -> PendingAck {
        PendingAck { pkid, qos: QoS::AtLeastOnce, epoch }
    }

    fn pkids(acks: &[PendingAck]) -> Vec<u16> {
        acks.iter().map(|a| a.pkid).collect()
    }

    fn take(q: &mut AckQueue, max: usize) -> (Vec<u16>, u64) {
        let mut out = Vec::new();
        let stale = q.take_acks(max, &mut out);
        (pkids(&out), stale)
    }

    #[test]
    fn qos_0_needs_no_ack() {
        assert_eq!(PendingAck::of(1, QoS::AtMostOnce, 0), None);
        assert_eq!(PendingAck::of(1, QoS::AtLeastOnce, 3), Some(ack(1, 3)));
        let exactly_once = PendingAck::of(2, QoS::ExactlyOnce, 0).map(|a| a.qos);
        assert_eq!(exactly_once, Some(QoS::ExactlyOnce));
    }

    #[test]
    fn acks_go_out_in_the_order_they_were_made() {
        let mut q = AckQueue::default();
        for pkid in 1..=5 {
            q.push(Command::Ack(ack(pkid, 0)));
        }
        assert_eq!(take(&mut q, 3), (vec![1, 2, 3], 0), "at most `max` at once");
        assert_eq!(q.pop(), Some(Command::Ack(ack(4, 0))), "the ack task takes the next one");
        assert_eq!(take(&mut q, 10), (vec![5], 0));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn acks_completed_out_of_order_are_sent_in_completion_order() {
        // The pipeline may finish messages 1..=3 in any order; each ack goes out when it
        // is made (nothing waits for an earlier message's ack).
        let mut q = AckQueue::default();
        for pkid in [3, 1, 2] {
            q.push(Command::Ack(ack(pkid, 0)));
        }
        assert_eq!(take(&mut q, 10), (vec![3, 1, 2], 0));
    }

    #[test]
    fn acks_not_written_go_back_in_order_ahead_of_the_disconnect() {
        let mut q = AckQueue::default();
        for pkid in 1..=3 {
            q.push(Command::Ack(ack(pkid, 0)));
        }
        q.push(Command::Disconnect);
        let mut taken = Vec::new();
        q.take_acks(2, &mut taken);
        assert_eq!(pkids(&taken), [1, 2]);
        q.requeue(&taken[1..]);
        assert_eq!(take(&mut q, 10), (vec![2, 3], 0), "stops at DISCONNECT");
        assert_eq!(take(&mut q, 10), (vec![], 0), "the DISCONNECT stays for the ack task");
        assert_eq!(q.pop(), Some(Command::Disconnect));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_reconnect_makes_the_old_connections_acks_stale() {
        let mut q = AckQueue::default();
        q.push(Command::Ack(ack(1, 0)));
        q.push(Command::Ack(ack(2, 0)));
        assert_eq!(q.new_connection(), 0);
        assert_eq!(q.epoch(), 1);
        // Made after the reconnect, but for a message of the old connection.
        q.push(Command::Ack(ack(3, 0)));
        q.push(Command::Ack(ack(4, 1)));
        assert_eq!(take(&mut q, 10), (vec![4], 3), "only the new connection's ack is sent");
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_redelivery_under_the_same_packet_id_is_acked_once() {
        // Message 7 comes, the connection drops before its ack is sent, the broker
        // redelivers it under the same packet id, and the pipeline acks both copies:
        // one PUBACK goes out, for the copy of the live connection.
        let mut q = AckQueue::default();
        let first = PendingAck::of(7, QoS::AtLeastOnce, q.epoch());
        q.new_connection();
        let again = PendingAck::of(7, QoS::AtLeastOnce, q.epoch());
        for a in [first, again].into_iter().flatten() {
            q.push(Command::Ack(a));
        }
        let mut out = Vec::new();
        assert_eq!(q.take_acks(10, &mut out), 1, "the first copy's ack is stale");
        assert_eq!(out, [ack(7, 1)]);
    }

    #[test]
    fn a_requeued_ack_turns_stale_when_its_connection_ends() {
        let mut q = AckQueue::default();
        q.push(Command::Ack(ack(1, 0)));
        let mut taken = Vec::new();
        q.take_acks(10, &mut taken);
        // The write failed; the connection is lost before the next try.
        q.requeue(&taken);
        q.new_connection();
        assert_eq!(take(&mut q, 10), (vec![], 1));
    }

    #[test]
    fn the_ack_task_sees_whether_a_popped_ack_is_current() {
        let mut q = AckQueue::default();
        q.push(Command::Ack(ack(1, 0)));
        let Some(Command::Ack(popped)) = q.pop() else { unreachable!("an ack was queued") };
        assert!(q.is_current(&popped));
        // The ack task waited for room in the request channel; meanwhile the
        // connection ended.
        q.new_connection();
        assert!(!q.is_current(&popped));
    }
}
