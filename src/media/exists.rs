//! The optional existence check (`media.check_exists`): a presigned `HEAD`
//! of the object before the gate hands out a URL, so a missing document is a
//! 404 from the gate rather than an XML error page from S3, and an S3 outage
//! is a 503 rather than a redirect to nowhere.
//!
//! Results are cached briefly per key (found: [`FOUND_TTL`], missing:
//! [`MISSING_TTL`]) in a bounded map; failures are never cached.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;

pub const FOUND_TTL: Duration = Duration::from_secs(30);
pub const MISSING_TTL: Duration = Duration::from_secs(5);
/// Entries kept at most; the map is cleared when full (a cache, not a store).
const CAPACITY: usize = 10_000;
/// Connect + answer deadline for one `HEAD`.
pub const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existence {
    Found,
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExistsError {
    #[error("S3 unreachable")]
    Unreachable,
    #[error("S3 did not answer in time")]
    Timeout,
    #[error(
        "S3 answered {0} to HEAD (403: the gate's credentials lack s3:GetObject, or s3:ListBucket for missing keys)"
    )]
    Status(StatusCode),
}

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

pub struct ExistsCheck {
    client: Client<Connector, Empty<Bytes>>,
    cache: Mutex<HashMap<String, (Instant, Existence)>>,
}

impl ExistsCheck {
    pub fn new() -> Result<ExistsCheck, std::io::Error> {
        let connector =
            hyper_rustls::HttpsConnectorBuilder::new().with_native_roots()?.https_or_http().enable_http1().build();
        Ok(ExistsCheck { client: Client::builder(TokioExecutor::new()).build(connector), cache: Mutex::default() })
    }

    /// A fresh cached answer for `key`, if any.
    pub async fn cached(&self, key: &str, now: Instant) -> Option<Existence> {
        let cache = self.cache.lock().await;
        let (at, e) = cache.get(key)?;
        let ttl = if *e == Existence::Found { FOUND_TTL } else { MISSING_TTL };
        (now.duration_since(*at) < ttl).then_some(*e)
    }

    /// Sends the presigned `HEAD` `url` for `key` (unless a cached answer is
    /// fresh) and caches a definite answer.
    pub async fn check(&self, key: &str, url: impl FnOnce() -> String) -> Result<Existence, ExistsError> {
        if let Some(e) = self.cached(key, Instant::now()).await {
            return Ok(e);
        }
        let req = Request::builder()
            .method(Method::HEAD)
            .uri(url())
            .body(Empty::new())
            .map_err(|_| ExistsError::Unreachable)?;
        let resp = tokio::time::timeout(TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| ExistsError::Timeout)?
            .map_err(|_| ExistsError::Unreachable)?;
        let existence = match resp.status() {
            s if s.is_success() => Existence::Found,
            StatusCode::NOT_FOUND => Existence::Missing,
            s => return Err(ExistsError::Status(s)),
        };
        let mut cache = self.cache.lock().await;
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(key.to_owned(), (Instant::now(), existence));
        Ok(existence)
    }
}
