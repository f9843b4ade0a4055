//! Test harness: starts the real prismwatch binary on a free port in a temp dir, scrapes it over
//! plain HTTP, and stops it on drop. Peers (node_exporter, promtool) are real Debian programs that
//! `tests/run.sh` installs; a missing one fails the test with the package to install.

#![allow(dead_code)]

pub mod notify;
pub mod servers;
pub mod smtp;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback (bound and released; the race with other processes is benign).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Fails with the Debian package to install when a peer program is missing.
pub fn require_program(program: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{program}` is not installed: run `apt-get install -y {package}` (tests/run.sh does this)"
    );
}

/// A running prismwatch daemon.
pub struct Daemon {
    child: Child,
    pub address: String,
    pub dir: tempfile::TempDir,
    command: Vec<String>,
    env: Vec<(String, String)>,
}

impl Daemon {
    /// Starts the binary with `--listen` on a free port and `--state-dir` in a temp dir, plus
    /// `args`. `config`, when given, is written to `prismwatch.toml` and passed with `--config`.
    pub fn start(config: Option<&str>, args: &[&str]) -> Daemon {
        Daemon::spawn(config, args, true, &[])
    }

    /// Like [`Daemon::start`], with extra environment variables for the daemon.
    pub fn start_with_env(config: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn(config, args, true, env)
    }

    /// Like [`Daemon::start`], but the listen address comes from the config: every `{listen}` in
    /// `config` is replaced by a free address and no `--listen` flag is passed.
    pub fn start_listening_from_config(config: &str, args: &[&str]) -> Daemon {
        Daemon::spawn(Some(config), args, false, &[])
    }

    fn spawn(
        config: Option<&str>,
        args: &[&str],
        listen_flag: bool,
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let address = format!("127.0.0.1:{}", free_port());
        let config = config.map(|c| c.replace("{listen}", &address));
        let config = config.as_deref();
        let mut command = Command::new(env!("CARGO_BIN_EXE_prismwatch"));
        if let Some(config) = config {
            let path = dir.path().join("prismwatch.toml");
            std::fs::write(&path, config).expect("write config");
            command.arg("--config").arg(path);
        }
        let log = std::fs::File::create(dir.path().join("prismwatch.log")).expect("log file");
        if listen_flag {
            command.arg("--listen").arg(&address);
        }
        command
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("PRISMWATCH_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log);
        let child = command.spawn().expect("start prismwatch");
        Daemon {
            child,
            address,
            dir,
            command: std::iter::once(command.get_program())
                .chain(command.get_args())
                .map(|a| a.to_string_lossy().to_string())
                .collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Stops the daemon with SIGTERM and starts it again with the same arguments, state
    /// directory and config file, then waits until it is ready.
    pub fn restart(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(rustix::process::Signal::TERM);
            assert!(
                self.wait_exit(Duration::from_secs(5)).is_some(),
                "no exit within 5 s"
            );
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("prismwatch.log"))
            .expect("log file");
        self.child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("restart prismwatch");
        self.wait_ready();
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        request(&self.address, "POST", path, headers, body).expect("request to prismwatch")
    }

    /// Starts and waits until `/readyz` answers 200.
    pub fn start_ready(config: Option<&str>, args: &[&str]) -> Daemon {
        let mut daemon = Daemon::start(config, args);
        daemon.wait_ready();
        daemon
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("prismwatch.toml")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prismwatch exited with {status}:\n{}", self.logs());
            }
            if get(&self.address, "/readyz", &[]).is_ok_and(|r| r.status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("prismwatch not ready within 20 s:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prismwatch.log")).unwrap_or_default()
    }

    /// GET `/metrics` and parse it.
    pub fn scrape(&self) -> Exposition {
        let response = get(&self.address, "/metrics", &[]).expect("scrape prismwatch");
        assert_eq!(response.status, 200, "{}", response.body);
        Exposition::parse(&response.body)
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        get(&self.address, path, headers).expect("request to prismwatch")
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("pid");
        rustix::process::kill_process(pid, signal).expect("send signal");
    }

    /// Waits for the process to exit and returns its exit code and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(i32, Duration)> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status.code().unwrap_or(-1), started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A background peer process, killed on drop.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something answers HTTP 200 at `address` + `path`.
pub fn wait_http_ok(address: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if get(address, path, &[]).is_ok_and(|r| r.status == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing answered on http://{address}{path} within 20 s");
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub raw_body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 GET over a fresh connection (`Connection: close`).
pub fn get(address: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
    request(address, "GET", path, headers, b"")
}

/// A minimal HTTP/1.1 request with a body, over a fresh connection.
pub fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    // The server may answer (413) before reading a large body; a failed write is not an error.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
        raw_body: body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// A parsed text exposition: samples by `name{labels}` key (labels sorted), and family metadata.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: BTreeMap<String, f64>,
    pub help: BTreeMap<String, String>,
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut exposition = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                exposition.help.insert(name.to_string(), help.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
                exposition.types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let (series, value) = line.rsplit_once(' ').expect("sample line");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    v => v.parse().expect("sample value"),
                };
                exposition.samples.insert(canonical(series), value);
            }
        }
        exposition
    }

    pub fn value(&self, key: &str) -> Option<f64> {
        self.samples.get(&canonical(key)).copied()
    }

    /// Keys of every sample of metric `name`.
    /// The same exposition without one label (to compare with an exporter that lacks it).
    pub fn without_label(&self, label: &str) -> Exposition {
        let strip = |key: &String| {
            let Some((name, rest)) = key.split_once('{') else {
                return key.clone();
            };
            let kept: Vec<&str> = rest
                .trim_end_matches('}')
                .split("\",")
                .map(|l| l.trim_end_matches('"'))
                .filter(|l| !l.is_empty() && !l.starts_with(&format!("{label}=")))
                .collect();
            canonical(&format!(
                "{name}{{{}}}",
                kept.iter()
                    .map(|l| format!("{l}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            ))
        };
        Exposition {
            samples: self.samples.iter().map(|(k, v)| (strip(k), *v)).collect(),
            help: self.help.clone(),
            types: self.types.clone(),
        }
    }

    pub fn keys_of(&self, name: &str) -> Vec<String> {
        self.samples
            .keys()
            .filter(|k| k.split('{').next() == Some(name))
            .cloned()
            .collect()
    }
}

/// `name{b="2",a="1"}` -> `name{a="1",b="2"}`, so keys from different exporters compare equal.
/// An empty label (`database=""`) is dropped: Prometheus treats it as absent, and prismwatch
/// does not write it. Label values containing `","` are not expected in the compared metrics.
pub fn canonical(series: &str) -> String {
    let Some((name, rest)) = series.split_once('{') else {
        return series.to_string();
    };
    let inner = rest.trim_end_matches('}');
    let mut labels: Vec<&str> = inner
        .split("\",")
        .map(|l| l.trim_end_matches('"'))
        .filter(|l| !l.is_empty())
        .filter(|l| !l.split_once('=').is_some_and(|(_, value)| value.is_empty()))
        .collect();
    labels.sort();
    let joined: Vec<String> = labels.iter().map(|l| format!("{l}\"")).collect();
    if joined.is_empty() {
        return name.to_string();
    }
    format!("{name}{{{}}}", joined.join(","))
}

/// Scrapes until `check` holds, or fails after `seconds` with the last exposition and the logs.
pub fn wait_for(
    daemon: &Daemon,
    what: &str,
    seconds: u64,
    check: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut last = Exposition::default();
    while Instant::now() < deadline {
        last = daemon.scrape();
        if check(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let relevant: Vec<String> = last
        .samples
        .iter()
        .filter(|(k, _)| !k.starts_with("node_") && !k.starts_with("process_"))
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    panic!(
        "timed out waiting for {what}\nlast scrape:\n{}\nlogs:\n{}",
        relevant.join("\n"),
        daemon.logs()
    );
}

/// Runs a command to completion and returns its output; panics with its stderr if it fails.
pub fn run_ok(command: &mut Command) -> std::process::Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A test CA and a server certificate it signed for 127.0.0.1/localhost, made with openssl:
/// returns (ca.pem, cert.pem, key.pem) in `dir`. rustls refuses a self-signed certificate used as
/// its own CA, so TLS clients on rustls need this chain.
pub fn make_ca_and_server_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = require_program("openssl", "openssl");
    let path = |name: &str| dir.join(name);
    let run = |args: &[&str]| {
        run_ok(Command::new(&openssl).args(args).current_dir(dir));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=prismwatch test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(path("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n").expect("write ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    (path("ca.pem"), path("cert.pem"), path("key.pem"))
}

/// The Python with the OpenTelemetry SDK and SciPy that tests/run.sh installs in target/pyenv.
pub fn python() -> PathBuf {
    let path = std::env::var_os("PRISMWATCH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run tests/run.sh, which creates it with the OpenTelemetry SDK and SciPy",
        path.display()
    );
    path
}

/// A process's resident set size in bytes, from /proc.
pub fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}
