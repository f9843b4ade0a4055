//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, with optional auth and TLS.
//!
//! One small accept loop serves both plain HTTP and TLS through hyper, so there is one HTTP
//! stack; axum only routes.

pub mod query;
pub mod targets;
pub mod tls;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::collector::{Readiness, StatusBoard};
use crate::config::WebAuth;
use crate::exposition;
use crate::history::History;
use crate::spend::SpendTracker;

/// How long a client may take to send its request headers or finish a TLS handshake.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to finish when the server stops.
const DRAIN_GRACE: Duration = Duration::from_secs(3);

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    pub history: Arc<RwLock<History>>,
    pub telemetry: PrometheusHandle,
    pub readiness: Readiness,
    /// Collector details that are not metrics (query texts, long-running sessions).
    pub status: StatusBoard,
    /// Swapped in place by a reload.
    pub auth: Arc<RwLock<WebAuth>>,
    /// AI usage ingest and spend.
    pub spend: SpendTracker,
    /// The running rule groups and their alerts.
    pub rules: crate::rules::manager::RulesView,
}

/// The routes, with auth on everything but the health probes.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/status", get(status_handler))
        .route("/api/v1/ai/spend", get(spend_handler))
        .route(
            "/api/v1/query",
            get(query::query_get).post(query::query_post),
        )
        .route(
            "/api/v1/query_range",
            get(query::range_get).post(query::range_post),
        )
        .route("/api/v1/alerts", get(query::alerts))
        .route("/api/v1/rules", get(query::rules))
        .route(
            "/api/v1/labels",
            get(query::label_names).post(query::label_names),
        )
        .route(
            "/api/v1/series",
            get(query::series_get).post(query::series_post),
        )
        .route("/api/v1/metadata", get(query::metadata))
        .route("/api/v1/label/{name}/values", get(query::label_values))
        .route("/api/v1/status/buildinfo", get(query::buildinfo))
        .route("/api/v1/targets", get(targets::targets))
        .route("/", get(index))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    // Ingest has its own token (ai.ingest_token) and body limit, checked in the handlers.
    let ingest = Router::new()
        .route("/v1/metrics", axum::routing::post(otlp_handler))
        .route("/api/v1/ai/usage", axum::routing::post(usage_handler))
        .layer(axum::extract::DefaultBodyLimit::disable());
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(ingest)
        .route("/readyz", get(readyz))
        .merge(protected)
        .with_state(state)
}

/// Serves `router` on `listener` until `cancel` fires, then gives open requests a short grace.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of file descriptors is the usual cause; back off briefly.
                    warn!(%error, "Failed to accept a connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(CLIENT_TIMEOUT);
            let result = match acceptor {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(error)) => {
                            debug!(%peer, %error, "TLS handshake failed.");
                            return;
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out.");
                            return;
                        }
                    }
                }
            };
            if let Err(error) = result {
                debug!(%peer, %error, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN_GRACE) => info!("Closed connections still open after the grace period."),
    }
}

/// Binds the listen address with an error that says what to do about it.
pub async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot listen on {address}: {error}; choose another address with --listen or web.listen"
        )
    })
}

async fn metrics_handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let mut body = String::with_capacity(64 * 1024);
    match state.history.read() {
        Ok(history) => exposition::render(&history, &mut body),
        Err(_) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "history unavailable\n").into_response();
        }
    }
    body.push_str(&state.telemetry.render());
    metrics::counter!("prismwatch_scrapes_total").increment(1);
    let wants_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|enc| enc.trim().split(';').next() == Some("gzip"))
        });
    let response = if wants_gzip {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        match encoder
            .write_all(body.as_bytes())
            .and_then(|()| encoder.finish())
        {
            Ok(compressed) => Response::builder()
                .header(header::CONTENT_TYPE, exposition::CONTENT_TYPE)
                .header(header::CONTENT_ENCODING, "gzip")
                .body(Body::from(compressed))
                .unwrap_or_default(),
            Err(_) => plain_metrics(body),
        }
    } else {
        plain_metrics(body)
    };
    metrics::histogram!("prismwatch_scrape_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    response
}

fn plain_metrics(body: String) -> Response {
    ([(header::CONTENT_TYPE, exposition::CONTENT_TYPE)], body).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let pending = state.readiness.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "waiting for a first collection from: {}\n",
                pending.join(", ")
            ),
        )
            .into_response()
    }
}

async fn status_handler(State(state): State<AppState>) -> Response {
    let body = serde_json::json!({ "collectors": state.status.snapshot() });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn spend_handler(State(state): State<AppState>) -> Response {
    let now = crate::collector::now_ms();
    match state.spend.report(now) {
        Some(report) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&report).unwrap_or_default(),
        )
            .into_response(),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Checks ingest credentials and reads the body within the configured limit.
async fn ingest_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, Response> {
    let (ingest_token, limit) = state
        .spend
        .with_config(|c| (c.ingest_token.clone(), c.max_body_bytes))
        .ok_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
    let authorized = match &ingest_token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                constant_time_eq(token.expose().as_bytes(), given.trim().as_bytes())
            }),
        None => {
            let auth = state.auth.read().map(|a| a.clone()).unwrap_or_default();
            !auth.is_enabled() || is_authorized(&auth, headers)
        }
    };
    if !authorized {
        metrics::counter!("prismwatch_ai_ingest_rejected_total", "reason" => "unauthorized")
            .increment(1);
        return Err((
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "unauthorized\n",
        )
            .into_response());
    }
    let too_large = || {
        metrics::counter!("prismwatch_ai_ingest_rejected_total", "reason" => "too_large")
            .increment(1);
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {limit} bytes (ai.max_body_bytes)\n"),
        )
            .into_response()
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzipped {
        return Ok(bytes.to_vec());
    }
    // Decompress with the same limit, so a small gzip bomb cannot blow up memory.
    let mut decoded = Vec::new();
    let mut reader = std::io::Read::take(
        flate2::read::GzDecoder::new(bytes.as_ref()),
        limit as u64 + 1,
    );
    std::io::Read::read_to_end(&mut reader, &mut decoded)
        .map_err(|e| bad_request(&format!("body: invalid gzip ({e})")))?;
    if decoded.len() > limit {
        return Err(too_large());
    }
    Ok(decoded)
}

fn bad_request(message: &str) -> Response {
    metrics::counter!("prismwatch_ai_ingest_rejected_total", "reason" => "malformed").increment(1);
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": message }).to_string(),
    )
        .into_response()
}

async fn otlp_handler(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match ingest_body(&state, &headers, body).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let request = match crate::spend::otlp::decode(&bytes, json) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    let summary = state
        .spend
        .ingest_otlp(&request, crate::collector::now_ms());
    metrics::counter!("prismwatch_ai_ingest_events_total", "path" => "otlp")
        .increment(summary.accepted as u64);
    if json {
        ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
    } else {
        // An empty ExportMetricsServiceResponse encodes to zero bytes.
        (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::<u8>::new(),
        )
            .into_response()
    }
}

async fn usage_handler(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match ingest_body(&state, &headers, body).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let allowed = state
        .spend
        .with_config(|c| c.allowed_labels.clone())
        .unwrap_or_default();
    let events =
        match crate::spend::event::parse_batch(&bytes, &allowed, crate::collector::now_ms()) {
            Ok(events) => events,
            Err(message) => return bad_request(&message),
        };
    let summary = state.spend.ingest(events);
    metrics::counter!("prismwatch_ai_ingest_events_total", "path" => "json")
        .increment(summary.accepted as u64);
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&summary).unwrap_or_default(),
    )
        .into_response()
}

async fn index() -> &'static str {
    "prismwatch\n\n/metrics  Prometheus exposition\n/healthz  liveness\n/readyz   readiness (first collection done)\n/api/v1/status  collector details (top statements, long-running queries)\n"
}

async fn require_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let auth = match state.auth.read() {
        Ok(auth) => auth.clone(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    if !auth.is_enabled() || is_authorized(&auth, request.headers()) {
        return next.run(request).await;
    }
    let challenge = if auth.basic_auth.is_some() {
        "Basic realm=\"prismwatch\""
    } else {
        "Bearer"
    };
    let mut response = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

fn is_authorized(auth: &WebAuth, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let (Some(token), Some(given)) = (&auth.bearer_token, value.strip_prefix("Bearer ")) {
        return constant_time_eq(token.expose().as_bytes(), given.trim().as_bytes());
    }
    if let (Some((user, password)), Some(encoded)) =
        (&auth.basic_auth, value.strip_prefix("Basic "))
    {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let expected = format!("{user}:{}", password.expose());
        return constant_time_eq(expected.as_bytes(), &decoded);
    }
    false
}

/// Compares without an early exit, so response time does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (index, byte) in b.iter().enumerate() {
        difference |= usize::from(a.get(index).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn bearer_and_basic_credentials_are_checked() {
        let auth = WebAuth {
            bearer_token: Some(Secret::new("t0k")),
            basic_auth: Some(("prom".into(), Secret::new("pw"))),
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(header::AUTHORIZATION, value);
            }
            is_authorized(&auth, &headers)
        };
        assert!(with("Bearer t0k"));
        assert!(!with("Bearer t0"));
        assert!(!with("Bearer t0kk"));
        assert!(with(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("prom:pw")
        )));
        assert!(!with(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("prom:px")
        )));
        assert!(!with(""));
    }
}
