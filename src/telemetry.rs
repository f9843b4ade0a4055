//! The daemon's own telemetry through the `metrics` facade, rendered after the collected series
//! on `/metrics`. Every self-metric is described here, so each family has HELP and TYPE.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Scrape duration buckets: a scrape renders stored values, so it should take well under 10 ms.
const SCRAPE_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Installs the global recorder and describes every self-metric.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("prismwatch_scrape_duration_seconds".into()),
            &SCRAPE_BUCKETS,
        )?
        .install_recorder()?;
    describe();
    metrics::gauge!("prismwatch_rules_last_reload_successful").set(1.0);
    metrics::gauge!(
        "prismwatch_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "revision" => REVISION,
        "target" => std::env::consts::ARCH,
    )
    .set(1.0);
    Ok(handle)
}

/// The commit the binary was built from (see build.rs), or `unknown`.
pub const REVISION: &str = env!("PRISMWATCH_REVISION");

fn describe() {
    describe_counter!(
        "alertmanager_notifications_total",
        "Notifications attempted, by integration (email, webhook), as Alertmanager counts them."
    );
    describe_counter!(
        "alertmanager_notifications_failed_total",
        "Notification attempts that failed, by integration (email, webhook); retried ones count each time."
    );
    describe_histogram!(
        "alertmanager_notification_latency_seconds",
        "Time one notification attempt took, by integration."
    );
    describe_gauge!(
        "alertmanager_alerts",
        "Alerts held by the notifier, by state (active, suppressed)."
    );
    describe_gauge!(
        "alertmanager_silences",
        "Silences, by state (active, pending, expired)."
    );
    describe_counter!(
        "prismwatch_ai_otlp_streams_refused_total",
        "OTLP cumulative streams refused because the stream table is full (live streams are never evicted)."
    );
    describe_counter!(
        "prismwatch_ai_state_save_failures_total",
        "Saves of the spend state that failed; ingest answers 503 meanwhile."
    );
    describe_gauge!(
        "prismwatch_http_connections_open",
        "HTTP connections open now."
    );
    describe_counter!(
        "prismwatch_http_connections_refused_total",
        "HTTP connections closed at once because web.max_connections were open."
    );
    describe_counter!(
        "prismwatch_http_request_timeouts_total",
        "HTTP requests whose body did not arrive within web.read_timeout (answered 408)."
    );
    describe_counter!(
        "prismwatch_notify_alert_batches_dropped_total",
        "Batches of alerts from the rules that the notifier could not take (its queue was full)."
    );
    describe_counter!(
        "prismwatch_notify_forward_errors_total",
        "Failed posts of alerts to a configured Alertmanager (retried with backoff)."
    );
    describe_counter!(
        "prismwatch_notify_forwarded_total",
        "Alerts posted to configured Alertmanagers."
    );
    describe_gauge!(
        "prismwatch_notify_outbox_pending",
        "Notifications in the outbox not yet delivered."
    );
    describe_gauge!(
        "prismwatch_notify_outbox_failed",
        "Notifications in the outbox refused permanently (kept with the server's answer)."
    );
    describe_gauge!(
        "prismwatch_notify_outbox_oldest_age_seconds",
        "Age of the oldest undelivered notification in the outbox (0 when empty)."
    );
    describe_counter!(
        "prismwatch_store_errors_total",
        "Writes to the state store (prismwatch.db) that failed."
    );
    describe_gauge!(
        "prismwatch_store_healthy",
        "1 when the last write to the state store succeeded, else 0."
    );
    describe_counter!(
        "prismwatch_queries_interrupted_total",
        "Queries of the query API stopped, by reason (timeout, canceled) and stage (queue, evaluation)."
    );
    describe_counter!(
        "prismwatch_ai_ingest_events_total",
        "Usage events accepted, by ingest path (otlp, json)."
    );
    describe_counter!(
        "prismwatch_ai_ingest_rejected_total",
        "Ingest requests refused, by reason (unauthorized, too_large, malformed)."
    );
    describe_gauge!(
        "prismwatch_build_info",
        "A metric with a constant '1' value labeled by the prismwatch version and the commit it was built from (revision, or unknown)."
    );
    describe_gauge!(
        "prismwatch_collector_interval_seconds",
        Unit::Seconds,
        "Configured interval between collections."
    );
    describe_gauge!(
        "prismwatch_collector_timeout_seconds",
        Unit::Seconds,
        "Configured time limit of one collection."
    );
    describe_gauge!(
        "prismwatch_collector_duration_seconds",
        Unit::Seconds,
        "Duration of the collector's last collection."
    );
    describe_gauge!(
        "prismwatch_collector_success",
        "Whether the collector's last collection succeeded (1) or not (0)."
    );
    describe_gauge!(
        "prismwatch_collector_last_success_timestamp_seconds",
        Unit::Seconds,
        "Time of the collector's last successful collection, in unixtime."
    );
    describe_counter!(
        "prismwatch_collector_runs_total",
        "Collections by collector and result (success, error, timeout)."
    );
    describe_counter!(
        "prismwatch_collector_missed_intervals_total",
        "Ticks skipped because a collection overran its interval."
    );
    describe_counter!("prismwatch_scrapes_total", "Requests served on /metrics.");
    describe_histogram!(
        "prismwatch_scrape_duration_seconds",
        Unit::Seconds,
        "Time to render and encode /metrics."
    );
    describe_gauge!("prismwatch_history_series", "Series held in the history.");
    describe_gauge!("prismwatch_history_samples", "Samples held in the history.");
    describe_gauge!(
        "prismwatch_history_memory_bytes",
        Unit::Bytes,
        "Memory held by the history: compressed samples, labels and indexes."
    );
    describe_gauge!(
        "prismwatch_history_sample_bytes",
        Unit::Bytes,
        "Memory held by the history's compressed sample chunks."
    );
    describe_gauge!(
        "prismwatch_history_retention_seconds",
        Unit::Seconds,
        "How long the history keeps samples."
    );
    describe_gauge!(
        "prismwatch_history_max_series",
        "The most series the history keeps; new series beyond it are dropped."
    );
    describe_counter!(
        "prismwatch_history_series_dropped_total",
        "Samples of new series dropped because the history's series cap was reached."
    );
    describe_gauge!(
        "prismwatch_rule_group_interval_seconds",
        Unit::Seconds,
        "The interval of a rule group."
    );
    describe_gauge!(
        "prismwatch_rule_group_rules",
        "The number of rules in a rule group."
    );
    describe_counter!(
        "prismwatch_rule_group_iterations_total",
        "Evaluations of a rule group."
    );
    describe_counter!(
        "prismwatch_rule_group_iterations_missed_total",
        "Evaluations of a rule group skipped because an evaluation overran its interval."
    );
    describe_gauge!(
        "prismwatch_rule_group_last_duration_seconds",
        Unit::Seconds,
        "Duration of the last evaluation of a rule group."
    );
    describe_histogram!(
        "prismwatch_rule_group_duration_seconds",
        Unit::Seconds,
        "Duration of rule group evaluations."
    );
    describe_gauge!(
        "prismwatch_rule_group_last_evaluation_timestamp_seconds",
        Unit::Seconds,
        "Time of the last evaluation of a rule group, in unixtime."
    );
    describe_counter!(
        "prismwatch_rule_evaluation_failures_total",
        "Rule evaluations that failed, by rule group."
    );
    describe_gauge!(
        "prismwatch_rules_last_reload_successful",
        "Whether the last rule reload succeeded (1) or was refused and the old rules kept (0)."
    );
    describe_gauge!(
        "prismwatch_config_last_reload_successful",
        "Whether the last configuration reload attempt was successful."
    );
    describe_gauge!(
        "prismwatch_config_last_reload_success_timestamp_seconds",
        Unit::Seconds,
        "Timestamp of the last successful configuration reload."
    );
}
