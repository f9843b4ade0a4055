//! The agent's own metrics (`prismwatch_*`, `alertmanager_*`, build info) in the history, under
//! the source `self`, so local rules can alert on a failing collector or a growing outbox and
//! the query API answers for them like for any collected series.
//!
//! The `metrics` recorder renders the text format; it is parsed back here every few seconds
//! into one batch. `/metrics` keeps serving the recorder's own rendering (always current) and
//! leaves these families out of the history's part, so each appears once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::collector::now_ms;
use crate::history::History;
use crate::model::{Batch, Labels, MetricKind};

/// The history source of the self-metrics.
pub const SOURCE: &str = "self";

/// Label pairs as parsed.
type Pairs = Vec<(String, String)>;

/// How often the self-metrics are written into the history.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Writes the self-metrics into the history every [`INTERVAL`] until shutdown.
pub fn spawn(
    telemetry: PrometheusHandle,
    history: &Arc<RwLock<History>>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let history = Arc::clone(history);
    let shutdown = shutdown.clone();
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let batch = batch_from_text(&telemetry.render());
            match history.write() {
                Ok(mut history) => {
                    history.ingest(SOURCE, now_ms(), batch);
                }
                Err(_) => warn!("The history is unavailable; self-metrics are not recorded."),
            }
        }
    });
}

/// The family names a text rendering declares (`# TYPE` lines), which `/metrics` takes from
/// the recorder rather than from the history.
pub fn declared_families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Parses the Prometheus text format the recorder renders into a batch. Lines that do not
/// parse are skipped (the recorder never writes them).
pub fn batch_from_text(text: &str) -> Batch {
    let mut help: BTreeMap<&str, &str> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, MetricKind> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = rest.split_once(' ') {
                help.insert(name, text);
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                let kind = match kind {
                    "counter" => MetricKind::Counter,
                    "gauge" => MetricKind::Gauge,
                    "histogram" => MetricKind::Histogram,
                    _ => MetricKind::Untyped,
                };
                kinds.insert(name, kind);
            }
        }
    }
    let mut batch = Batch::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        let family = family_of(&name, &kinds);
        let kind = kinds.get(family).copied().unwrap_or(MetricKind::Untyped);
        batch.family(family, kind, help.get(family).copied().unwrap_or(""));
        let mut pairs: Vec<(String, String)> = labels;
        pairs.push(("__name__".to_string(), name));
        batch.samples.push((Labels::from_pairs(pairs), value));
    }
    batch
}

/// The family a sample belongs to: its own name, or for `_bucket`/`_sum`/`_count` of a
/// declared histogram or summary, the declared name.
fn family_of<'a>(name: &'a str, kinds: &BTreeMap<&'a str, MetricKind>) -> &'a str {
    if kinds.contains_key(name) {
        return name;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && kinds.contains_key(base)
        {
            return base;
        }
    }
    name
}

/// `name{a="b",...} value` or `name value` (an optional timestamp after the value is ignored).
fn parse_sample(line: &str) -> Option<(String, Pairs, f64)> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (name, rest) = match line.find(['{', ' ']) {
        Some(at) => line.split_at(at),
        None => return None,
    };
    let (labels, rest) = if let Some(inner) = rest.strip_prefix('{') {
        parse_labels(inner)?
    } else {
        (Vec::new(), rest)
    };
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some((name.to_string(), labels, value))
}

/// The label pairs up to the closing `}`, and the text after it.
fn parse_labels(mut text: &str) -> Option<(Pairs, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (name, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break at,
                c => value.push(c),
            }
        };
        labels.push((name.trim().to_string(), value));
        text = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP prismwatch_scrapes_total Scrapes served.\n# TYPE prismwatch_scrapes_total counter\nprismwatch_scrapes_total 7\n\n# TYPE prismwatch_collector_up gauge\nprismwatch_collector_up{collector=\"postgres:main\",note=\"a \\\"quoted\\\", \\\\ and\\nnewline\"} 0\n# TYPE prismwatch_scrape_duration_seconds histogram\nprismwatch_scrape_duration_seconds_bucket{le=\"0.001\"} 3\nprismwatch_scrape_duration_seconds_bucket{le=\"+Inf\"} 4\nprismwatch_scrape_duration_seconds_sum 0.25\nprismwatch_scrape_duration_seconds_count 4\n";

    #[test]
    fn the_recorder_text_becomes_one_batch_with_families_and_escaped_labels() {
        let batch = batch_from_text(TEXT);
        let names: Vec<&str> = batch.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "prismwatch_scrapes_total",
                "prismwatch_collector_up",
                "prismwatch_scrape_duration_seconds"
            ]
        );
        assert_eq!(batch.families[0].help, "Scrapes served.");
        assert_eq!(batch.families[2].kind, MetricKind::Histogram);
        assert_eq!(batch.samples.len(), 6);
        let (labels, value) = &batch.samples[1];
        assert_eq!(labels.metric_name(), "prismwatch_collector_up");
        assert_eq!(labels.get("note"), Some("a \"quoted\", \\ and\nnewline"));
        assert_eq!(*value, 0.0);
        let (labels, value) = &batch.samples[3];
        assert_eq!(labels.get("le"), Some("+Inf"));
        assert_eq!(*value, 4.0);
        assert_eq!(
            declared_families(TEXT).len(),
            3,
            "{:?}",
            declared_families(TEXT)
        );
    }
}
