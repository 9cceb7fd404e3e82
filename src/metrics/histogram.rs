//! A lock-free latency histogram that `prometheus-client` encodes.
//!
//! `prometheus_client::metrics::histogram::Histogram` takes a write lock per
//! observation; the request path observes twice per request, so the gate keeps
//! fixed-bucket atomics and only hands them to the encoder at scrape time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds in seconds (`le`), shared by every latency histogram of the gate.
pub const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
struct Inner {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Seconds histogram over [`BUCKETS`]. Clones share the same counts.
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<Inner>);

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Relaxed);
        self.0.count.fetch_add(1, Relaxed);
        self.0.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Relaxed)
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0); BUCKETS.len() + 1];
        for (i, slot) in buckets.iter_mut().enumerate() {
            // The encoder writes `+Inf` for `f64::MAX` and accumulates the counts.
            *slot = (BUCKETS.get(i).copied().unwrap_or(f64::MAX), self.0.buckets[i].load(Relaxed));
        }
        let sum = self.0.sum_micros.load(Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, self.count(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
