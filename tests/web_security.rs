//! Optional protections of the endpoints: bearer token, basic auth and TLS, with secrets taken
//! from the environment or a file and never logged.

mod common;

use std::process::Command;

use base64::Engine;
use common::{Daemon, require_program};

#[test]
fn bearer_token_from_the_environment_protects_metrics_but_not_health() {
    // SAFETY of the test: the variable is set for the child only.
    let config = "[web]\nbearer_token = \"env:PRISMWATCH_TEST_TOKEN\"\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("p.toml");
    std::fs::write(&path, config).expect("write");
    let mut daemon = Daemon::start_with_env(
        Some(config),
        &[],
        &[("PRISMWATCH_TEST_TOKEN", "s3cret-token")],
    );
    daemon.wait_ready();
    assert_eq!(daemon.get("/metrics", &[]).status, 401);
    assert_eq!(
        daemon
            .get("/metrics", &[("Authorization", "Bearer wrong")])
            .status,
        401
    );
    let ok = daemon.get("/metrics", &[("Authorization", "Bearer s3cret-token")]);
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("node_cpu_seconds_total"));
    // Auth schemes are case-insensitive (RFC 9110).
    for scheme in ["bearer", "BEARER"] {
        let value = format!("{scheme} s3cret-token");
        let response = daemon.get("/metrics", &[("Authorization", &value)]);
        assert_eq!(response.status, 200, "{scheme}");
    }
    assert_eq!(daemon.get("/healthz", &[]).status, 200);
    assert!(
        !daemon.logs().contains("s3cret-token"),
        "the token leaked into the logs"
    );
}

#[test]
fn basic_auth_with_a_password_file() {
    let secrets = tempfile::tempdir().expect("temp dir");
    let password_file = secrets.path().join("password");
    std::fs::write(&password_file, "pa55word\n").expect("write");
    let config = format!(
        "[web.basic_auth]\nusername = \"prometheus\"\npassword = \"file:{}\"\n",
        password_file.display()
    );
    let daemon = Daemon::start_ready(Some(&config), &["--log-level", "debug"]);
    let credentials = |user_pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    let denied = daemon.get(
        "/metrics",
        &[("Authorization", &credentials("prometheus:nope"))],
    );
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("www-authenticate"),
        Some("Basic realm=\"prismwatch\"")
    );
    let allowed = daemon.get(
        "/metrics",
        &[("Authorization", &credentials("prometheus:pa55word"))],
    );
    assert_eq!(allowed.status, 200);
    assert!(
        !daemon.logs().contains("pa55word"),
        "the password leaked into the logs"
    );
}

#[test]
fn tls_serves_metrics_over_https() {
    let curl = require_program("curl", "curl");
    let certs = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = common::make_ca_and_server_cert(certs.path());
    let config = format!(
        "[web.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let daemon = Daemon::start(Some(&config), &[]);
    let url = format!("https://{}/metrics", daemon.address);
    let mut body = String::new();
    for _ in 0..200 {
        let output = Command::new(&curl)
            .args(["-sS", "--fail", "--cacert"])
            .arg(&ca)
            .arg(&url)
            .output()
            .expect("run curl");
        body = String::from_utf8_lossy(&output.stdout).to_string();
        if output.status.success() && body.contains("node_cpu_seconds_total") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        body.contains("# TYPE node_cpu_seconds_total counter"),
        "no metrics over TLS:\n{}",
        daemon.logs()
    );
    // Plain HTTP on the TLS port is not answered with metrics.
    let plain = common::get(&daemon.address, "/metrics", &[]);
    assert!(plain.map_or(true, |r| r.status != 200));
}
