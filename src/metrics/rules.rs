//! Per-rule decision counters: `prt_gate_rule_decisions_total{rule,role,decision}`.
//!
//! A [`RuleTable`] is built once per policy version (at start and on every reload) with
//! one cell per rule slot × role × decision. A cell binds to its series in the family the
//! first time it is hit (so only series that happened are exported), and from then on a
//! request costs an index computation and one atomic add — no hashing, no lock, no
//! allocation. Series of rules that a reload removed are dropped from the family, so the
//! series set stays within (rules + 3) × 5 roles × 6 decisions of the policy in force
//! (docs/metrics.md).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use super::Decision;
use crate::policy::{Policy, Role};

/// The `role` label: the four roles, and `none` (anonymous or an unknown role).
pub const ROLE_LABELS: [&str; 5] = ["Admin", "Office", "Operator", "Client", "none"];

/// Labels of one per-rule series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
    pub role: &'static str,
    pub decision: &'static str,
}

pub fn role_index(role: Option<Role>) -> usize {
    role.map_or(ROLE_LABELS.len() - 1, |r| r as usize)
}

/// The cells of one policy version.
#[derive(Debug)]
pub struct RuleTable {
    /// The policy this table counts for; requests under another version take the slow path.
    pub(super) policy: Arc<Policy>,
    /// The [`RuleCounters`] it belongs to (`RuleCounters::id`).
    owner: u64,
    labels: Vec<String>,
    cells: Box<[OnceLock<Counter>]>,
}

const PER_SLOT: usize = ROLE_LABELS.len() * Decision::ALL.len();

impl RuleTable {
    fn new(policy: Arc<Policy>, owner: u64) -> RuleTable {
        let labels: Vec<String> = (0..policy.slot_count()).filter_map(|s| policy.slot_label(s)).collect();
        let cells = (0..labels.len() * PER_SLOT).map(|_| OnceLock::new()).collect();
        RuleTable { policy, owner, labels, cells }
    }

    fn index(slot: usize, role: usize, decision: Decision) -> usize {
        slot * PER_SLOT + role * Decision::ALL.len() + decision as usize
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Slots of this table: `(label, counts[role][decision])` in slot order, for `/status`.
    pub fn counts(&self) -> Vec<(&str, [[u64; Decision::ALL.len()]; ROLE_LABELS.len()])> {
        let mut out = Vec::with_capacity(self.labels.len());
        for (slot, label) in self.labels.iter().enumerate() {
            let mut c = [[0; Decision::ALL.len()]; ROLE_LABELS.len()];
            for (role, row) in c.iter_mut().enumerate() {
                for d in Decision::ALL {
                    row[d as usize] = self.cells[Self::index(slot, role, d)].get().map_or(0, Counter::get);
                }
            }
            out.push((label.as_str(), c));
        }
        out
    }
}

/// The family and the table in force.
#[derive(Debug)]
pub struct RuleCounters {
    pub(super) family: Family<RuleLabels, Counter>,
    table: arc_swap::ArcSwapOption<RuleTable>,
    /// Tells this instance's tables from another's in the per-thread cache.
    id: u64,
}

impl Default for RuleCounters {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        RuleCounters { family: Family::default(), table: Default::default(), id: NEXT.fetch_add(1, Ordering::Relaxed) }
    }
}

thread_local! {
    /// The table this thread used last: a request under the same policy version then
    /// reads it without touching the shared pointer (no atomic read-modify-write).
    static CACHED: RefCell<Option<Arc<RuleTable>>> = const { RefCell::new(None) };
}

impl RuleCounters {
    /// Makes `policy` the version in force: a new table whose cells take over the
    /// counters of rules that carry over (their counts go on), and removes the series
    /// of rules the new policy no longer has (the previous table's bound cells are
    /// exactly the series that exist, but for the rare one bound by a request that
    /// was still running under an older version during a reload).
    pub fn adopt(&self, policy: &Arc<Policy>) {
        let old = self.table.load_full();
        if old.as_ref().is_some_and(|t| Arc::ptr_eq(&t.policy, policy)) {
            return;
        }
        let table = RuleTable::new(policy.clone(), self.id);
        if let Some(old) = old {
            let slots: HashMap<&str, usize> = table.labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
            for (slot, label) in old.labels.iter().enumerate() {
                for (role, role_label) in ROLE_LABELS.iter().enumerate() {
                    for d in Decision::ALL {
                        let Some(counter) = old.cells[RuleTable::index(slot, role, d)].get() else { continue };
                        match slots.get(label.as_str()) {
                            Some(&to) => {
                                let _ = table.cells[RuleTable::index(to, role, d)].set(counter.clone());
                            }
                            None => {
                                let labels = RuleLabels { rule: label.clone(), role: role_label, decision: d.as_str() };
                                self.family.remove(&labels);
                            }
                        }
                    }
                }
            }
        }
        self.table.store(Some(Arc::new(table)));
    }

    /// Counts one decision of the policy `policy` (the version the request ran under).
    pub fn record(&self, policy: &Arc<Policy>, slot: usize, role: Option<Role>, decision: Decision) {
        let role = role_index(role);
        let counted = CACHED.try_with(|cached| {
            let Ok(mut cached) = cached.try_borrow_mut() else { return false };
            let current = |t: &Arc<RuleTable>| t.owner == self.id && Arc::ptr_eq(&t.policy, policy);
            if !cached.as_ref().is_some_and(current) {
                *cached = self.table.load_full().filter(current);
            }
            let Some(t) = cached.as_ref() else { return false };
            if let (Some(cell), Some(label)) = (t.cells.get(RuleTable::index(slot, role, decision)), t.labels.get(slot))
            {
                cell.get_or_init(|| self.bind(label.clone(), role, decision)).inc();
            }
            true
        });
        // A request that began under another version than the one adopted (a reload
        // swapped tables meanwhile): rare, so the label is built and looked up.
        if counted != Ok(true) {
            if let Some(label) = policy.slot_label(slot) {
                self.bind(label, role, decision).inc();
            }
        }
    }

    fn bind(&self, rule: String, role: usize, decision: Decision) -> Counter {
        self.family.get_or_create_owned(&RuleLabels { rule, role: ROLE_LABELS[role], decision: decision.as_str() })
    }

    /// The table in force (for `/status`).
    pub fn table(&self) -> Option<Arc<RuleTable>> {
        self.table.load_full()
    }
}
