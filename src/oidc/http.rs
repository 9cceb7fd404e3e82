//! The gate's HTTP client to the SSO (token exchange, JWKS, userinfo).
//!
//! HTTPS with the platform's root certificates; plain HTTP only to loopback
//! (the dev SSO). Every call has a deadline; bodies are size-capped.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, thiserror::Error)]
pub enum SsoHttpError {
    #[error("SSO URL must be https:// (http:// only to loopback)")]
    InsecureUrl,
    #[error("cannot load TLS root certificates")]
    Tls,
    #[error("SSO unreachable")]
    Unreachable,
    #[error("SSO did not answer in time")]
    Timeout,
    #[error("SSO answered {0}")]
    Status(StatusCode),
    #[error("SSO response too large or unreadable")]
    Body,
}

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

#[derive(Clone)]
pub struct SsoHttp {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

const MAX_BODY: usize = 256 * 1024;

impl SsoHttp {
    pub fn new(timeout: Duration) -> Result<Self, SsoHttpError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|_| SsoHttpError::Tls)?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(SsoHttp { client: Client::builder(TokioExecutor::new()).build(connector), timeout })
    }

    /// Sends `req` (whose URI must pass [`check_url`]) and returns status and body.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), SsoHttpError> {
        check_url(&req.uri().to_string())?;
        let fut = async {
            let resp = self.client.request(req).await.map_err(|_| SsoHttpError::Unreachable)?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY).collect().await.map_err(|_| SsoHttpError::Body)?;
            Ok((status, body.to_bytes()))
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| SsoHttpError::Timeout)?
    }

    pub async fn get(&self, url: &str) -> Result<Bytes, SsoHttpError> {
        let req = Request::get(url).body(Full::new(Bytes::new())).map_err(|_| SsoHttpError::InsecureUrl)?;
        let (status, body) = self.send(req).await?;
        if !status.is_success() {
            return Err(SsoHttpError::Status(status));
        }
        Ok(body)
    }
}

/// HTTPS anywhere; HTTP only to a loopback host.
pub fn check_url(url: &str) -> Result<(), SsoHttpError> {
    let u = url::Url::parse(url).map_err(|_| SsoHttpError::InsecureUrl)?;
    match u.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&u) => Ok(()),
        _ => Err(SsoHttpError::InsecureUrl),
    }
}

pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_https_or_loopback_http() {
        for (url, ok) in [
            ("https://sso.barge2rail.com/o/token/", true),
            ("http://127.0.0.1:9000/o/token/", true),
            ("http://localhost:9000/o/token/", true),
            ("http://[::1]:9000/o/token/", true),
            ("http://sso.barge2rail.com/o/token/", false),
            ("http://10.0.0.1/o/token/", false),
            ("ftp://127.0.0.1/", false),
        ] {
            assert_eq!(super::check_url(url).is_ok(), ok, "{url}");
        }
    }
}
