//! Alertmanager's API v2 (`/api/v2/`): alerts, alert groups, silences, receivers and status,
//! in the shapes of Alertmanager's OpenAPI spec, so `amtool --alertmanager.url` and Grafana's
//! Alertmanager data source work against the agent. Served behind the same auth as the rest.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::collector::now_ms;
use crate::model::Labels;
use crate::notify::actor::{AlertStatus, NotifyHandle};
use crate::notify::matcher::{self, MatchOp, Matcher};
use crate::notify::silence::Silence;

/// A JSON answer with a status.
fn answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Alertmanager answers errors as a JSON string.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    answer(status, &Value::String(message.into()))
}

/// RFC 3339 with milliseconds, as Go's `strfmt.DateTime` prints.
fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|_| "0001-01-01T00:00:00.000Z".to_string())
}

fn parse_time(text: &str) -> Result<i64, String> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("invalid time `{text}`: {e}"))
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

fn matcher_json(m: &Matcher) -> Value {
    json!({
        "name": m.name,
        "value": m.value,
        "isRegex": matches!(m.op, MatchOp::Regexp | MatchOp::NotRegexp),
        "isEqual": matches!(m.op, MatchOp::Equal | MatchOp::Regexp),
    })
}

/// The answer when the notifier is not running (only while the daemon stops).
fn no_notifier() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "the notifier is not running",
    )
}

/// The query parameters of `GET /alerts` and `/alerts/groups`, as pairs (`filter` repeats).
type Params = Vec<(String, String)>;

/// Alertmanager's alert filters: state flags (default true), matchers and a receiver regex.
struct AlertFilter {
    active: bool,
    silenced: bool,
    inhibited: bool,
    matchers: Vec<Matcher>,
    receiver: Option<regex::Regex>,
}

impl AlertFilter {
    fn from_params(params: &Params) -> Result<AlertFilter, String> {
        let flag = |name: &str| -> Result<bool, String> {
            match params.iter().rev().find(|(k, _)| k == name) {
                None => Ok(true),
                Some((_, v)) => v
                    .parse()
                    .map_err(|_| format!("`{name}` must be true or false, not `{v}`")),
            }
        };
        let mut matchers = Vec::new();
        for (_, text) in params.iter().filter(|(k, _)| k == "filter") {
            matchers.extend(
                matcher::parse_matchers(text).map_err(|e| format!("bad filter `{text}`: {e}"))?,
            );
        }
        let receiver = match params.iter().find(|(k, _)| k == "receiver") {
            None => None,
            Some((_, r)) => Some(
                regex::Regex::new(&format!("^(?:{r})$"))
                    .map_err(|e| format!("bad receiver regex `{r}`: {e}"))?,
            ),
        };
        Ok(AlertFilter {
            active: flag("active")?,
            silenced: flag("silenced")?,
            inhibited: flag("inhibited")?,
            matchers,
            receiver,
        })
    }

    fn keeps(&self, status: &AlertStatus) -> bool {
        let silenced = !status.silenced_by.is_empty();
        let active = !silenced && !status.inhibited;
        (self.active || !active)
            && (self.silenced || !silenced)
            && (self.inhibited || !status.inhibited)
            && matcher::matches_all(&self.matchers, &status.alert.labels)
            && self
                .receiver
                .as_ref()
                .is_none_or(|r| status.receivers.iter().any(|name| r.is_match(name)))
    }
}

/// One alert as a `gettableAlert`.
fn alert_json(status: &AlertStatus) -> Value {
    let alert = &status.alert;
    let state = if status.silenced_by.is_empty() && !status.inhibited {
        "active"
    } else {
        "suppressed"
    };
    json!({
        "labels": labels_json(&alert.labels),
        "annotations": labels_json(&alert.annotations),
        "startsAt": time(alert.starts_at_ms),
        "endsAt": time(alert.ends_at_ms),
        "updatedAt": time(alert.updated_at_ms),
        "generatorURL": alert.generator_url,
        "fingerprint": format!("{:016x}", alert.fingerprint()),
        "receivers": status.receivers.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        "status": {
            "state": state,
            "silencedBy": status.silenced_by,
            "inhibitedBy": Vec::<String>::new(),
        },
    })
}

/// The alerts that are not resolved and pass the filter.
fn current(handle: &NotifyHandle, filter: &AlertFilter) -> Vec<AlertStatus> {
    let now = now_ms();
    handle
        .alerts()
        .into_iter()
        .filter(|s| !s.alert.is_resolved_at(now) && filter.keeps(s))
        .collect()
}

/// `GET /api/v2/alerts`.
pub async fn alerts(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let Some(handle) = state.notify.as_ref() else {
        return no_notifier();
    };
    match AlertFilter::from_params(&params) {
        Ok(filter) => answer(
            StatusCode::OK,
            &Value::Array(current(handle, &filter).iter().map(alert_json).collect()),
        ),
        Err(message) => refuse(StatusCode::BAD_REQUEST, message),
    }
}

/// `GET /api/v2/alerts/groups`: alerts grouped by route and group labels, as the dispatcher
/// groups them.
pub async fn groups(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let Some(handle) = state.notify.as_ref() else {
        return no_notifier();
    };
    let filter = match AlertFilter::from_params(&params) {
        Ok(f) => f,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let Some(config) = handle.config() else {
        return answer(StatusCode::OK, &json!([]));
    };
    let mut groups: BTreeMap<(String, String), (Labels, String, Vec<Value>)> = BTreeMap::new();
    for status in current(handle, &filter) {
        for route in config.route.matching(&status.alert.labels) {
            let labels = route.group_labels(&status.alert.labels);
            let key = (
                route.key().to_string(),
                crate::notify::route::display_labels(&labels),
            );
            groups
                .entry(key)
                .or_insert_with(|| (labels, route.receiver.clone(), Vec::new()))
                .2
                .push(alert_json(&status));
        }
    }
    let out: Vec<Value> = groups
        .into_values()
        .map(|(labels, receiver, alerts)| {
            json!({"labels": labels_json(&labels), "receiver": {"name": receiver}, "alerts": alerts})
        })
        .collect();
    answer(StatusCode::OK, &Value::Array(out))
}

fn silence_json(silence: &Silence, now: i64) -> Value {
    json!({
        "id": silence.id,
        "matchers": silence.matchers.iter().map(matcher_json).collect::<Vec<_>>(),
        "startsAt": time(silence.starts_at_ms),
        "endsAt": time(silence.ends_at_ms),
        "updatedAt": time(silence.updated_at_ms),
        "createdBy": silence.created_by,
        "comment": silence.comment,
        "status": {"state": silence.state(now).as_str()},
    })
}

/// `GET /api/v2/silences`, optionally filtered by matchers on the silences' own matchers
/// (Alertmanager keeps a silence when each filter equals one of its matchers' label and value).
pub async fn silences(State(state): State<AppState>, Query(params): Query<Params>) -> Response {
    let Some(handle) = state.notify.as_ref() else {
        return no_notifier();
    };
    let mut filters = Vec::new();
    for (_, text) in params.iter().filter(|(k, _)| k == "filter") {
        match matcher::parse_matchers(text) {
            Ok(m) => filters.extend(m),
            Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("bad filter `{text}`: {e}")),
        }
    }
    let now = now_ms();
    let out: Vec<Value> = handle
        .silences()
        .await
        .iter()
        .filter(|s| {
            filters.iter().all(|f| {
                s.matchers
                    .iter()
                    .any(|m| m.name == f.name && f.matches_value(&m.value))
            })
        })
        .map(|s| silence_json(s, now))
        .collect();
    answer(StatusCode::OK, &Value::Array(out))
}

/// `GET /api/v2/silence/{id}`.
pub async fn silence(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(handle) = state.notify.as_ref() else {
        return no_notifier();
    };
    match handle.silences().await.iter().find(|s| s.id == id) {
        Some(s) => answer(StatusCode::OK, &silence_json(s, now_ms())),
        None => refuse(StatusCode::NOT_FOUND, format!("silence {id} not found")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostedMatcher {
    name: String,
    value: String,
    is_regex: bool,
    #[serde(default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostedSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<PostedMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

/// A silence from a `postableSilence`, validated as Alertmanager validates it.
fn silence_from(posted: PostedSilence, id: String, now: i64) -> Result<Silence, String> {
    if posted.matchers.is_empty() {
        return Err("silence has no matchers".into());
    }
    let mut matchers = Vec::with_capacity(posted.matchers.len());
    for m in &posted.matchers {
        let op = match (m.is_regex, m.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regexp,
            (true, false) => MatchOp::NotRegexp,
        };
        matchers.push(Matcher::new(&m.name, op, &m.value)?);
    }
    if matchers.iter().all(|m| m.matches_value("")) {
        return Err("at least one matcher must not match the empty string".into());
    }
    if posted.created_by.trim().is_empty() {
        return Err("silence has no creator (createdBy)".into());
    }
    if posted.comment.trim().is_empty() {
        return Err("silence has no comment".into());
    }
    let starts = parse_time(&posted.starts_at)?;
    let ends = parse_time(&posted.ends_at)?;
    if ends < starts {
        return Err("end time must not be before start time".into());
    }
    if ends < now {
        return Err("end time can't be in the past".into());
    }
    Ok(Silence {
        id,
        matchers,
        starts_at_ms: starts.max(now),
        ends_at_ms: ends,
        created_by: posted.created_by,
        comment: posted.comment,
        updated_at_ms: now,
    })
}

/// A new silence ID: 128 random bits in UUID form.
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let half = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_i64(now_ms());
        hasher.finish()
    };
    let (a, b) = (half(), half());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// `POST /api/v2/silences`: creates a silence, or updates the one named by `id`. Answers
/// only once the silence is in the store.
pub async fn post_silence(State(state): State<AppState>, body: Bytes) -> Response {
    let Some(handle) = state.notify.as_ref() else {
        return no_notifier();
    };
    let posted: PostedSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")),
    };
    let id = match posted.id.clone().filter(|id| !id.is_empty()) {
        Some(id) => {
            if !handle.silences().await.iter().any(|s| s.id == id) {
                return refuse(StatusCode::NOT_FOUND, format!("silence {id} not found"));
            }
            id
        }
        None => new_id(),
    };
    let silence = match silence_from(posted, id, now_ms()) {
        Ok(s) => s,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let id = silence.id.clone();
    match handle.upsert_silence(silence).await {
        Ok(()) => answer(StatusCode::OK, &json!({ "silenceID": id })),
        Err(message) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the silence could not be saved: {message}"),
        ),
    }
}

/// `DELETE /api/v2/silence/{id}`: expires the silence now.
pub async fn expire_silence(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(handle) = state.notify.as_ref() else {
        return no_notifier();
    };
    let Some(mut silence) = handle.silences().await.into_iter().find(|s| s.id == id) else {
        return refuse(StatusCode::NOT_FOUND, format!("silence {id} not found"));
    };
    let now = now_ms();
    if silence.ends_at_ms <= now {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("silence {id} is already expired"),
        );
    }
    silence.ends_at_ms = now;
    silence.starts_at_ms = silence.starts_at_ms.min(now);
    silence.updated_at_ms = now;
    match handle.upsert_silence(silence).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(message) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the silence could not be saved: {message}"),
        ),
    }
}

/// `GET /api/v2/receivers`.
pub async fn receivers(State(state): State<AppState>) -> Response {
    let names: Vec<Value> = state
        .notify
        .as_ref()
        .and_then(NotifyHandle::config)
        .map(|c| {
            c.receivers
                .iter()
                .map(|r| json!({"name": r.name}))
                .collect()
        })
        .unwrap_or_default();
    answer(StatusCode::OK, &Value::Array(names))
}

/// `GET /api/v2/status`: the configuration (secrets masked, as Alertmanager masks them), a
/// cluster that is disabled (one agent is its own cluster), uptime and version.
pub async fn status(State(state): State<AppState>) -> Response {
    let original = state
        .notify
        .as_ref()
        .and_then(NotifyHandle::config)
        .map(|c| mask_secrets(&c.original))
        .unwrap_or_default();
    answer(
        StatusCode::OK,
        &json!({
            "cluster": {"status": "disabled", "peers": []},
            "config": {"original": original},
            "uptime": time(state.started_at_ms),
            "versionInfo": {
                "version": env!("CARGO_PKG_VERSION"),
                "revision": crate::telemetry::REVISION,
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": "",
            },
        }),
    )
}

#[derive(Deserialize)]
pub struct TestParams {
    receiver: Option<String>,
}

/// `POST /api/v1/notify/test?receiver=NAME`: sends a test notification through the outbox and
/// the real transports and answers, within 30 s, what each server said.
pub async fn notify_test(
    State(state): State<AppState>,
    Query(params): Query<TestParams>,
) -> Response {
    let Some(handle) = state.notify.as_ref() else {
        return no_notifier();
    };
    match handle
        .test(params.receiver, std::time::Duration::from_secs(30))
        .await
    {
        Ok(report) => answer(
            StatusCode::OK,
            &json!({
                "receiver": report.receiver,
                "results": report.rows.iter().map(|r| json!({
                    "integration": r.integration,
                    "target": r.target,
                    "state": r.state,
                    "answer": r.answer,
                })).collect::<Vec<_>>(),
            }),
        ),
        Err(message) => refuse(StatusCode::BAD_REQUEST, message),
    }
}

/// Keys whose values are secrets in an Alertmanager file.
const SECRET_KEYS: &[&str] = &[
    "smtp_auth_password",
    "smtp_auth_secret",
    "auth_password",
    "auth_secret",
    "password",
    "credentials",
    "bearer_token",
    "api_key",
    "token",
    "secret",
];

/// The file's text with every secret value replaced by `<secret>`.
pub fn mask_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let body = line.trim_start().trim_start_matches("- ");
        let masked = body.split_once(':').and_then(|(key, value)| {
            let key = key.trim().trim_matches(['"', '\'']);
            (SECRET_KEYS.contains(&key) && !value.trim().is_empty()).then(|| {
                let indent = &line[..line.len() - body.len()];
                format!("{indent}{key}: <secret>")
            })
        });
        out.push_str(masked.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_the_shown_configuration() {
        let text = "global:\n  smtp_auth_password: hunter2\n  smtp_from: a@b\nreceivers:\n  - name: x\n    webhook_configs:\n      - http_config:\n          basic_auth:\n            password: \"s3cret\"\n";
        let masked = mask_secrets(text);
        assert!(
            !masked.contains("hunter2") && !masked.contains("s3cret"),
            "{masked}"
        );
        assert!(
            masked.contains("  smtp_auth_password: <secret>"),
            "{masked}"
        );
        assert!(masked.contains("smtp_from: a@b"), "{masked}");
        assert!(
            masked.contains("            password: <secret>"),
            "{masked}"
        );
    }

    #[test]
    fn posted_silences_are_validated_as_alertmanager_does() {
        let posted = |matchers: &str, starts: &str, ends: &str| -> PostedSilence {
            serde_json::from_str(&format!(
                r#"{{"matchers":{matchers},"startsAt":"{starts}","endsAt":"{ends}","createdBy":"me","comment":"c"}}"#
            ))
            .expect("valid JSON")
        };
        let now = 1_800_000_000_000;
        let one = r#"[{"name":"alertname","value":"X","isRegex":false,"isEqual":true}]"#;
        let ok = silence_from(
            posted(one, "2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
            "id".into(),
            now,
        )
        .expect("valid silence");
        assert_eq!(ok.starts_at_ms, now, "a start in the past is now");
        assert_eq!(ok.matchers[0].op, MatchOp::Equal);
        let empty = r#"[{"name":"a","value":".*","isRegex":true,"isEqual":true}]"#;
        for (matchers, ends) in [
            ("[]", "2030-01-01T00:00:00Z"),
            (empty, "2030-01-01T00:00:00Z"),
            (one, "2020-06-01T00:00:00Z"),
        ] {
            assert!(
                silence_from(
                    posted(matchers, "2020-01-01T00:00:00Z", ends),
                    "id".into(),
                    now
                )
                .is_err(),
                "{matchers} until {ends}"
            );
        }
    }

    #[test]
    fn ids_are_unique_and_shaped_like_uuids() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
