//! `POST /api/v1/ai/usage`: a batch `{"events": [...]}` for applications without OpenTelemetry.
//! Validation is all-or-nothing and names the first bad field, e.g. `events[3].input_tokens`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ledger::{Latency, UsageEvent};
use super::pricing::Tokens;

/// Events accepted per request.
pub const MAX_EVENTS: usize = 10_000;

/// How far in the future a timestamp may be (clock skew), in milliseconds.
const MAX_FUTURE_MS: i64 = 3_600_000;

/// Longest accepted provider, model or label value.
pub const MAX_TEXT: usize = 200;

/// A usage event with its time (milliseconds since the epoch; now when the client gave none).
pub type TimedEvent = (UsageEvent, i64);

/// Parses and validates a batch. `now_ms` stamps events without a timestamp.
pub fn parse_batch(
    body: &[u8],
    allowed_labels: &[String],
    now_ms: i64,
) -> Result<Vec<TimedEvent>, String> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| format!("body: invalid JSON ({e})"))?;
    let Some(object) = root.as_object() else {
        return Err("body: expected an object {\"events\": [...]}".into());
    };
    if let Some(key) = object.keys().find(|k| k.as_str() != "events") {
        return Err(format!(
            "{}: unknown field; the body has only `events`",
            shown(key)
        ));
    }
    let events = object
        .get("events")
        .and_then(Value::as_array)
        .ok_or("events: expected an array of usage events")?;
    if events.len() > MAX_EVENTS {
        return Err(format!(
            "events: {} events in one request, at most {MAX_EVENTS}",
            events.len()
        ));
    }
    events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            parse_event(event, allowed_labels, now_ms).map_err(|e| format!("events[{index}].{e}"))
        })
        .collect()
}

fn parse_event(
    value: &Value,
    allowed_labels: &[String],
    now_ms: i64,
) -> Result<TimedEvent, String> {
    let object = value.as_object().ok_or("expected an object")?;
    let mut event = UsageEvent {
        requests: 1.0,
        ..UsageEvent::default()
    };
    let mut timestamp = now_ms;
    let mut tokens = Tokens::default();
    let mut labels = BTreeMap::new();
    for (key, field) in object {
        match key.as_str() {
            "provider" => event.provider = text(key, field)?,
            "model" => event.model = text(key, field)?,
            "input_tokens" => tokens.input = count(key, field)?,
            "output_tokens" => tokens.output = count(key, field)?,
            "cached_tokens" => tokens.cached = count(key, field)?,
            "latency_ms" => event.latency = Some(Latency::single(count(key, field)? / 1000.0)),
            "cache_hit" => {
                event.cache_hit = Some(
                    field
                        .as_bool()
                        .ok_or(format!("{key}: expected true or false"))?,
                )
            }
            "timestamp" => timestamp = time(key, field)?,
            "labels" => {
                let map = field.as_object().ok_or(format!(
                    "{key}: expected an object of label names to values"
                ))?;
                for (label, value) in map {
                    insert_label(
                        &mut labels,
                        label,
                        value,
                        allowed_labels,
                        &format!("labels.{}", shown(label)),
                    )?;
                }
            }
            label if allowed_labels.iter().any(|l| l == label) => {
                insert_label(&mut labels, label, field, allowed_labels, label)?
            }
            other => {
                return Err(format!(
                    "{}: unknown field; allowed are provider, model, input_tokens, output_tokens, cached_tokens, latency_ms, cache_hit, timestamp, labels and the labels {allowed_labels:?}",
                    shown(other)
                ));
            }
        }
    }
    if event.provider.is_empty() {
        return Err("provider: missing".into());
    }
    if event.model.is_empty() {
        return Err("model: missing".into());
    }
    if timestamp > now_ms + MAX_FUTURE_MS {
        return Err("timestamp: more than an hour in the future; check the client's clock".into());
    }
    if tokens.cached > tokens.input {
        return Err(
            "cached_tokens: larger than input_tokens (cached tokens are part of the input)".into(),
        );
    }
    event.tokens = tokens;
    event.labels = labels;
    Ok((event, timestamp))
}

fn insert_label(
    labels: &mut BTreeMap<String, String>,
    label: &str,
    value: &Value,
    allowed: &[String],
    field: &str,
) -> Result<(), String> {
    if !allowed.iter().any(|l| l == label) {
        return Err(format!(
            "{field}: label `{}` is not allowed; allowed labels are {allowed:?} (ai.allowed_labels)",
            shown(label)
        ));
    }
    labels.insert(label.to_string(), text(field, value)?);
    Ok(())
}

/// A client-given name as an error shows it: at most 64 characters, control characters escaped,
/// so an error cannot carry a huge or line-forging name into a log.
pub fn shown(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(64)
        .flat_map(|c| {
            let escape = c.is_control();
            let text: Vec<char> = if escape {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            text
        })
        .collect();
    if name.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

fn text(key: &str, value: &Value) -> Result<String, String> {
    let text = value.as_str().ok_or(format!("{key}: expected a string"))?;
    if text.is_empty() || text.chars().count() > MAX_TEXT || text.chars().any(char::is_control) {
        return Err(format!(
            "{key}: expected 1 to {MAX_TEXT} printable characters"
        ));
    }
    Ok(text.to_string())
}

fn count(key: &str, value: &Value) -> Result<f64, String> {
    match value.as_u64() {
        Some(n) if n <= 1 << 40 => Ok(n as f64),
        _ => Err(format!("{key}: expected a non-negative integer")),
    }
}

/// RFC 3339 text or seconds since the epoch.
fn time(key: &str, value: &Value) -> Result<i64, String> {
    if let Some(seconds) = value.as_f64() {
        return Ok((seconds * 1000.0) as i64);
    }
    let text = value.as_str().ok_or(format!(
        "{key}: expected RFC 3339 text or seconds since the epoch"
    ))?;
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| format!("{key}: not an RFC 3339 time ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> String {
        match parse_batch(body.as_bytes(), &["feature".to_string()], 1_900_000_000_000) {
            Ok(events) => format!("ok {}", events.len()),
            Err(message) => message,
        }
    }

    #[test]
    fn good_events_parse_with_labels_and_time() {
        let body = r#"{"events":[{"provider":"google","model":"gemini-2.5-flash","input_tokens":10,"output_tokens":5,"cached_tokens":4,"latency_ms":1500,"cache_hit":false,"timestamp":"2026-11-25T10:00:00Z","feature":"chat"},
                                 {"provider":"openai","model":"gpt-4o","input_tokens":1,"output_tokens":1,"labels":{"feature":"search"}}]}"#;
        let events = parse_batch(body.as_bytes(), &["feature".to_string()], 1_900_000_000_000)
            .unwrap_or_default();
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].0.tokens,
            Tokens {
                input: 10.0,
                output: 5.0,
                cached: 4.0
            }
        );
        assert_eq!(events[0].0.latency, Some(Latency::single(1.5)));
        assert_eq!(events[0].1, 1_795_600_800_000);
        assert_eq!(
            events[1].0.labels.get("feature").map(String::as_str),
            Some("search")
        );
        assert_eq!(events[1].1, 1_900_000_000_000);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            check(r#"{"events":[{"provider":"g","model":"m","input_tokens":-1}]}"#),
            "events[0].input_tokens: expected a non-negative integer"
        );
        assert_eq!(
            check(r#"{"events":[{"model":"m"}]}"#),
            "events[0].provider: missing"
        );
        assert!(
            check(r#"{"events":[{"provider":"g","model":"m","tenant":"x"}]}"#)
                .starts_with("events[0].tenant: unknown field")
        );
        assert!(
            check(r#"{"events":[{"provider":"g","model":"m","labels":{"tenant":"x"}}]}"#)
                .starts_with("events[0].labels.tenant: label `tenant` is not allowed")
        );
        assert!(check(r#"{"evnts":[]}"#).starts_with("evnts: unknown field"));
        assert!(check("{").starts_with("body: invalid JSON"));
        assert_eq!(
            check(
                r#"{"events":[{"provider":"g","model":"m","input_tokens":1,"cached_tokens":2}]}"#
            ),
            "events[0].cached_tokens: larger than input_tokens (cached tokens are part of the input)"
        );
        assert_eq!(check(r#"{"events":[]}"#), "ok 0");
    }

    #[test]
    fn names_in_errors_are_bounded_and_cannot_forge_log_lines() {
        let long = "x".repeat(100_000);
        let message = check(&format!(r#"{{"events":[{{"{long}":1}}]}}"#));
        assert!(message.len() < 400, "{} bytes", message.len());
        assert!(message.starts_with(&format!("events[0].{}...: unknown field", "x".repeat(64))));
        let forged = check(r#"{"events":[{"a\nERROR forged\u001b[31m":1}]}"#);
        assert!(
            !forged.contains('\n') && !forged.contains('\u{1b}'),
            "{forged}"
        );
        assert!(
            forged.starts_with(r"events[0].a\nERROR forged\u{1b}[31m: unknown field"),
            "{forged}"
        );
        let provider = check(&format!(
            r#"{{"events":[{{"provider":"{long}","model":"m"}}]}}"#
        ));
        assert_eq!(
            provider,
            "events[0].provider: expected 1 to 200 printable characters"
        );
    }
}
