//! A real SMTP server for the mail tests: aiosmtpd (from the test venv, see
//! scripts/install-test-deps.sh) on a free 127.0.0.1 port, storing what it receives in a
//! maildir that the tests read. Killed when dropped.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::support::free_port;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct SmtpReceiver {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

/// One message as received: the envelope recipient and the decoded text.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    pub to: String,
    pub from: String,
    pub subject: String,
    /// Every header line as received (names as sent), unfolded.
    pub headers: Vec<(String, String)>,
    /// The body, transfer encoding undone, line endings `\n`.
    pub body: String,
}

impl ReceivedMail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rp/python/.venv/bin/python");
    assert!(venv.is_file(), "{} is missing: run ./scripts/install-test-deps.sh", venv.display());
    venv
}

impl SmtpReceiver {
    pub async fn start() -> Self {
        let maildir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            // A folder that does not exist yet: Python's Maildir creates its subfolders only then.
            .arg(maildir.path().join("mail"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let mut receiver = Self { child, port, maildir };
        let deadline = Instant::now() + READY_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = receiver.child.try_wait().unwrap() {
                panic!("aiosmtpd exited with {status}");
            }
            assert!(Instant::now() < deadline, "aiosmtpd not listening after {READY_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        receiver
    }

    /// For `[mail] smtp_url`: plain SMTP to this server.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Everything received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let dir = self.maildir.path().join("mail/new");
        let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> =
            entries.filter_map(Result::ok).map(|e| (e.metadata().and_then(|m| m.modified()).unwrap(), e.path())).collect();
        // Maildir names start with the delivery time in seconds; the modification time
        // orders within a second.
        files.sort();
        files.iter().map(|(_, path)| parse(&std::fs::read_to_string(path).unwrap())).collect()
    }

    /// The messages to `to`, waiting (bounded) until there are at least `count`.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<ReceivedMail> = self.messages().into_iter().filter(|m| m.to.eq_ignore_ascii_case(to)).collect();
            if found.len() >= count {
                return found;
            }
            assert!(Instant::now() < deadline, "{count} message(s) to {to} not received; got {:?}", self.messages());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The messages to `to` now, without waiting.
    pub fn to(&self, to: &str) -> Vec<ReceivedMail> {
        self.messages().into_iter().filter(|m| m.to.eq_ignore_ascii_case(to)).collect()
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal RFC 5322 reader for the single-part text messages Sluis sends.
fn parse(raw: &str) -> ReceivedMail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let get = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default();
    let body = match get("Content-Transfer-Encoding").to_ascii_lowercase().as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body.split_whitespace().collect::<String>()).unwrap()).unwrap(),
        _ => body.to_string(),
    };
    ReceivedMail { to: get("X-RcptTo"), from: get("From"), subject: get("Subject"), body, headers }
}

/// RFC 2045 §6.7: soft line breaks (`=` at the end of a line) and `=XX` octets.
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(octet) = joined.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(octet);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
