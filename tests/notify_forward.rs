//! Forwarding to a real Alertmanager (Debian's prometheus-alertmanager): alerts fired by the
//! agent while the Alertmanager is down reach it once it is up, with the agent's `instance`,
//! a generator URL and an end time, and a resolution reaches it too.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::notify::{now_s, window_rule};
use common::{Daemon, free_port, require_program};

/// A private Alertmanager on a free port, cluster off, storage in a temp dir.
struct Alertmanager {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(port: u16) -> Alertmanager {
        let program = require_program("prometheus-alertmanager", "prometheus-alertmanager");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
        )
        .expect("config");
        let child = Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        common::wait_http_ok(&format!("127.0.0.1:{port}"), "/-/ready");
        Alertmanager {
            child,
            port,
            _dir: dir,
        }
    }

    /// Alertmanager's own view of its alerts (resolved ones included).
    fn alerts(&self) -> Vec<serde_json::Value> {
        let response = common::get(
            &format!("127.0.0.1:{}", self.port),
            "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true",
            &[],
        )
        .expect("ask alertmanager");
        serde_json::from_str::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn alerts_queued_while_the_alertmanager_is_down_reach_it_and_resolve() {
    let work = tempfile::tempdir().expect("tempdir");
    let port = free_port(); // nothing listens yet
    let start = now_s();
    let short = window_rule(work.path(), "Short", start - 10, start + 8);
    let long = window_rule(work.path(), "Long", start - 10, start + 3600);
    let config = format!(
        "rules = [{short:?}, {long:?}]\nexternal_labels = {{ instance = \"web-1\" }}\n[host]\nenabled = false\n[alerting]\nalertmanagers = [\"http://127.0.0.1:{port}\"]\n"
    );
    let daemon = Daemon::start_ready(Some(&config), &[]);
    std::thread::sleep(Duration::from_secs(2));
    let alertmanager = Alertmanager::start(port);

    let deadline = Instant::now() + Duration::from_secs(30);
    let names = |alerts: &[serde_json::Value]| -> Vec<String> {
        let mut names: Vec<String> = alerts
            .iter()
            .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    };
    loop {
        let alerts = alertmanager.alerts();
        if names(&alerts) == ["Long", "Short"] {
            for alert in &alerts {
                assert_eq!(alert["labels"]["instance"], "web-1", "{alert}");
                assert_eq!(alert["labels"]["severity"], "page", "{alert}");
                let url = alert["generatorURL"].as_str().unwrap_or_default();
                assert!(url.contains("/graph?g0.expr="), "{alert}");
                assert!(
                    alert["endsAt"]
                        .as_str()
                        .is_some_and(|t| !t.starts_with("0001")),
                    "{alert}"
                );
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alerts did not reach the Alertmanager: {alerts:?}\n{}",
            daemon.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Short's window closes: the Alertmanager learns of the resolution (its API then lists
    // only Long, since it hides resolved alerts).
    let deadline = Instant::now() + Duration::from_secs(30);
    while names(&alertmanager.alerts()) != ["Long"] {
        assert!(
            Instant::now() < deadline,
            "Short did not resolve in the Alertmanager: {:?}",
            alertmanager.alerts()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
