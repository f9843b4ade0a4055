//! `prismwatch query`: asks a running daemon's `/api/v1/query` (or `query_range`) and prints the
//! result, one series per line. Plain HTTP on the loopback, the same hyper stack as the server.

use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;

/// Time allowed for connecting, asking and reading the answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What to ask.
pub struct QueryRequest<'a> {
    /// Base address, e.g. `http://127.0.0.1:9777`.
    pub url: &'a str,
    pub expr: &'a str,
    pub time: Option<&'a str>,
    /// (start, end, step) for a range query.
    pub range: Option<(&'a str, &'a str, &'a str)>,
    pub token: Option<&'a str>,
}

/// Runs the query and returns the text to print, or an error to show.
pub async fn run(request: &QueryRequest<'_>) -> Result<String, String> {
    let base = request.url.trim_end_matches('/');
    let rest = base.strip_prefix("http://").ok_or_else(|| {
        format!(
            "{base}: `prismwatch query` speaks plain HTTP only; a daemon serving HTTPS (web.tls) answers the same /api/v1/query to curl --cacert"
        )
    })?;
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let mut target = match request.range {
        None => format!("/{prefix}/api/v1/query?query={}", encode(request.expr)),
        Some((start, end, step)) => format!(
            "/{prefix}/api/v1/query_range?query={}&start={}&end={}&step={}",
            encode(request.expr),
            encode(start),
            encode(end),
            encode(step)
        ),
    }
    .replace("//", "/");
    if let Some(time) = request.time {
        target.push_str(&format!("&time={}", encode(time)));
    }
    let body = tokio::time::timeout(TIMEOUT, fetch(authority, &target, request.token))
        .await
        .map_err(|_| format!("no answer from {base} within {}s", TIMEOUT.as_secs()))??;
    let json: Json = serde_json::from_slice(&body).map_err(|e| {
        format!("{base} did not answer with JSON ({e}); is it a prismwatch daemon?")
    })?;
    if json["status"] != "success" {
        return Err(format!(
            "{}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"].as_str().unwrap_or("unknown error")
        ));
    }
    Ok(render(&json["data"]))
}

/// Sends `method target` to the daemon at `base` (e.g. `http://127.0.0.1:9777`) and returns
/// the status and the JSON answer, for the other subcommands that talk to a running daemon.
pub async fn call(
    base: &str,
    method: hyper::Method,
    target: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<(u16, Json), String> {
    let base = base.trim_end_matches('/');
    let authority = base.strip_prefix("http://").ok_or_else(|| {
        format!(
            "{base}: only plain HTTP is spoken here; use curl --cacert for a daemon serving HTTPS"
        )
    })?;
    let authority = authority.split('/').next().unwrap_or(authority);
    let (status, body) = tokio::time::timeout(timeout, send(authority, method, target, token))
        .await
        .map_err(|_| format!("no answer from {base} within {}s", timeout.as_secs()))??;
    let json = serde_json::from_slice(&body).map_err(|e| {
        format!("{base} did not answer with JSON ({e}); is it a prismwatch daemon?")
    })?;
    Ok((status, json))
}

async fn fetch(authority: &str, target: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    send(authority, hyper::Method::GET, target, token)
        .await
        .map(|(_, body)| body)
}

async fn send(
    authority: &str,
    method: hyper::Method,
    target: &str,
    token: Option<&str>,
) -> Result<(u16, Vec<u8>), String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}; is the daemon running?"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {authority} failed: {e}"))?;
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(target)
        .header(hyper::header::HOST, authority);
    if let Some(token) = token {
        builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = builder
        .body(String::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request to {authority} failed: {e}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer from {authority} failed: {e}"))?
        .to_bytes()
        .to_vec();
    if status == hyper::StatusCode::UNAUTHORIZED {
        return Err(format!(
            "{authority} requires credentials: pass --token (or set PRISMWATCH_TOKEN)"
        ));
    }
    Ok((status.as_u16(), body))
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn labels(metric: &Json) -> String {
    let Some(map) = metric.as_object() else {
        return "{}".into();
    };
    let name = map.get("__name__").and_then(Json::as_str).unwrap_or("");
    let rest: Vec<String> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={}", v))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

/// `VALUE @ TIME`, the time in RFC 3339 (UTC) so a person can read it.
fn point(p: &Json) -> String {
    let seconds = p[0].as_f64().unwrap_or(0.0);
    let time = jiff::Timestamp::from_millisecond((seconds * 1000.0).round() as i64)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| seconds.to_string());
    format!("{} @ {time}", p[1].as_str().unwrap_or("?"))
}

/// The answer as text, like `promtool query`.
fn render(data: &Json) -> String {
    let mut out = String::new();
    match data["resultType"].as_str() {
        Some("scalar") => out.push_str(&format!("scalar: {}\n", point(&data["result"]))),
        Some("vector") => {
            for sample in data["result"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{} => {}\n",
                    labels(&sample["metric"]),
                    point(&sample["value"])
                ));
            }
        }
        Some("matrix") => {
            for series in data["result"].as_array().into_iter().flatten() {
                out.push_str(&format!("{} =>\n", labels(&series["metric"])));
                for p in series["values"].as_array().into_iter().flatten() {
                    out.push_str(&format!("  {}\n", point(p)));
                }
            }
        }
        _ => out.push_str(&format!("{data}\n")),
    }
    if out.is_empty() {
        out.push_str("(no series)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_renders() {
        assert_eq!(encode("rate(x[5m]) > 0"), "rate%28x%5B5m%5D%29%20%3E%200");
        let data = serde_json::json!({"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "job": "a"}, "value": [1.5, "1"]}]});
        assert_eq!(
            render(&data),
            "up{job=\"a\"} => 1 @ 1970-01-01T00:00:01.5Z\n"
        );
        let data = serde_json::json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "up"}, "values": [[1764657458, "1"], [1764657473.25, "0"]]}]});
        assert_eq!(
            render(&data),
            "up{} =>\n  1 @ 2025-12-02T06:37:38Z\n  0 @ 2025-12-02T06:37:53.25Z\n"
        );
    }
}
