//! The idle upstream connections: a LIFO stack behind a std `Mutex` (the critical sections
//! are a push, a pop or a short scan; nothing awaits inside), at most `max_idle` deep.
//!
//! * A connection is handed out only while its sender is open and ready (its connection
//!   task has finished the previous exchange and waits for the next request).
//! * One idle for `idle_timeout` is dropped, which closes it: at checkout (its timestamp),
//!   and by a sweep every quarter of `idle_timeout`, so an unused pool does not keep
//!   sockets open forever.
//! * The most recently used connection goes out first: the others age and are swept, so the
//!   pool shrinks back after a burst.

#![allow(clippy::disallowed_types)]

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::Sender;

pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    tx: Sender,
    since: Instant,
}

impl Idle {
    /// Closed by either side, or idle too long: never handed out again.
    fn is_dead(&self, now: Instant, idle_timeout: Duration) -> bool {
        self.tx.is_closed() || now.saturating_duration_since(self.since) >= idle_timeout
    }
}

impl Pool {
    /// An empty pool, and the task that sweeps it while it lives (needs a runtime).
    pub fn start(max_idle: usize, idle_timeout: Duration) -> Arc<Pool> {
        let pool = Arc::new(Pool { idle: Mutex::default(), max_idle, idle_timeout });
        tokio::spawn(sweep_while_alive(Arc::downgrade(&pool), idle_timeout / 4));
        pool
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        // Nothing panics while the lock is held; a poisoned list is still a valid list.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently pooled connection that is ready for a request. Dead ones met on
    /// the way are dropped; open ones not ready yet (their request body still streaming
    /// after the response ended) stay for later.
    pub fn checkout(&self) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.lock();
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].is_dead(now, self.idle_timeout) {
                idle.remove(i);
            } else if idle[i].tx.is_ready() {
                return Some(idle.remove(i).tx);
            }
        }
        None
    }

    /// Pools `tx` after a complete exchange, unless the pool is full (then it is dropped,
    /// which closes the connection) or the connection already closed.
    pub fn put(&self, tx: Sender) {
        if tx.is_closed() {
            return;
        }
        let since = Instant::now();
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(Idle { tx, since });
        }
    }

    /// Drops every dead idle connection.
    fn sweep(&self) {
        let now = Instant::now();
        self.lock().retain(|c| !c.is_dead(now, self.idle_timeout));
    }

    #[cfg(test)]
    pub fn idle(&self) -> usize {
        self.lock().len()
    }
}

async fn sweep_while_alive(pool: Weak<Pool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep(),
            None => return,
        }
    }
}
