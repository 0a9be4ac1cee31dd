//! Per-connection ordering of appends. A connection's requests run concurrently, but Kafka
//! appends pipelined Produce requests in the order they arrived, and clients rely on it for
//! per-partition order. Each Produce request takes a ticket when it is read; its handler waits
//! for its turn before doing anything, and gives the turn up once its batches are in the shard's
//! open segment, before waiting for the commit.

use std::cell::Cell;
use std::rc::Rc;

use event_listener::Event;

#[derive(Default)]
pub struct AppendOrder {
    issued: Cell<u64>,
    serving: Cell<u64>,
    turn: Event,
}

impl AppendOrder {
    /// The next ticket, in arrival order.
    pub fn ticket(self: &Rc<Self>) -> Ticket {
        let n = self.issued.get();
        self.issued.set(n + 1);
        Ticket {
            order: self.clone(),
            n,
        }
    }
}

/// A place in a connection's append order. Dropping it gives the turn to the next ticket;
/// a ticket must have waited for its turn before it is dropped (see [`Ticket::wait`]).
pub struct Ticket {
    order: Rc<AppendOrder>,
    n: u64,
}

impl Ticket {
    /// Waits until every earlier ticket of the connection has given up its turn.
    pub async fn wait(&self) {
        loop {
            if self.order.serving.get() == self.n {
                return;
            }
            let listener = self.order.turn.listen();
            if self.order.serving.get() == self.n {
                return;
            }
            listener.await;
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Only the ticket being served moves the queue on: a ticket dropped before its turn
        // (its connection closing) leaves it to the others, which then never run anyway.
        if self.order.serving.get() == self.n {
            self.order.serving.set(self.n + 1);
            self.order.turn.notify(usize::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_follow_ticket_order() {
        futures::executor::block_on(async {
            let order = Rc::new(AppendOrder::default());
            let first = order.ticket();
            let second = order.ticket();
            let served = Rc::new(Cell::new(Vec::new()));
            let s2 = served.clone();
            let later = async move {
                second.wait().await;
                let mut v = s2.take();
                v.push(2);
                s2.set(v);
            };
            let s1 = served.clone();
            let earlier = async move {
                first.wait().await;
                let mut v = s1.take();
                v.push(1);
                s1.set(v);
                drop(first);
            };
            futures::join!(later, earlier);
            assert_eq!(served.take(), vec![1, 2]);
        });
    }
}
