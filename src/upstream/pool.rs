//! The idle upstream connections: a LIFO stack behind a std `Mutex` (the critical sections
//! are a push, a pop or a short scan; nothing awaits inside), at most `max_idle` deep.
//!
//! * A connection is handed out only while it has nothing to read ([`Conn::is_stale`]:
//!   the upstream has not closed it, it has not failed, no unasked bytes arrived).
//! * One idle for `idle_timeout` is dropped, which closes it: at checkout (its timestamp),
//!   and by a sweep every quarter of `idle_timeout` (which also drops the stale ones), so
//!   an unused pool does not keep sockets open forever.
//! * The most recently used connection goes out first: the others age and are swept, so the
//!   pool shrinks back after a burst.

#![allow(clippy::disallowed_types)]

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::conn::Conn;

pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl Idle {
    fn expired(&self, now: Instant, idle_timeout: Duration) -> bool {
        now.saturating_duration_since(self.since) >= idle_timeout
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

    /// The most recently pooled connection that is still good. Expired and stale ones met
    /// on the way are dropped (the socket is looked at outside the lock).
    pub fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        loop {
            let idle = self.lock().pop()?;
            if !idle.expired(now, self.idle_timeout) && !idle.conn.is_stale() {
                return Some(idle.conn);
            }
        }
    }

    /// Pools `conn` after a complete exchange, unless the pool is full (then it is
    /// dropped, which closes the connection).
    pub fn put(&self, conn: Conn) {
        let since = Instant::now();
        let mut idle = self.lock();
        if idle.len() < self.max_idle {
            idle.push(Idle { conn, since });
        }
    }

    /// Drops every expired or stale idle connection.
    fn sweep(&self) {
        let now = Instant::now();
        self.lock().retain(|c| !c.expired(now, self.idle_timeout) && !c.conn.is_stale());
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
