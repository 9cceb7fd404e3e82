//! The last refused requests, for the `/status` page: a bounded ring of
//! role, method, normalized path and rule. Never the user, never the query.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
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

#[derive(Debug, Default)]
pub struct Recent(Mutex<VecDeque<RecentRefusal>>);

impl Recent {
    pub fn push(&self, r: RecentRefusal) {
        let mut q = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() == CAPACITY {
            q.pop_back();
        }
        q.push_front(r);
    }

    /// Newest first.
    pub fn snapshot(&self) -> Vec<RecentRefusal> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }
}
