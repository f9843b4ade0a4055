//! What a notification says: Alertmanager's template data (`.Receiver`, `.Status`, `.Alerts`,
//! `.GroupLabels`, `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`), the webhook payload
//! (version 4) made from it, and the built-in e-mail: Alertmanager's default subject, a plain
//! text and an HTML body that read well on a phone (what fired, on which host, since when, the
//! value, summary, description, runbook, and what resolved). Pure: the time comes in.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Label or annotation names and values, sorted by name.
pub type Pairs = BTreeMap<String, String>;

/// Whether a group (or one alert) is firing or resolved, as Alertmanager spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// One alert as a notification shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertData {
    pub status: Status,
    pub labels: Pairs,
    pub annotations: Pairs,
    pub starts_at_ms: i64,
    /// When it resolved (resolved alerts), or when it would time out (firing ones).
    pub ends_at_ms: i64,
    pub generator_url: String,
    /// Alertmanager's fingerprint, 16 hex digits.
    pub fingerprint: String,
    /// The rule's value at the last evaluation, when the alert came from a local rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// A group's notification to one receiver: Alertmanager's `template.Data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Data {
    pub receiver: String,
    pub status: Status,
    pub alerts: Vec<AlertData>,
    pub group_labels: Pairs,
    pub common_labels: Pairs,
    pub common_annotations: Pairs,
    pub external_url: String,
    pub group_key: String,
}

impl Data {
    /// Builds the data of a group: firing alerts first, then resolved ones; the status is
    /// firing while any alert fires; common labels and annotations are those every alert has.
    pub fn new(
        receiver: &str,
        group_key: &str,
        group_labels: Pairs,
        mut alerts: Vec<AlertData>,
        external_url: &str,
    ) -> Data {
        alerts.sort_by(|a, b| {
            (a.status != Status::Firing, a.starts_at_ms, &a.fingerprint).cmp(&(
                b.status != Status::Firing,
                b.starts_at_ms,
                &b.fingerprint,
            ))
        });
        let status = if alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        };
        Data {
            receiver: receiver.to_string(),
            status,
            common_labels: common(alerts.iter().map(|a| &a.labels)),
            common_annotations: common(alerts.iter().map(|a| &a.annotations)),
            alerts,
            group_labels,
            external_url: external_url.to_string(),
            group_key: group_key.to_string(),
        }
    }

    pub fn firing(&self) -> impl Iterator<Item = &AlertData> {
        self.alerts.iter().filter(|a| a.status == Status::Firing)
    }

    pub fn resolved(&self) -> impl Iterator<Item = &AlertData> {
        self.alerts.iter().filter(|a| a.status == Status::Resolved)
    }
}

/// The pairs every map has with the same value.
fn common<'a>(mut maps: impl Iterator<Item = &'a Pairs>) -> Pairs {
    let Some(first) = maps.next() else {
        return Pairs::new();
    };
    let mut common = first.clone();
    for map in maps {
        common.retain(|k, v| map.get(k) == Some(v));
    }
    common
}

/// Formats ms since the epoch as RFC 3339 in UTC, as Alertmanager's JSON does.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "0001-01-01T00:00:00Z".to_string())
}

/// Alertmanager's webhook payload, version 4. Firing alerts carry the zero `endsAt`, as
/// Alertmanager sends them.
pub fn webhook_payload(data: &Data, max_alerts: usize) -> serde_json::Value {
    let shown = if max_alerts == 0 {
        data.alerts.len()
    } else {
        max_alerts.min(data.alerts.len())
    };
    let alerts: Vec<serde_json::Value> = data.alerts[..shown]
        .iter()
        .map(|alert| {
            serde_json::json!({
                "status": alert.status.as_str(),
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": rfc3339(alert.starts_at_ms),
                "endsAt": match alert.status {
                    Status::Firing => "0001-01-01T00:00:00Z".to_string(),
                    Status::Resolved => rfc3339(alert.ends_at_ms),
                },
                "generatorURL": alert.generator_url,
                "fingerprint": alert.fingerprint,
            })
        })
        .collect();
    serde_json::json!({
        "version": "4",
        "groupKey": data.group_key,
        "truncatedAlerts": data.alerts.len() - shown,
        "status": data.status.as_str(),
        "receiver": data.receiver,
        "groupLabels": data.group_labels,
        "commonLabels": data.common_labels,
        "commonAnnotations": data.common_annotations,
        "externalURL": data.external_url,
        "alerts": alerts,
    })
}

/// Alertmanager's default e-mail subject:
/// `[FIRING:2] GroupValues (CommonLabelValues not in the group)`.
pub fn subject(data: &Data) -> String {
    let mut subject = match data.status {
        Status::Firing => format!("[FIRING:{}]", data.firing().count()),
        Status::Resolved => "[RESOLVED]".to_string(),
    };
    for value in data.group_labels.values() {
        subject.push(' ');
        subject.push_str(value);
    }
    let extra: Vec<&str> = data
        .common_labels
        .iter()
        .filter(|(k, _)| !data.group_labels.contains_key(*k))
        .map(|(_, v)| v.as_str())
        .collect();
    if !extra.is_empty() {
        let _ = write!(subject, " ({})", extra.join(" "));
    }
    subject
}

/// The built-in plain-text body.
pub fn text_body(data: &Data, now_ms: i64) -> String {
    let mut out = String::new();
    let firing = data.firing().count();
    let resolved = data.resolved().count();
    let _ = writeln!(out, "{}", headline(firing, resolved));
    for alert in data.firing() {
        out.push('\n');
        let _ = writeln!(out, "FIRING: {}", title(alert));
        let _ = writeln!(
            out,
            "  Since: {} ({} ago)",
            human_time(alert.starts_at_ms),
            human_age(now_ms - alert.starts_at_ms)
        );
        describe_text(&mut out, alert);
    }
    for alert in data.resolved() {
        out.push('\n');
        let _ = writeln!(out, "RESOLVED: {}", title(alert));
        let _ = writeln!(
            out,
            "  From {} to {} ({})",
            human_time(alert.starts_at_ms),
            human_time(alert.ends_at_ms),
            human_age(alert.ends_at_ms - alert.starts_at_ms)
        );
        describe_text(&mut out, alert);
    }
    if !data.external_url.is_empty() {
        let _ = write!(out, "\nSent by {}\n", data.external_url);
    }
    out
}

fn describe_text(out: &mut String, alert: &AlertData) {
    if let Some(value) = alert.value {
        let _ = writeln!(out, "  Value: {}", format_value(value));
    }
    for (name, label) in [
        ("summary", "Summary"),
        ("description", "Description"),
        ("runbook_url", "Runbook"),
        ("runbook", "Runbook"),
    ] {
        if let Some(text) = alert.annotations.get(name) {
            let _ = writeln!(out, "  {label}: {text}");
        }
    }
    let _ = writeln!(out, "  Labels: {}", pairs_text(&alert.labels));
    if !alert.generator_url.is_empty() {
        let _ = writeln!(out, "  Source: {}", alert.generator_url);
    }
}

/// The built-in HTML body: one column, large type, no external resources.
pub fn html_body(data: &Data, now_ms: i64) -> String {
    let firing = data.firing().count();
    let resolved = data.resolved().count();
    let mut out = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
         <body style=\"margin:0;padding:12px;font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;font-size:16px;line-height:1.4;color:#222;\">\
         <div style=\"max-width:640px;margin:0 auto;\">",
    );
    let _ = write!(
        out,
        "<h2 style=\"font-size:20px;margin:0 0 12px;\">{}</h2>",
        escape(&headline(firing, resolved))
    );
    for alert in data.alerts.iter() {
        let (colour, word) = match alert.status {
            Status::Firing => ("#c62828", "FIRING"),
            Status::Resolved => ("#2e7d32", "RESOLVED"),
        };
        let _ = write!(
            out,
            "<div style=\"border-left:6px solid {colour};padding:8px 12px;margin:0 0 12px;background:#fafafa;\">\
             <div style=\"font-weight:bold;color:{colour};\">{word}</div>\
             <div style=\"font-size:18px;font-weight:bold;\">{}</div>",
            escape(&title(alert))
        );
        let when = match alert.status {
            Status::Firing => format!(
                "Since {} ({} ago)",
                human_time(alert.starts_at_ms),
                human_age(now_ms - alert.starts_at_ms)
            ),
            Status::Resolved => format!(
                "From {} to {} ({})",
                human_time(alert.starts_at_ms),
                human_time(alert.ends_at_ms),
                human_age(alert.ends_at_ms - alert.starts_at_ms)
            ),
        };
        let _ = write!(out, "<div>{}</div>", escape(&when));
        if let Some(value) = alert.value {
            let _ = write!(
                out,
                "<div>Value: <b>{}</b></div>",
                escape(&format_value(value))
            );
        }
        if let Some(summary) = alert.annotations.get("summary") {
            let _ = write!(out, "<p style=\"margin:8px 0;\">{}</p>", escape(summary));
        }
        if let Some(description) = alert.annotations.get("description") {
            let _ = write!(
                out,
                "<p style=\"margin:8px 0;color:#444;\">{}</p>",
                escape(description)
            );
        }
        for name in ["runbook_url", "runbook"] {
            if let Some(url) = alert.annotations.get(name) {
                let _ = write!(
                    out,
                    "<p style=\"margin:8px 0;\"><a href=\"{0}\">Runbook</a></p>",
                    escape(url)
                );
            }
        }
        let _ = write!(
            out,
            "<div style=\"font-size:13px;color:#666;word-break:break-all;\">{}</div>",
            escape(&pairs_text(&alert.labels))
        );
        if !alert.generator_url.is_empty() {
            let _ = write!(
                out,
                "<div style=\"font-size:13px;\"><a href=\"{}\">Source</a></div>",
                escape(&alert.generator_url)
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</div></body></html>\n");
    out
}

fn headline(firing: usize, resolved: usize) -> String {
    match (firing, resolved) {
        (0, r) => format!("{r} alert{} resolved", plural(r)),
        (f, 0) => format!("{f} alert{} firing", plural(f)),
        (f, r) => format!("{f} alert{} firing, {r} resolved", plural(f)),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// "HostHighCpu on web-1 (critical)".
fn title(alert: &AlertData) -> String {
    let mut title = alert
        .labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "alert".to_string());
    if let Some(instance) = alert.labels.get("instance") {
        let _ = write!(title, " on {instance}");
    }
    if let Some(severity) = alert.labels.get("severity") {
        let _ = write!(title, " ({severity})");
    }
    title
}

fn pairs_text(pairs: &Pairs) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn human_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// "1h 5m", "42s".
pub fn human_age(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// HTML escaping for text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_662_400_000; // 2025-12-02T08:00:00Z

    fn pairs(list: &[(&str, &str)]) -> Pairs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn alert(status: Status, name: &str, instance: &str) -> AlertData {
        AlertData {
            status,
            labels: pairs(&[
                ("alertname", name),
                ("instance", instance),
                ("severity", "critical"),
            ]),
            annotations: pairs(&[
                ("summary", "CPU on web-1 is 93% busy"),
                ("description", "The CPUs of web-1 have been <busy>."),
                ("runbook_url", "https://runbooks.example/cpu"),
            ]),
            starts_at_ms: NOW - 10 * 60_000,
            ends_at_ms: NOW - 60_000,
            generator_url: "http://web-1:9777/graph?g0.expr=up".into(),
            fingerprint: format!("{:016x}", name.len()),
            value: Some(93.25),
        }
    }

    fn data() -> Data {
        Data::new(
            "oncall",
            "{}:{alertname=\"HostHighCpu\"}",
            pairs(&[("alertname", "HostHighCpu")]),
            vec![
                alert(Status::Resolved, "HostHighCpu", "web-2"),
                alert(Status::Firing, "HostHighCpu", "web-1"),
            ],
            "http://web-1:9777",
        )
    }

    #[test]
    fn subject_is_alertmanagers_default() {
        let data = data();
        assert_eq!(subject(&data), "[FIRING:1] HostHighCpu (critical)");
        let mut resolved = data.clone();
        resolved.alerts.retain(|a| a.status == Status::Resolved);
        let resolved = Data::new(
            "oncall",
            "k",
            resolved.group_labels.clone(),
            resolved.alerts,
            "",
        );
        assert_eq!(
            subject(&resolved),
            "[RESOLVED] HostHighCpu (web-2 critical)"
        );
    }

    #[test]
    fn text_body_says_what_where_since_when_and_what_resolved() {
        let text = text_body(&data(), NOW);
        let expected = "\
1 alert firing, 1 resolved

FIRING: HostHighCpu on web-1 (critical)
  Since: 2025-12-02 07:50:00 UTC (10m 0s ago)
  Value: 93.25
  Summary: CPU on web-1 is 93% busy
  Description: The CPUs of web-1 have been <busy>.
  Runbook: https://runbooks.example/cpu
  Labels: alertname=HostHighCpu, instance=web-1, severity=critical
  Source: http://web-1:9777/graph?g0.expr=up

RESOLVED: HostHighCpu on web-2 (critical)
  From 2025-12-02 07:50:00 UTC to 2025-12-02 07:59:00 UTC (9m 0s)
  Value: 93.25
  Summary: CPU on web-1 is 93% busy
  Description: The CPUs of web-1 have been <busy>.
  Runbook: https://runbooks.example/cpu
  Labels: alertname=HostHighCpu, instance=web-2, severity=critical
  Source: http://web-1:9777/graph?g0.expr=up

Sent by http://web-1:9777
";
        assert_eq!(text, expected);
    }

    #[test]
    fn html_body_escapes_and_fits_a_phone() {
        let html = html_body(&data(), NOW);
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("have been &lt;busy&gt;."));
        assert!(html.contains("<a href=\"https://runbooks.example/cpu\">Runbook</a>"));
        assert!(html.find("FIRING") < html.find("RESOLVED"));
        assert!(html.contains("Value: <b>93.25</b>"));
    }

    #[test]
    fn webhook_payload_is_version_4() {
        let payload = webhook_payload(&data(), 0);
        assert_eq!(payload["version"], "4");
        assert_eq!(payload["status"], "firing");
        assert_eq!(payload["receiver"], "oncall");
        assert_eq!(payload["truncatedAlerts"], 0);
        assert_eq!(payload["alerts"][0]["status"], "firing");
        assert_eq!(payload["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(payload["alerts"][1]["endsAt"], "2025-12-02T07:59:00Z");
        assert_eq!(payload["alerts"][0]["startsAt"], "2025-12-02T07:50:00Z");
        assert_eq!(payload["commonLabels"]["severity"], "critical");
        assert!(payload["commonLabels"].get("instance").is_none());
        assert!(payload["alerts"][0].get("value").is_none());
        let truncated = webhook_payload(&data(), 1);
        assert_eq!(truncated["truncatedAlerts"], 1);
        assert_eq!(truncated["alerts"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(human_age(42_000), "42s");
        assert_eq!(human_age(3_900_000), "1h 5m");
        assert_eq!(human_age(90_000_000), "1d 1h");
        assert_eq!(human_age(-5), "0s");
    }
}
