//! The last refused requests, for the `/status` page: a bounded ring of
//! role, method, normalized path and rule. Never the user, never the query.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use std::time::SystemTime;

/// How many refusals `/status` keeps.
pub const CAPACITY: usize = 50;
/// Longest path kept (longer ones are cut, on a character boundary, with `…`).
const MAX_PATH: usize = 200;

#[derive(Debug, Clone)]
pub struct RecentRefusal {
    pub at: SystemTime,
    /// `Admin` … `Client`, or `none`.
    pub role: &'static str,
    pub method: String,
    /// The normalized path (after redaction), without the query.
    pub path: String,
    pub rule: Arc<str>,
    /// `deny`, `redirect` or `login`.
    pub decision: &'static str,
}

impl RecentRefusal {
    pub fn new(role: &'static str, method: &str, path: &str, rule: Arc<str>, decision: &'static str) -> Self {
        let path = match path.char_indices().nth(MAX_PATH) {
            Some((cut, _)) => format!("{}…", &path[..cut]),
            None => path.to_owned(),
        };
        RecentRefusal { at: SystemTime::now(), role, method: method.to_owned(), path, rule, decision }
    }
}

/// A lock-free ring: a writer takes the next slot and swaps its entry in.
#[derive(Debug)]
pub struct Recent {
    slots: [ArcSwapOption<RecentRefusal>; CAPACITY],
    /// Entries written so far; the next one goes to `next % CAPACITY`.
    next: AtomicUsize,
}

impl Default for Recent {
    fn default() -> Self {
        Recent { slots: std::array::from_fn(|_| ArcSwapOption::empty()), next: AtomicUsize::new(0) }
    }
}

impl Recent {
    pub fn push(&self, r: RecentRefusal) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % CAPACITY;
        self.slots[i].store(Some(Arc::new(r)));
    }

    /// Newest first (order among entries written at the same instant may vary).
    pub fn snapshot(&self) -> Vec<RecentRefusal> {
        let next = self.next.load(Ordering::Relaxed);
        (1..=CAPACITY.min(next))
            .filter_map(|back| self.slots[(next - back) % CAPACITY].load_full())
            .map(|r| RecentRefusal::clone(&r))
            .collect()
    }
}
