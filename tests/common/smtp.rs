//! A real SMTP server (aiosmtpd, Debian's python3-aiosmtpd) for the notification tests, and the
//! mails it received.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Peer, free_port};

/// One mail as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    /// The value of a header (unfolded), case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

/// The Subject of each mail, in the order received.
pub fn subjects(mails: &[Received]) -> Vec<String> {
    mails
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect()
}

/// A running aiosmtpd with its output file.
pub struct SmtpSink {
    pub port: u16,
    pub out: PathBuf,
    peer: Option<Peer>,
    faults: Vec<String>,
}

impl SmtpSink {
    /// Starts a server on a free port writing to `dir/mails.jsonl`, with fault flags of
    /// `smtp_sink.py` (`--fail-data 1`, `--reject a@x`).
    pub fn start(dir: &Path, faults: &[&str]) -> SmtpSink {
        SmtpSink::start_on(free_port(), dir, faults)
    }

    /// Starts (or restarts) on a given port.
    pub fn start_on(port: u16, dir: &Path, faults: &[&str]) -> SmtpSink {
        let mut sink = SmtpSink {
            port,
            out: dir.join("mails.jsonl"),
            peer: None,
            faults: faults.iter().map(|f| f.to_string()).collect(),
        };
        sink.up();
        sink
    }

    /// Starts the server again on the same port (after [`SmtpSink::down`]).
    pub fn up(&mut self) {
        let python = Path::new("/usr/bin/python3");
        assert!(
            python.exists(),
            "/usr/bin/python3 is missing: apt-get install -y python3-aiosmtpd"
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(self.port.to_string())
            .arg(&self.out)
            .args(&self.faults)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd (apt-get install -y python3-aiosmtpd)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read aiosmtpd's ready line");
        assert_eq!(
            line.trim(),
            "ready",
            "aiosmtpd did not start (is python3-aiosmtpd installed?)"
        );
        self.peer = Some(Peer(child));
    }

    /// Stops the server (the port then refuses connections).
    pub fn down(&mut self) {
        self.peer = None;
    }

    /// Every mail received so far.
    pub fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|v| Received {
                from: v["from"].as_str().unwrap_or("").to_string(),
                to: v["to"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect(),
                data: v["data"].as_str().unwrap_or("").to_string(),
            })
            .collect()
    }

    /// Waits until `check` holds for the mails received, or fails with what arrived.
    pub fn wait_for(
        &self,
        what: &str,
        seconds: u64,
        check: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let mails = self.received();
            if check(&mails) {
                return mails;
            }
            if Instant::now() > deadline {
                let subjects: Vec<String> = mails
                    .iter()
                    .map(|m| format!("{:?} -> {:?}", m.header("Subject"), m.to))
                    .collect();
                panic!("timed out waiting for {what}; received: {subjects:#?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
