//! A Prometheus-compatible query API over the local history: `/api/v1/query`,
//! `/api/v1/query_range`, `/api/v1/alerts`, `/api/v1/rules`, `/api/v1/labels`,
//! `/api/v1/label/{name}/values`, `/api/v1/series`, `/api/v1/metadata` and
//! `/api/v1/status/buildinfo`, with the JSON shapes of
//! Prometheus' HTTP API, so `prismwatch query` and Grafana's Prometheus data source can read the
//! agent's recent data. Queries run on the blocking pool, never on the async workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use promql_parser::parser::Expr;
use serde_json::{Value as Json, json};
use tokio::sync::Semaphore;

use super::AppState;
use crate::collector::now_ms;
use crate::config::QueryConfig;
use crate::rules::RuleKind;
use crate::rules::alert::AlertState;
use crate::rules::eval::{self, Interrupt, Interruption, LabelSet, Value};

/// Prometheus' limit on points per series in a range query.
const MAX_POINTS: i64 = 11_000;

type Params = HashMap<String, String>;

pub async fn query_get(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    query(state, params).await
}

pub async fn query_post(State(state): State<AppState>, body: String) -> Response {
    query(state, form(&body)).await
}

pub async fn range_get(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    query_range(state, params).await
}

pub async fn range_post(State(state): State<AppState>, body: String) -> Response {
    query_range(state, form(&body)).await
}

/// A form-encoded body (`query=...&time=...`), as Grafana posts it.
fn form(body: &str) -> Params {
    form_pairs(body).into_iter().collect()
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// An API error: status, Prometheus' `errorType`, and the message.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0, self.1, self.2)
    }
}

fn bad_data(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "bad_data", message.into())
}

fn error_response(status: StatusCode, kind: &str, message: String) -> Response {
    json_response(
        status,
        json!({"status": "error", "errorType": kind, "error": message}),
    )
}

fn json_response(status: StatusCode, body: Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn success(data: Json) -> Response {
    json_response(StatusCode::OK, json!({"status": "success", "data": data}))
}

/// A time as Prometheus accepts it: unix seconds (fractions allowed) or RFC 3339.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| format!("invalid time {text:?}: use unix seconds or RFC 3339"))
}

/// A step: seconds (fractions allowed) or a Prometheus duration such as `15s`.
fn parse_step(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    crate::rules::duration::parse(text).map(|d| d.as_millis() as i64)
}

fn parse_query(params: &Params) -> Result<Expr, ApiError> {
    let text = params
        .get("query")
        .ok_or_else(|| bad_data("missing the `query` parameter"))?;
    let expr = crate::rules::parse_expr(text).map_err(bad_data)?;
    eval::check_supported(&expr).map_err(bad_data)?;
    Ok(expr)
}

/// The limits every query runs under: a timeout that covers queueing, parsing and evaluation,
/// and a number of slots; a query waits for a slot, as in Prometheus, until its timeout.
pub struct QueryLimits {
    config: QueryConfig,
    slots: Arc<Semaphore>,
}

impl QueryLimits {
    pub fn new(config: QueryConfig) -> QueryLimits {
        QueryLimits {
            config,
            slots: Arc::new(Semaphore::new(config.max_concurrency)),
        }
    }
}

/// Stops the evaluation when the handler's future is dropped: hyper drops it when the client
/// disconnects, so the work on the blocking pool ends too instead of running on unseen.
struct CancelOnDrop(Interrupt);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.interrupt(Interruption::Canceled);
    }
}

/// Runs `work` (parsing included, since a large expression parses slowly) on the blocking pool
/// within the query limits, and turns an interruption into Prometheus' `timeout` (503) or
/// `canceled` (499) answer.
async fn run_limited<T: Send + 'static>(
    limits: &QueryLimits,
    work: impl FnOnce(&Interrupt, &QueryConfig) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let interrupt = Interrupt::default();
    let _cancel = CancelOnDrop(interrupt.clone());
    let deadline = tokio::time::Instant::now() + limits.config.timeout;
    let slot =
        match tokio::time::timeout_at(deadline, Arc::clone(&limits.slots).acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_closed)) => return Err(internal()),
            Err(_elapsed) => {
                count_interrupted(Interruption::TimedOut, "queue");
                return Err(interrupted(Interruption::TimedOut, "query queue"));
            }
        };
    let config = limits.config;
    let running = interrupt.clone();
    let task = tokio::task::spawn_blocking(move || {
        // The slot is released when the work really stops, not when the answer is sent.
        let _slot = slot;
        let result = work(&running, &config);
        if let (Err(_), Some(reason)) = (&result, running.reason()) {
            count_interrupted(reason, "evaluation");
        }
        result
    });
    match tokio::time::timeout_at(deadline, task).await {
        Err(_elapsed) => {
            interrupt.interrupt(Interruption::TimedOut);
            Err(interrupted(Interruption::TimedOut, "expression evaluation"))
        }
        Ok(Err(_panicked)) => Err(internal()),
        Ok(Ok(result)) => result.map_err(|error| match interrupt.reason() {
            Some(reason) => interrupted(reason, "expression evaluation"),
            None => error,
        }),
    }
}

/// Counts a query stopped by its timeout or its client, once its work has really stopped.
fn count_interrupted(reason: Interruption, stage: &'static str) {
    let reason = match reason {
        Interruption::Canceled => "canceled",
        Interruption::TimedOut => "timeout",
    };
    metrics::counter!("prismwatch_queries_interrupted_total", "reason" => reason, "stage" => stage)
        .increment(1);
}

fn interrupted(reason: Interruption, stage: &str) -> ApiError {
    match reason {
        Interruption::TimedOut => ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            reason.message(stage),
        ),
        // Prometheus answers 499, nginx's "client closed request"; nobody is listening.
        Interruption::Canceled => ApiError(
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            "canceled",
            reason.message(stage),
        ),
    }
}

fn internal() -> ApiError {
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the query failed".into(),
    )
}

fn execution(message: String) -> ApiError {
    ApiError(StatusCode::UNPROCESSABLE_ENTITY, "execution", message)
}

/// A query parameter holding a time, refused (as Prometheus words it) when it cannot be read
/// or lies outside the range time arithmetic can hold.
fn time_param(name: &str, text: &str) -> Result<i64, ApiError> {
    parse_time(text)
        .and_then(eval::check_time_ms)
        .map_err(|reason| {
            bad_data(format!(
                "invalid parameter {name:?}: cannot parse {text:?} to a valid timestamp: {reason}"
            ))
        })
}

async fn query(state: AppState, params: Params) -> Response {
    let ts = match params.get("time").map(|t| time_param("time", t)) {
        None => now_ms(),
        Some(Ok(ts)) => ts,
        Some(Err(error)) => return error.into_response(),
    };
    let history = state.history.clone();
    // The history's lock is taken per selection, not for the whole query.
    let result = run_limited(&state.queries, move |interrupt, config| {
        let expr = parse_query(&params)?;
        let options = eval::EvalOptions {
            max_samples: config.max_samples,
            ..Default::default()
        };
        eval::eval_interruptible(&*history, &expr, ts, &options, interrupt).map_err(execution)
    })
    .await;
    match result {
        Ok(value) => success(instant_json(value, ts)),
        Err(error) => error.into_response(),
    }
}

async fn query_range(state: AppState, params: Params) -> Response {
    let (start, end, step) = match range_params(&params) {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let history = state.history.clone();
    let result = run_limited(&state.queries, move |interrupt, config| {
        let expr = parse_query(&params)?;
        // `@ start()` and `@ end()` mean the range's edges; the sample budget is the whole
        // query's, shared by its steps.
        let steps = ((i128::from(end) - i128::from(start)) / i128::from(step) + 1) as u64;
        let options = eval::EvalOptions {
            query_range: Some((start, end)),
            max_samples: (config.max_samples / steps).max(10_000),
            ..Default::default()
        };
        let mut series: BTreeMap<LabelSet, Vec<(i64, f64)>> = BTreeMap::new();
        let mut ts = start;
        while ts <= end {
            let value = eval::eval_interruptible(&*history, &expr, ts, &options, interrupt)
                .map_err(execution)?;
            match value {
                Value::Scalar(v) => series.entry(Vec::new()).or_default().push((ts, v)),
                Value::Vector(samples) => {
                    for (labels, v) in samples {
                        series.entry(labels).or_default().push((ts, v));
                    }
                }
                Value::Matrix(_) => {
                    return Err(execution(
                        "a range query needs an instant vector or scalar expression".into(),
                    ));
                }
            }
            // Near the end of time the next step does not exist; stop rather than wrap around.
            let Some(next) = ts.checked_add(step) else {
                break;
            };
            ts = next;
        }
        Ok(series)
    })
    .await;
    match result {
        Ok(series) => {
            let result: Vec<Json> = series
                .into_iter()
                .map(|(labels, points)| {
                    json!({
                        "metric": metric(&labels),
                        "values": points.iter().map(|&(t, v)| point(t, v)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            success(json!({"resultType": "matrix", "result": result}))
        }
        Err(error) => error.into_response(),
    }
}

/// The start, end and step of a range query, checked; the expression is parsed with the
/// evaluation, on the blocking pool.
fn range_params(params: &Params) -> Result<(i64, i64, i64), ApiError> {
    if !params.contains_key("query") {
        return Err(bad_data("missing the `query` parameter"));
    }
    let get = |name: &str| {
        params
            .get(name)
            .ok_or_else(|| bad_data(format!("missing the `{name}` parameter")))
    };
    let start = time_param("start", get("start")?)?;
    let end = time_param("end", get("end")?)?;
    let step = parse_step(get("step")?).map_err(bad_data)?;
    if step <= 0 {
        return Err(bad_data("step must be above zero"));
    }
    if end < start {
        return Err(bad_data("end must not be before start"));
    }
    // In i128: the span between Prometheus' earliest and latest times exceeds i64.
    if (i128::from(end) - i128::from(start)) / i128::from(step) > i128::from(MAX_POINTS) {
        return Err(bad_data(format!(
            "exceeded maximum resolution of {MAX_POINTS} points per timeseries; try a larger step"
        )));
    }
    Ok((start, end, step))
}

fn instant_json(value: Value, ts: i64) -> Json {
    match value {
        Value::Scalar(v) => json!({"resultType": "scalar", "result": point(ts, v)}),
        Value::Vector(samples) => json!({
            "resultType": "vector",
            "result": samples
                .iter()
                .map(|(labels, v)| json!({"metric": metric(labels), "value": point(ts, *v)}))
                .collect::<Vec<_>>(),
        }),
        Value::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series
                .iter()
                .map(|(labels, points)| json!({
                    "metric": metric(labels),
                    "values": points.iter().map(|&(t, v)| point(t, v)).collect::<Vec<_>>(),
                }))
                .collect::<Vec<_>>(),
        }),
    }
}

fn metric(labels: &[(String, String)]) -> Json {
    Json::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    )
}

/// `[seconds, "value"]`, the value formatted as Go's strconv 'f' with shortest precision.
fn point(ts: i64, value: f64) -> Json {
    // Whole seconds as an integer, as Prometheus writes them (`1700000000`, not `1700000000.0`).
    let time = if ts % 1000 == 0 {
        json!(ts / 1000)
    } else {
        json!(ts as f64 / 1000.0)
    };
    json!([time, format_value(value)])
}

pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        value.to_string()
    }
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// One active alert as Prometheus' API shows it, `alertname` among its labels.
fn alert_json(alertname: &str, alert: &crate::rules::alert::Alert) -> Json {
    let mut labels = alert.labels.clone();
    labels.push(("alertname".into(), alertname.to_string()));
    labels.sort();
    json!({
        "labels": metric(&labels),
        "annotations": metric(&alert.annotations),
        "state": if alert.state == AlertState::Firing { "firing" } else { "pending" },
        "activeAt": rfc3339(alert.active_at),
        "value": format_value(alert.value),
    })
}

/// Active alerts of every alerting rule, as Prometheus' `/api/v1/alerts`.
pub async fn alerts(State(state): State<AppState>) -> Response {
    let mut out = Vec::new();
    for loaded in state.rules.read().unwrap_or_else(|e| e.into_inner()).iter() {
        let group_state = loaded.state.lock().unwrap_or_else(|e| e.into_inner());
        for rule in &loaded.group.rules {
            let RuleKind::Alert { name, .. } = &rule.kind else {
                continue;
            };
            let Some(rule_alerts) = group_state.rules.get(&rule.key) else {
                continue;
            };
            out.extend(
                rule_alerts
                    .alerts()
                    .filter(|a| a.state != AlertState::Resolved)
                    .map(|a| alert_json(name, a)),
            );
        }
    }
    success(json!({ "alerts": out }))
}

/// Loaded rule groups with their rules and alerts, as Prometheus' `/api/v1/rules`.
pub async fn rules(State(state): State<AppState>) -> Response {
    let mut groups = Vec::new();
    for loaded in state.rules.read().unwrap_or_else(|e| e.into_inner()).iter() {
        let group_state = loaded.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut rules = Vec::new();
        for rule in &loaded.group.rules {
            let labels: Vec<(String, String)> = rule
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match &rule.kind {
                RuleKind::Record { name } => rules.push(json!({
                    "type": "recording", "name": name, "query": rule.expr.trim(),
                    "labels": metric(&labels), "health": "ok",
                })),
                RuleKind::Alert {
                    name,
                    hold,
                    keep_firing_for,
                    annotations,
                } => {
                    let alerts: Vec<Json> = group_state
                        .rules
                        .get(&rule.key)
                        .map(|r| {
                            r.alerts()
                                .filter(|a| a.state != AlertState::Resolved)
                                .map(|a| alert_json(name, a))
                                .collect()
                        })
                        .unwrap_or_default();
                    let state = if alerts.iter().any(|a| a["state"] == "firing") {
                        "firing"
                    } else if alerts.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    let annotations: Vec<(String, String)> = annotations
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    rules.push(json!({
                        "type": "alerting", "name": name, "query": rule.expr.trim(),
                        "duration": hold.as_secs(), "keepFiringFor": keep_firing_for.as_secs(),
                        "labels": metric(&labels), "annotations": metric(&annotations),
                        "alerts": alerts, "state": state, "health": "ok",
                    }));
                }
            }
        }
        groups.push(json!({
            "name": loaded.group.name,
            "file": loaded.group.file.display().to_string(),
            "interval": loaded.interval.as_secs_f64(),
            "limit": loaded.group.limit,
            "rules": rules,
        }));
    }
    success(json!({ "groups": groups }))
}

/// Metric names (`__name__`) or the values of one label over the live series.
pub async fn label_values(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let history = state.history.read().unwrap_or_else(|e| e.into_inner());
    let mut values = std::collections::BTreeSet::new();
    history.for_each_latest(|_, series| {
        for (labels, _) in series {
            if let Some(v) = labels.get(&name) {
                values.insert(v.to_string());
            }
        }
    });
    success(json!(values))
}

/// Every label name of the live series.
pub async fn label_names(State(state): State<AppState>) -> Response {
    let history = state.history.read().unwrap_or_else(|e| e.into_inner());
    let mut names = std::collections::BTreeSet::new();
    history.for_each_latest(|_, series| {
        for (labels, _) in series {
            names.extend(labels.iter().map(|(k, _)| k.to_string()));
        }
    });
    success(json!(names))
}

/// Series matching any `match[]` selector with samples in `[start, end]` (default: the whole
/// history), as Prometheus' `/api/v1/series`; Grafana's metric browser asks it.
pub async fn series_get(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    series(state, form_pairs(query.as_deref().unwrap_or(""))).await
}

pub async fn series_post(State(state): State<AppState>, body: String) -> Response {
    series(state, form_pairs(&body)).await
}

async fn series(state: AppState, params: Vec<(String, String)>) -> Response {
    let value = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let bound = |name: &str, default: i64| match value(name) {
        None => Ok(default),
        Some(text) => time_param(name, text),
    };
    let (start, end) = match (
        bound("start", eval::MIN_TIME_MS),
        bound("end", eval::MAX_TIME_MS),
    ) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(error), _) | (_, Err(error)) => return error.into_response(),
    };
    let texts: Vec<String> = params
        .into_iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| v)
        .collect();
    if texts.is_empty() {
        return bad_data("no match[] parameter provided").into_response();
    }
    let history = state.history.clone();
    // Selectors are parsed on the blocking pool within the query limits, as queries are.
    let found = run_limited(&state.queries, move |interrupt, _| {
        let mut found = std::collections::BTreeSet::new();
        for text in &texts {
            let vs = match crate::rules::parse_expr(text) {
                Ok(Expr::VectorSelector(vs)) => vs,
                Ok(_) => {
                    return Err(bad_data(format!(
                        "match[] {text:?} is not a series selector"
                    )));
                }
                Err(message) => return Err(bad_data(message)),
            };
            interrupt.check().map_err(execution)?;
            for range in eval::SeriesSource::select_matching(&*history, &vs, start, end) {
                let labels: Vec<(String, String)> = range
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                found.insert(labels);
            }
        }
        Ok(found)
    })
    .await;
    match found {
        Ok(found) => success(json!(found.iter().map(|l| metric(l)).collect::<Vec<_>>())),
        Err(error) => error.into_response(),
    }
}

/// HELP and TYPE of every family, as Prometheus' `/api/v1/metadata` (optionally one `metric`).
pub async fn metadata(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let history = state.history.read().unwrap_or_else(|e| e.into_inner());
    let mut out = serde_json::Map::new();
    for name in history.family_names() {
        if params.get("metric").is_some_and(|m| m != name) {
            continue;
        }
        if let Some(meta) = history.family(name) {
            out.insert(
                name.to_string(),
                json!([{"type": meta.kind.as_str(), "help": meta.help, "unit": ""}]),
            );
        }
    }
    success(Json::Object(out))
}

/// Form or query-string pairs in order, repeated keys kept (`match[]=a&match[]=b`).
fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// Enough of Prometheus' build info for Grafana's data source check.
pub async fn buildinfo() -> Response {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": crate::telemetry::REVISION,
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_times_and_values_parse_as_prometheus_does() {
        let params = form("query=rate%28x%5B5m%5D%29+%3E+0&time=1700000000.5");
        assert_eq!(params["query"], "rate(x[5m]) > 0");
        assert_eq!(parse_time(&params["time"]), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_step("15s"), Ok(15_000));
        assert_eq!(parse_step("0.5"), Ok(500));
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1000000000000000000000");
    }

    #[tokio::test]
    async fn a_query_waits_for_a_slot_until_its_timeout() {
        let limits = QueryLimits::new(QueryConfig {
            timeout: std::time::Duration::from_millis(100),
            max_concurrency: 1,
            ..QueryConfig::default()
        });
        let taken = Arc::clone(&limits.slots).acquire_owned().await;
        let queued = run_limited(&limits, |_, _| Ok(())).await;
        let error = queued.err().map(|e| (e.0, e.1, e.2));
        assert_eq!(
            error,
            Some((
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "query timed out in query queue".to_string()
            ))
        );
        drop(taken);
        assert!(run_limited(&limits, |_, _| Ok(())).await.is_ok());
    }

    #[test]
    fn times_outside_prometheus_range_are_refused() {
        let refused = |text: &str| time_param("time", text).err().map(|e| e.2);
        assert_eq!(
            refused("1e300")
                .as_deref()
                .map(|m| m.split(": the time").next()),
            Some(Some(
                r#"invalid parameter "time": cannot parse "1e300" to a valid timestamp"#
            ))
        );
        assert!(refused("-1e300").is_some());
        assert!(refused("9223372036854775").is_some());
        assert_eq!(
            time_param("time", "1700000000").ok(),
            Some(1_700_000_000_000)
        );
        let max = eval::MAX_TIME_MS as f64 / 1000.0;
        assert!(time_param("time", &format!("{max}")).is_ok());
    }
}
