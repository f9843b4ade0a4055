//! The HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, with optional auth and TLS.
//!
//! One small accept loop serves both plain HTTP and TLS through hyper, so there is one HTTP
//! stack; axum only routes.

pub mod alertmanager;
pub mod query;
pub mod targets;
pub mod tls;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
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
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::collector::{Readiness, StatusBoard};
use crate::config::WebAuth;
use crate::exposition;
use crate::history::History;
use crate::spend::SpendTracker;

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
    /// The notifier, for Alertmanager's API.
    pub notify: Option<crate::notify::actor::NotifyHandle>,
    /// When the daemon started (ms since the epoch), for the API's status.
    pub started_at_ms: i64,
    /// The query API's timeout and concurrency limit.
    pub queries: Arc<query::QueryLimits>,
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
        .route("/api/v2/alerts", get(alertmanager::alerts))
        .route("/api/v2/alerts/groups", get(alertmanager::groups))
        .route(
            "/api/v2/silences",
            get(alertmanager::silences).post(alertmanager::post_silence),
        )
        .route(
            "/api/v2/silence/{id}",
            get(alertmanager::silence).delete(alertmanager::expire_silence),
        )
        .route("/api/v2/receivers", get(alertmanager::receivers))
        .route("/api/v2/status", get(alertmanager::status))
        .route(
            "/api/v1/notify/test",
            axum::routing::post(alertmanager::notify_test),
        )
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

/// Limits of the accept loop against clients that hold connections open.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Connections open at once; more are closed as soon as they are accepted, and counted.
    pub max_connections: usize,
    /// Time allowed for a request's headers, for its body once a handler reads it (from the
    /// moment the headers arrived), and for a TLS handshake.
    pub read_timeout: Duration,
}

impl ServeLimits {
    pub fn from_config(web: &crate::config::WebConfig) -> ServeLimits {
        ServeLimits {
            max_connections: web.max_connections,
            read_timeout: web.read_timeout,
        }
    }
}

/// How often at most a refused connection is logged (each one is counted).
const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `cancel` fires, then gives open requests a short grace.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServeLimits,
    cancel: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut last_refusal_logged: Option<Instant> = None;
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
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            metrics::counter!("prismwatch_http_connections_refused_total").increment(1);
            if last_refusal_logged.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_PERIOD) {
                warn!(%peer, max_connections = limits.max_connections, "Refused a connection: the most connections allowed are open (web.max_connections); further refusals are counted in prismwatch_http_connections_refused_total.");
                last_refusal_logged = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let router = router.clone();
        let read_timeout = limits.read_timeout;
        let service = hyper::service::service_fn(move |request| {
            let router = router.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    with_body_deadline(router, request, read_timeout).await,
                )
            }
        });
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            metrics::gauge!("prismwatch_http_connections_open").increment(1.0);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(read_timeout);
            let result = match acceptor {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(error)) => {
                            debug!(%peer, %error, "TLS handshake failed.");
                            Ok(())
                        }
                        Err(_) => {
                            debug!(%peer, "TLS handshake timed out.");
                            Ok(())
                        }
                    }
                }
            };
            metrics::gauge!("prismwatch_http_connections_open").decrement(1.0);
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

/// Routes one request whose body must arrive within `timeout` of its headers: hyper bounds the
/// time to read headers but not a body, so a client dripping a body would hold a connection
/// and a handler forever. A body that misses the deadline answers 408 and closes the connection.
async fn with_body_deadline(
    router: Router,
    request: hyper::Request<hyper::body::Incoming>,
    timeout: Duration,
) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            expired: Arc::clone(&expired),
        })
    });
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    metrics::counter!("prismwatch_http_request_timeouts_total").increment(1);
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        format!(
            "request body not received within {} (web.read_timeout)\n",
            humantime::format_duration(timeout)
        ),
    )
        .into_response()
}

/// Why reading a request body failed.
#[derive(Debug, thiserror::Error)]
enum BodyReadError {
    /// The client did not send the whole body in time.
    #[error("request body not received within {0:?} (web.read_timeout)")]
    TimedOut(Duration),
    /// The connection failed while reading.
    #[error(transparent)]
    Read(#[from] hyper::Error),
}

/// A request body that fails once its deadline has passed, and says so through `expired`.
struct DeadlineBody {
    inner: hyper::body::Incoming,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    expired: Arc<AtomicBool>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = BodyReadError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, BodyReadError>>> {
        let this = self.get_mut();
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return std::task::Poll::Ready(Some(Err(BodyReadError::TimedOut(this.timeout))));
        }
        std::pin::Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(BodyReadError::Read)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
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
    // The self-metrics are also in the history (for rules and queries); here they come from
    // the recorder, always current, and once.
    let own = state.telemetry.render();
    let skip = crate::self_metrics::declared_families(&own);
    match state.history.read() {
        Ok(history) => exposition::render_except(&history, &skip, &mut body),
        Err(_) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "history unavailable\n").into_response();
        }
    }
    body.push_str(&own);
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
    let mut problems = Vec::new();
    if !pending.is_empty() {
        problems.push(format!(
            "waiting for a first collection from: {}",
            pending.join(", ")
        ));
    }
    if let Some(problem) = state.spend.save_problem() {
        problems.push(format!("AI spend state cannot be saved: {problem}"));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", problems.join("\n")),
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
            .and_then(|v| credentials(v, "Bearer"))
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

/// The answer to a failed ingest: 400 for a bad request, 503 (retry later) when the usage could
/// not be saved durably, so a 2xx always means the usage is on disk.
fn ingest_failure(error: Option<crate::spend::IngestError>) -> Response {
    use crate::spend::IngestError;
    let error = match error {
        Some(IngestError::Invalid(message)) => return bad_request(&message),
        Some(error) => error.to_string(),
        None => "the ingest task failed".to_string(),
    };
    metrics::counter!("prismwatch_ai_ingest_rejected_total", "reason" => "not_durable")
        .increment(1);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::RETRY_AFTER, "10"),
        ],
        serde_json::json!({ "error": error }).to_string(),
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
    let spend = state.spend.clone();
    let recorded = tokio::task::spawn_blocking(move || {
        spend.ingest_otlp(&request, crate::collector::now_ms())
    })
    .await;
    let summary = match recorded {
        Ok(Ok(summary)) => summary,
        Ok(Err(error)) => return ingest_failure(Some(error)),
        Err(_) => return ingest_failure(None),
    };
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
    let spend = state.spend.clone();
    let recorded =
        tokio::task::spawn_blocking(move || spend.ingest(events, crate::collector::now_ms())).await;
    let summary = match recorded {
        Ok(Ok(summary)) => summary,
        Ok(Err(error)) => return ingest_failure(Some(error)),
        Err(_) => return ingest_failure(None),
    };
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
    if let (Some(token), Some(given)) = (&auth.bearer_token, credentials(value, "Bearer")) {
        return constant_time_eq(token.expose().as_bytes(), given.trim().as_bytes());
    }
    if let (Some((user, password)), Some(encoded)) = (&auth.basic_auth, credentials(value, "Basic"))
    {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let expected = format!("{user}:{}", password.expose());
        return constant_time_eq(expected.as_bytes(), &decoded);
    }
    false
}

/// The credentials of an `Authorization` value if it uses `scheme`; schemes are
/// case-insensitive (RFC 9110, section 11.1), so `bearer TOKEN` is a bearer token.
fn credentials<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.trim_start().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
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

    #[test]
    fn auth_schemes_are_matched_case_insensitively() {
        let auth = WebAuth {
            bearer_token: Some(Secret::new("t0k")),
            basic_auth: None,
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("header"),
            );
            is_authorized(&auth, &headers)
        };
        for accepted in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR  t0k"] {
            assert!(with(accepted), "{accepted}");
        }
        for refused in ["Bearert0k", "Bearer", "Token t0k", "bearer t0kk"] {
            assert!(!with(refused), "{refused}");
        }
        let basic = WebAuth {
            bearer_token: None,
            basic_auth: Some(("prom".into(), Secret::new("pw"))),
        };
        let mut headers = HeaderMap::new();
        let value = format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode("prom:pw")
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&value).expect("header"),
        );
        assert!(is_authorized(&basic, &headers));
    }
}
