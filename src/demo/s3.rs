//! The demo's S3-compatible target: one bucket in memory, `GET`/`HEAD` by
//! presigned URL only. Like S3 it refuses a URL whose signature does not
//! verify, whose credential or scope is foreign, or that has expired — so a
//! browser in the demo sees the same behaviour as against AWS.
//!
//! It re-signs the request with the gate's own [`Presigner`] (the same
//! credentials, as S3 holds the secret too) and compares signatures. That is
//! enough for a demo; the gate's signatures are proven against botocore and
//! against `s3s-fs`, an independent verifier, in `tests/it/media.rs`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use percent_encoding::percent_decode_str;

use crate::media::sigv4::{parse_amz_date, Presigner, Verb};

pub const BUCKET: &str = "prt-demo";
pub const REGION: &str = "us-east-2";

pub struct DemoS3 {
    presigner: Presigner,
    access_key_id: String,
    host: String,
    objects: HashMap<String, Bytes>,
}

impl DemoS3 {
    pub fn new(presigner: Presigner, host: String, objects: HashMap<String, Bytes>) -> DemoS3 {
        let access_key_id = presigner.credentials().access_key_id.clone();
        DemoS3 { presigner, access_key_id, host, objects }
    }

    pub fn handle<B>(&self, req: &Request<B>, now: SystemTime) -> Response<Full<Bytes>> {
        match self.check(req, now) {
            Ok((key, disposition)) => {
                let Some(body) = self.objects.get(&key) else {
                    return error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist.");
                };
                let mut resp =
                    Response::new(Full::new(if req.method() == Method::HEAD { Bytes::new() } else { body.clone() }));
                let h = resp.headers_mut();
                h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/pdf"));
                h.insert(header::CONTENT_LENGTH, body.len().into());
                if let Some(d) = disposition.and_then(|d| header::HeaderValue::from_str(&d).ok()) {
                    h.insert(header::CONTENT_DISPOSITION, d);
                }
                resp
            }
            Err((status, code, message)) => error(status, code, message),
        }
    }

    /// The key and signed content disposition of a valid presigned request.
    #[allow(clippy::type_complexity)]
    fn check<B>(
        &self,
        req: &Request<B>,
        now: SystemTime,
    ) -> Result<(String, Option<String>), (StatusCode, &'static str, &'static str)> {
        let denied = |m| (StatusCode::FORBIDDEN, "AccessDenied", m);
        let verb = match *req.method() {
            Method::GET => Verb::Get,
            Method::HEAD => Verb::Head,
            _ => return Err((StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "Only GET and HEAD.")),
        };
        let encoded = req.uri().path().strip_prefix(&format!("/{BUCKET}/")).ok_or(denied("No such bucket."))?;
        let key = percent_decode_str(encoded).decode_utf8().map_err(|_| denied("Bad key."))?.into_owned();
        let q: HashMap<String, String> =
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
        let get = |k: &str| q.get(k).map(String::as_str);
        if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") || get("X-Amz-SignedHeaders") != Some("host") {
            return Err(denied("Only presigned requests are accepted."));
        }
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        if host != Some(self.host.as_str()) {
            return Err(denied("Wrong host."));
        }
        let date = get("X-Amz-Date").and_then(parse_amz_date).ok_or(denied("Bad X-Amz-Date."))?;
        let stamp = get("X-Amz-Date").unwrap_or_default();
        let scope = format!("{}/{}/{REGION}/s3/aws4_request", self.access_key_id, &stamp[..8]);
        if get("X-Amz-Credential") != Some(scope.as_str()) {
            return Err(denied("The access key or scope is not ours."));
        }
        let expires: u64 = get("X-Amz-Expires").and_then(|e| e.parse().ok()).ok_or(denied("Bad X-Amz-Expires."))?;
        if expires > 604_800 {
            return Err(denied("X-Amz-Expires must be less than a week."));
        }
        if now > date + Duration::from_secs(expires) {
            return Err(denied("Request has expired."));
        }
        if date > now + Duration::from_secs(900) {
            return Err(denied("Request is not yet valid."));
        }
        let disposition = get("response-content-disposition").map(str::to_owned);
        let params: Vec<(&'static str, &str)> =
            disposition.as_deref().map(|d| vec![("response-content-disposition", d)]).unwrap_or_default();
        let expected = self.presigner.presign(verb, &key, Duration::from_secs(expires), date, &params);
        let expected_sig = expected.rsplit("X-Amz-Signature=").next().unwrap_or_default();
        let given = get("X-Amz-Signature").unwrap_or_default();
        // Constant-time comparison: no early exit on the first differing byte.
        let same = expected_sig.len() == given.len()
            && expected_sig.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same {
            return Err(denied("SignatureDoesNotMatch"));
        }
        Ok((key, disposition))
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>\n"
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/xml"));
    resp
}

/// A one-page PDF (valid cross-reference table) for the demo bill of lading.
pub fn sample_pdf() -> Vec<u8> {
    let text = "BT /F1 20 Tf 72 720 Td (Bill of Lading PRT-2025-0002) Tj \
                0 -32 Td /F1 12 Tf (PrimeTrade Logistics - demo document) Tj \
                0 -20 Td (Served by the demo S3 target through a presigned URL from prt-gate.) Tj ET";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_owned(),
        format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, obj) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{obj}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    pdf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::sigv4::{Credentials, Target};
    use crate::secret::Secret;

    fn s3() -> (DemoS3, Presigner) {
        let creds = || Credentials {
            access_key_id: "AKIADEMO".into(),
            secret_access_key: Secret::new("demo-secret-for-unit-tests".into()),
            session_token: None,
            expires_at: None,
        };
        let ep = url::Url::parse("http://127.0.0.1:9999").unwrap_or_else(|e| panic!("{e}"));
        let target = || Target::new(BUCKET, REGION, Some(&ep), true);
        let objects = HashMap::from([("bols/a b.pdf".to_owned(), Bytes::from(sample_pdf()))]);
        let s3 = DemoS3::new(Presigner::new(creds(), REGION, target()), "127.0.0.1:9999".into(), objects);
        (s3, Presigner::new(creds(), REGION, target()))
    }

    fn req(url: &str) -> Request<()> {
        let u: http::Uri = url.parse().unwrap_or_else(|e| panic!("{e}"));
        let pq = u.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
        Request::get(pq).header("host", "127.0.0.1:9999").body(()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn verifies_presigned_urls_like_s3() {
        let (s3, p) = s3();
        let now = SystemTime::now();
        let url = p.presign(Verb::Get, "bols/a b.pdf", Duration::from_secs(60), now, &[]);
        let ok = s3.handle(&req(&url), now);
        assert_eq!(ok.status(), StatusCode::OK);
        // Tampered signature, another key, expired, or missing object.
        let tampered = format!("{}{}", &url[..url.len() - 1], if url.ends_with('0') { '1' } else { '0' });
        assert_eq!(s3.handle(&req(&tampered), now).status(), StatusCode::FORBIDDEN);
        let other = url.replace("a%20b.pdf", "c.pdf");
        assert_eq!(s3.handle(&req(&other), now).status(), StatusCode::FORBIDDEN);
        assert_eq!(s3.handle(&req(&url), now + Duration::from_secs(61)).status(), StatusCode::FORBIDDEN);
        let missing = p.presign(Verb::Get, "bols/none.pdf", Duration::from_secs(60), now, &[]);
        assert_eq!(s3.handle(&req(&missing), now).status(), StatusCode::NOT_FOUND);
        // Unsigned access is refused.
        assert_eq!(
            s3.handle(&req("http://127.0.0.1:9999/prt-demo/bols/a%20b.pdf"), now).status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn sample_pdf_has_a_consistent_xref() {
        let pdf = sample_pdf();
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.starts_with("%PDF-1.4\n") && text.ends_with("%%EOF\n"));
        let startxref: usize =
            text.rsplit("startxref\n").next().and_then(|t| t.lines().next()?.parse().ok()).unwrap_or(0);
        assert!(text[startxref..].starts_with("xref\n"));
        for (i, line) in text[startxref..].lines().skip(3).take(5).enumerate() {
            let off: usize = line[..10].parse().unwrap_or(0);
            assert!(text[off..].starts_with(&format!("{} 0 obj", i + 1)), "object {}", i + 1);
        }
    }
}
