//! A real S3-compatible store that verifies SigV4, presigned URLs included:
//! `s3s-fs` over a temporary directory, on a port it binds itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;

use super::process::{spawn_until, Pipe};

/// The bucket [`S3::start`] creates and [`S3::env`] names.
pub const BUCKET: &str = "prt-media";

/// Random credentials in AWS's shapes (a secret with `/` and `+`).
pub fn random_credentials() -> (String, String) {
    let mut rng = rand::rng();
    let id = format!("AKIA{}", Alphanumeric.sample_string(&mut rng, 16).to_uppercase());
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let secret: String = (0..40).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect();
    (id, secret)
}

/// A running `s3s-fs` with random credentials, killed on drop.
pub struct S3 {
    child: Child,
    pub addr: SocketAddr,
    root: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub id: String,
    pub secret: String,
}

impl S3 {
    /// A store over a new directory holding an empty [`BUCKET`] (with `bols/2025/`).
    pub fn start() -> S3 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(BUCKET).join("bols/2025")).unwrap();
        let mut s3 = Self::over(dir.path());
        s3._dir = Some(dir);
        s3
    }

    /// A second store over this one's files, accepting other credentials.
    pub fn alongside(&self) -> S3 {
        Self::over(&self.root)
    }

    fn over(root: &Path) -> S3 {
        let (id, secret) = random_credentials();
        let (child, addr) = spawn(0, &id, &secret, root);
        S3 { child, addr, root: root.to_owned(), _dir: None, id, secret }
    }

    /// Kills the server (the fault); `restart` brings it back on the same
    /// port, credentials and files.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.child = spawn(self.addr.port(), &self.id, &self.secret, &self.root).0;
    }

    pub fn put(&self, key: &str, body: &[u8]) {
        let path = self.root.join(BUCKET).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    /// The directory the server keeps buckets in (one folder per bucket).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `http://127.0.0.1:PORT`, and the credentials it accepts.
    pub fn endpoint(&self) -> (String, &str, &str) {
        (format!("http://{}", self.addr), &self.id, &self.secret)
    }

    /// The gate's settings for this store and [`BUCKET`].
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PRT_GATE_MEDIA__BUCKET".into(), BUCKET.into()),
            ("PRT_GATE_MEDIA__ENDPOINT".into(), format!("http://{}", self.addr)),
            ("PRT_GATE_MEDIA__PATH_STYLE".into(), "true".into()),
            ("AWS_ACCESS_KEY_ID".into(), self.id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
        ]
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `s3s-fs` on `port` (0: one it picks) and reads the address it
/// bound from its log line `server is running at http://ADDR`.
fn spawn(port: u16, id: &str, secret: &str, root: &Path) -> (Child, SocketAddr) {
    let mut cmd = Command::new(find_s3s_fs());
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", id, "--secret-key", secret])
        .arg(root)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let ready =
        |line: &str| Some(line.split_once("server is running at http://")?.1.split_whitespace().next()?.parse());
    match spawn_until(cmd, Pipe::Stdout, &Arc::default(), ready) {
        Ok((child, Ok(addr))) => (child, addr),
        Ok((_, Err(e))) => panic!("s3s-fs printed no address: {e}"),
        Err(log) => panic!("s3s-fs exited before listening:\n{log}"),
    }
}

fn find_s3s_fs() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("s3s-fs")).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::var_os("CARGO_HOME").map(|h| PathBuf::from(h).join("bin/s3s-fs")))
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/s3s-fs")));
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!("s3s-fs not found: `cargo install s3s-fs@0.14.1 --features binary --locked` (.ci/run does this)");
}
