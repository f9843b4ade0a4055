//! Forwarding to existing Alertmanagers (`[alerting] alertmanagers`), as Prometheus' notifier
//! does: every alert (firing, and resolved ones for 15 minutes) is POSTed to each
//! Alertmanager's `/api/v2/alerts` with `startsAt`, `endsAt` and `generatorURL`, when the
//! alerts change and again every resend interval, so the Alertmanager neither times them out
//! nor misses a resolution.
//!
//! The queue is the actor's alert set itself, which lives in the store: an Alertmanager that
//! is down is retried with backoff and gets the current state when it is back, also after a
//! restart of the agent. Alertmanager deduplicates repeated alerts, so resending is safe.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use super::alert::Alert;
use super::message::rfc3339;
use super::outbox::backoff;
use super::webhook::{self, HttpAuth};

/// Prometheus' `--rules.alert.resend-delay`.
pub const RESEND_INTERVAL: Duration = Duration::from_secs(60);
/// Bound on one POST.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Changes closer together than this are sent as one.
const MIN_GAP: Duration = Duration::from_millis(200);

/// The running forwarders of one configuration.
pub struct Forwarders {
    cancel: CancellationToken,
}

impl Forwarders {
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

/// Starts one forwarder per Alertmanager URL.
pub fn spawn_all(
    urls: &[String],
    alerts: watch::Receiver<Vec<Alert>>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Forwarders {
    let cancel = shutdown.child_token();
    for url in urls {
        let span = info_span!("forward", alertmanager = %webhook::redact(url));
        tracker.spawn(run(url.clone(), alerts.clone(), cancel.clone()).instrument(span));
    }
    Forwarders { cancel }
}

/// The body Alertmanager's `POST /api/v2/alerts` takes.
pub fn payload(alerts: &[Alert]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = alerts
        .iter()
        .map(|alert| {
            let pairs =
                |labels: &crate::model::Labels| -> serde_json::Map<String, serde_json::Value> {
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string().into()))
                        .collect()
                };
            serde_json::json!({
                "labels": pairs(&alert.labels),
                "annotations": pairs(&alert.annotations),
                "startsAt": rfc3339(alert.starts_at_ms),
                "endsAt": rfc3339(alert.ends_at_ms),
                "generatorURL": alert.generator_url,
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

/// The alerts endpoint under a base URL (`http://am:9093` or `http://host/alertmanager/`).
pub fn endpoint(base: &str) -> String {
    format!("{}/api/v2/alerts", base.trim_end_matches('/'))
}

async fn run(url: String, mut alerts: watch::Receiver<Vec<Alert>>, cancel: CancellationToken) {
    let target = endpoint(&url);
    let mut failures: u32 = 0;
    let mut last_sent: Vec<Alert> = Vec::new();
    let mut sent_at = tokio::time::Instant::now() - RESEND_INTERVAL;
    loop {
        let current = alerts.borrow_and_update().clone();
        let due = current != last_sent || sent_at.elapsed() >= RESEND_INTERVAL || failures > 0;
        if due && !current.is_empty() {
            let body = payload(&current).to_string().into_bytes();
            match webhook::post_json(&target, &HttpAuth::None, body, TIMEOUT).await {
                Ok(_) => {
                    if failures > 0 {
                        info!(
                            alerts = current.len(),
                            "Alertmanager reachable again; alerts forwarded."
                        );
                    }
                    metrics::counter!("prismwatch_notify_forwarded_total").increment(1);
                    failures = 0;
                    last_sent = current;
                    sent_at = tokio::time::Instant::now();
                }
                Err(error) => {
                    metrics::counter!("prismwatch_notify_forward_errors_total").increment(1);
                    if failures == 0 {
                        warn!(%error, "Cannot forward alerts to the Alertmanager; retrying with backoff.");
                    }
                    failures += 1;
                }
            }
        }
        let wait = if failures > 0 {
            backoff(failures - 1)
        } else {
            RESEND_INTERVAL.saturating_sub(sent_at.elapsed())
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = alerts.changed(), if failures == 0 => {
                if changed.is_err() {
                    break;
                }
                tokio::time::sleep(MIN_GAP).await;
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn the_payload_is_alertmanagers_postable_alerts() {
        let alert = Alert {
            labels: Labels::from_pairs([("alertname", "HostHighCpu"), ("instance", "web-1")]),
            annotations: Labels::from_pairs([("summary", "busy")]),
            starts_at_ms: 1_764_662_400_000,
            ends_at_ms: 1_764_662_640_000,
            generator_url: "http://web-1:9777/graph?g0.expr=up".into(),
            updated_at_ms: 0,
        };
        let body = payload(&[alert]);
        assert_eq!(body[0]["labels"]["instance"], "web-1");
        assert_eq!(body[0]["annotations"]["summary"], "busy");
        assert_eq!(body[0]["startsAt"], "2025-12-02T08:00:00Z");
        assert_eq!(body[0]["endsAt"], "2025-12-02T08:04:00Z");
        assert_eq!(
            body[0]["generatorURL"],
            "http://web-1:9777/graph?g0.expr=up"
        );
        assert_eq!(endpoint("http://am:9093/"), "http://am:9093/api/v2/alerts");
    }
}
