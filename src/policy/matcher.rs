//! The compiled path matcher: a segment trie (like matchit's radix tree, one edge per
//! segment) from patterns to route slots, built once per policy version.
//!
//! Lookup walks the normalized path segment by segment, trying at every node the exact
//! child first, then the `{param}` child, then the `{*tail}` slot, and backtracking when a
//! branch dead-ends. The first route found is therefore the most specific one, compared
//! segment by segment (exact > parameter > catch-all). Every trie node sits at a fixed
//! depth, so each node is visited at most once per lookup: the cost is bounded by the
//! trie, not exponential in the path.
//!
//! Trailing slash (Django `APPEND_SLASH`): where the path ends without `/`, a pattern
//! ending there without `/` wins, else one ending there with `/` (Django would redirect
//! `/x` to `/x/`, which that rule governs). A path ending with `/` only matches patterns
//! ending with `/` (or a catch-all, which takes the slash with the tail).
//!
//! Lookups borrow the path and return a `u32`: no allocation, no I/O.

use super::pattern::{Pattern, Segment};

/// Index of a route slot (the caller's table).
pub type Slot = u32;

#[derive(Debug, Default, Clone)]
struct Node {
    /// Exact children, sorted by segment text for binary search.
    exact: Vec<(Box<str>, u32)>,
    param: Option<u32>,
    /// A pattern whose `{*tail}` starts at this node.
    catch_all: Option<Slot>,
    /// A pattern ending at this node without a trailing slash.
    end: Option<Slot>,
    /// A pattern ending at this node with a trailing slash.
    end_slash: Option<Slot>,
}

/// Pattern → slot trie.
#[derive(Debug, Clone)]
pub struct Trie {
    nodes: Vec<Node>,
}

impl Default for Trie {
    fn default() -> Self {
        Trie { nodes: vec![Node::default()] }
    }
}

impl Trie {
    /// Inserts `pattern` for `slot`. Patterns of the same shape (see
    /// [`Pattern::same_shape`]) share one position: the slot already there is returned as
    /// `Err` and nothing changes.
    pub fn insert(&mut self, pattern: &Pattern, slot: Slot) -> Result<(), Slot> {
        let mut node = 0usize;
        for seg in pattern.segments() {
            match seg {
                Segment::Exact(text) => {
                    let children = &self.nodes[node].exact;
                    node = match children.binary_search_by(|(t, _)| (**t).cmp(text)) {
                        Ok(i) => children[i].1 as usize,
                        Err(i) => {
                            let child = self.push();
                            self.nodes[node].exact.insert(i, (text.clone(), child));
                            child as usize
                        }
                    };
                }
                Segment::Param(_) => {
                    node = match self.nodes[node].param {
                        Some(c) => c as usize,
                        None => {
                            let child = self.push();
                            self.nodes[node].param = Some(child);
                            child as usize
                        }
                    };
                }
                Segment::CatchAll(_) => return fill(&mut self.nodes[node].catch_all, slot),
            }
        }
        let n = &mut self.nodes[node];
        fill(if pattern.has_trailing_slash() { &mut n.end_slash } else { &mut n.end }, slot)
    }

    fn push(&mut self) -> u32 {
        self.nodes.push(Node::default());
        (self.nodes.len() - 1) as u32
    }

    /// The most specific slot whose pattern matches `path` (a normalized path, starting
    /// with `/`). No allocation.
    pub fn find(&self, path: &str) -> Option<Slot> {
        self.walk(0, path.strip_prefix('/').unwrap_or(path))
    }

    /// `rest` is the path after the `/` that ends the part already matched.
    fn walk(&self, node: usize, rest: &str) -> Option<Slot> {
        let n = &self.nodes[node];
        if rest.is_empty() {
            // The path ended with `/` here.
            return n.end_slash;
        }
        let (seg, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        if let Ok(i) = n.exact.binary_search_by(|(t, _)| (**t).cmp(seg)) {
            if let Some(s) = self.after(n.exact[i].1 as usize, tail) {
                return Some(s);
            }
        }
        if let Some(c) = n.param {
            if let Some(s) = self.after(c as usize, tail) {
                return Some(s);
            }
        }
        // `rest` is non-empty and normalized paths have no empty segments before the
        // end, so the tail holds at least one segment.
        n.catch_all
    }

    fn after(&self, child: usize, tail: Option<&str>) -> Option<Slot> {
        match tail {
            Some(t) => self.walk(child, t),
            // The path ended without `/`: exact pattern first, then APPEND_SLASH.
            None => {
                let c = &self.nodes[child];
                c.end.or(c.end_slash)
            }
        }
    }
}

fn fill(place: &mut Option<Slot>, slot: Slot) -> Result<(), Slot> {
    match place {
        Some(existing) => Err(*existing),
        None => {
            *place = Some(slot);
            Ok(())
        }
    }
}
