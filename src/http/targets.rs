//! `/api/v1/targets` in Prometheus' shape: one active target per collector (the host, each
//! PostgreSQL, PgBouncer and Redis target) with its health, last error and last collection, so
//! Grafana and scripts written for Prometheus can tell what the agent watches and whether it
//! works.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::AppState;
use crate::collector::CollectorHealth;

pub async fn targets(State(state): State<AppState>) -> Response {
    let body = json!({
        "status": "success",
        "data": targets_json(&state.readiness.health()),
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The `data` of the answer for every collector's last collection (`None`: not run yet).
pub fn targets_json(health: &BTreeMap<String, Option<CollectorHealth>>) -> Json {
    let active: Vec<Json> = health
        .iter()
        .map(|(name, health)| {
            // Remote collectors are named `kind:server`; the local ones by their kind.
            let (job, instance) = name.split_once(':').unwrap_or((name, "localhost"));
            let (state, last_error, last_scrape, duration) = match health {
                None => (
                    "unknown",
                    String::new(),
                    "0001-01-01T00:00:00Z".to_string(),
                    0.0,
                ),
                Some(h) => (
                    if h.last_error.is_some() { "down" } else { "up" },
                    h.last_error.clone().unwrap_or_default(),
                    jiff::Timestamp::from_millisecond(h.last_collection_ms)
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    h.duration_seconds,
                ),
            };
            let schedule = |pick: fn(&CollectorHealth) -> std::time::Duration| {
                health
                    .as_ref()
                    .map(|h| prometheus_duration(pick(h)))
                    .unwrap_or_default()
            };
            json!({
                "discoveredLabels": {},
                "labels": {"job": job, "instance": instance},
                "scrapePool": job,
                "scrapeUrl": "",
                "globalUrl": "",
                "lastError": last_error,
                "lastScrape": last_scrape,
                "lastScrapeDuration": duration,
                "health": state,
                "scrapeInterval": schedule(|h| h.interval),
                "scrapeTimeout": schedule(|h| h.timeout),
                "collector": name,
            })
        })
        .collect();
    json!({"activeTargets": active, "droppedTargets": [], "droppedTargetCounts": {}})
}

/// A duration as Prometheus writes one: `15s`, `1m`, `1s500ms`.
fn prometheus_duration(duration: std::time::Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn each_collector_is_a_target_with_its_health_and_last_error() {
        let health = BTreeMap::from([
            (
                "host".to_string(),
                Some(CollectorHealth {
                    last_collection_ms: 1_764_657_458_000,
                    duration_seconds: 0.25,
                    last_error: None,
                    interval: Duration::from_secs(15),
                    timeout: Duration::from_secs(10),
                }),
            ),
            (
                "redis:127.0.0.1:6379".to_string(),
                Some(CollectorHealth {
                    last_collection_ms: 1_764_657_460_500,
                    duration_seconds: 1.0,
                    last_error: Some("connection refused".into()),
                    interval: Duration::from_secs(60),
                    timeout: Duration::from_millis(1500),
                }),
            ),
            ("postgres:db:5432".to_string(), None),
        ]);
        let data = targets_json(&health);
        let targets = data["activeTargets"].as_array().expect("targets");
        assert_eq!(targets.len(), 3);
        assert_eq!(
            targets[0],
            json!({
                "discoveredLabels": {}, "labels": {"job": "host", "instance": "localhost"},
                "scrapePool": "host", "scrapeUrl": "", "globalUrl": "", "lastError": "",
                "lastScrape": "2025-12-02T06:37:38Z", "lastScrapeDuration": 0.25,
                "health": "up", "scrapeInterval": "15s", "scrapeTimeout": "10s",
                "collector": "host",
            })
        );
        assert_eq!(targets[1]["health"], "unknown");
        assert_eq!(targets[1]["labels"]["instance"], "db:5432");
        assert_eq!(targets[2]["health"], "down");
        assert_eq!(targets[2]["lastError"], "connection refused");
        assert_eq!(targets[2]["labels"]["instance"], "127.0.0.1:6379");
        assert_eq!(targets[2]["scrapeTimeout"], "1s500ms");
        assert_eq!(data["droppedTargets"], json!([]));
    }
}
