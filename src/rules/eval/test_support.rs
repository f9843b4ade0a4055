//! The evaluator's unit-test fixture: one small history, and ways to evaluate against it.

use promql_parser::parser::Expr;

use super::{Value, check_supported, eval};
use crate::history::{History, HistoryLimits};
use crate::model::{Batch, MetricKind};

/// A history with `http_requests_total{job="api",instance=i}` growing by `rate_per_s * 15`
/// every 15 s from 0 s to 30 min, and a gauge `up`.
pub(super) fn history() -> History {
    let mut history = History::new(HistoryLimits::default());
    for step in 0..=120 {
        let ts = step * 15_000;
        let mut batch = Batch::new();
        batch.family("http_requests_total", MetricKind::Counter, "requests");
        batch.push(
            "http_requests_total",
            &[("job", "api"), ("instance", "a")],
            step as f64 * 15.0,
        );
        batch.push(
            "http_requests_total",
            &[("job", "api"), ("instance", "b")],
            step as f64 * 30.0,
        );
        batch.family("up", MetricKind::Gauge, "up");
        batch.push("up", &[("job", "api"), ("instance", "a")], 1.0);
        batch.push("up", &[("job", "api"), ("instance", "b")], 0.0);
        history.ingest("t", ts, batch);
        // Classic histogram buckets growing 1, 3, 4 and 5 per step (cumulative).
        let mut batch = Batch::new();
        batch.family("request_duration_seconds", MetricKind::Histogram, "latency");
        for (le, per_step) in [("0.1", 1.0), ("0.5", 3.0), ("1", 4.0), ("+Inf", 5.0)] {
            batch.push(
                "request_duration_seconds_bucket",
                &[("job", "web"), ("le", le)],
                step as f64 * per_step,
            );
        }
        history.ingest("h", ts, batch);
    }
    history
}

pub(super) fn check(expr: &str, ts: i64) -> Vec<(String, f64)> {
    let parsed = promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    match eval(&history(), &parsed, ts).unwrap_or_else(|e| panic!("{expr}: {e}")) {
        Value::Vector(v) => v
            .into_iter()
            .map(|(l, x)| (format!("{l:?}"), (x * 1e9).round() / 1e9))
            .collect(),
        Value::Scalar(x) => vec![("scalar".to_string(), x)],
        Value::Matrix(m) => m
            .into_iter()
            .map(|(l, s)| (format!("{l:?}"), s.len() as f64))
            .collect(),
    }
}

pub(super) const AT: i64 = 20 * 60_000 + 7_500;

pub(super) fn parse(expr: &str) -> Expr {
    promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

pub(super) fn values(expr: &str, ts: i64) -> Vec<f64> {
    check(expr, ts).into_iter().map(|(_, v)| v).collect()
}

pub(super) fn eval_error(expr: &str) -> String {
    match eval(&history(), &parse(expr), AT) {
        Ok(value) => panic!("{expr}: expected an error, got {value:?}"),
        Err(error) => error,
    }
}

pub(super) fn refusal(expr: &str) -> String {
    match check_supported(&parse(expr)) {
        Ok(()) => panic!("{expr}: expected a refusal"),
        Err(error) => error,
    }
}

/// A history holding one series `name{job="t"}` with the given `(ms, value)` samples, for tests
/// that need exact inputs rather than the shared fixture.
pub(super) fn series_history(name: &str, kind: MetricKind, samples: &[(i64, f64)]) -> History {
    let mut history = History::new(HistoryLimits::default());
    for &(ts, value) in samples {
        let mut batch = Batch::new();
        batch.family(name, kind, "test series");
        batch.push(name, &[("job", "t")], value);
        history.ingest("t", ts, batch);
    }
    history
}

/// The unrounded values of `expr` over `history` at `ts`.
pub(super) fn exact_values(history: &History, expr: &str, ts: i64) -> Vec<f64> {
    match eval(history, &parse(expr), ts).unwrap_or_else(|e| panic!("{expr}: {e}")) {
        Value::Vector(v) => v.into_iter().map(|(_, x)| x).collect(),
        other => panic!("{expr}: expected a vector, got {other:?}"),
    }
}

/// A history holding the gauges `name{i="0"}`, `name{i="1"}`, ... with `values` at 0 s, for
/// aggregation tests.
pub(super) fn instant_history(name: &str, values: &[f64]) -> History {
    let mut history = History::new(HistoryLimits::default());
    let mut batch = Batch::new();
    batch.family(name, MetricKind::Gauge, "test series");
    for (i, &value) in values.iter().enumerate() {
        batch.push(name, &[("i", &i.to_string())], value);
    }
    history.ingest("t", 0, batch);
    history
}
