//! Webhook delivery (Alertmanager's `webhook_configs`, payload version 4) and the small HTTP
//! client it shares with forwarding: one POST over hyper (plain or rustls with the Mozilla
//! roots), the whole exchange bounded by a timeout and the answer's body by a size.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::config::Secret;

/// The most of an answer's body that is read (for the error message); the rest is dropped.
pub const RESPONSE_LIMIT: usize = 64 * 1024;

/// How to authenticate a POST.
#[derive(Clone, Debug, PartialEq)]
pub enum HttpAuth {
    None,
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

/// A webhook receiver's transport settings.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    pub url: String,
    pub auth: HttpAuth,
    pub timeout: Duration,
    /// At most this many alerts per payload (0: all), as Alertmanager's `max_alerts`.
    pub max_alerts: usize,
}

/// Why a POST failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// A bad URL: not retried.
    #[error("{0}")]
    Invalid(String),
    /// A 4xx other than 408/429: the payload will not be accepted; not retried.
    #[error("{0}")]
    Permanent(String),
    /// A network error, a timeout, a 5xx, 408 or 429: retried later.
    #[error("{0}")]
    Transient(String),
}

impl HttpError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, HttpError::Transient(_))
    }
}

/// POSTs `body` as JSON to `url` and returns the status line on a 2xx answer.
pub async fn post_json(
    url: &str,
    auth: &HttpAuth,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<String, HttpError> {
    match tokio::time::timeout(timeout, post_unbounded(url, auth, body)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Transient(format!(
            "{} did not answer within {}s",
            redact(url),
            timeout.as_secs_f64()
        ))),
    }
}

async fn post_unbounded(url: &str, auth: &HttpAuth, body: Vec<u8>) -> Result<String, HttpError> {
    let shown = redact(url);
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| HttpError::Invalid(format!("URL {shown}: {e}")))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(HttpError::Invalid(format!(
                "URL {shown}: only http:// and https:// are supported"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| HttpError::Invalid(format!("URL {shown} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or("").to_string())
        .unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut request = hyper::Request::post(path)
        .header(hyper::header::HOST, &authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("prismwatch/", env!("CARGO_PKG_VERSION")),
        );
    match auth {
        HttpAuth::None => {}
        HttpAuth::Basic { username, password } => {
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose()));
            request = request.header(hyper::header::AUTHORIZATION, format!("Basic {token}"));
        }
        HttpAuth::Bearer(token) => {
            request = request.header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            );
        }
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| HttpError::Invalid(format!("cannot build the request to {shown}: {e}")))?;
    let network = |e: &dyn std::fmt::Display| HttpError::Transient(format!("{shown}: {e}"));
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| network(&e))?;
    let response = if https {
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| HttpError::Invalid(format!("URL {shown}: {e}")))?;
        let stream = tls_connector()
            .connect(name, stream)
            .await
            .map_err(|e| network(&e))?;
        send(TokioIo::new(stream), request).await
    } else {
        send(TokioIo::new(stream), request).await
    }
    .map_err(|e| network(&e))?;
    let (status, answer) = response;
    let line = format!(
        "{} {}",
        status.as_u16(),
        String::from_utf8_lossy(&answer).trim()
    );
    if status.is_success() {
        Ok(line)
    } else if status.is_server_error()
        || status == hyper::StatusCode::REQUEST_TIMEOUT
        || status == hyper::StatusCode::TOO_MANY_REQUESTS
    {
        Err(HttpError::Transient(format!("{shown} answered {line}")))
    } else {
        Err(HttpError::Permanent(format!("{shown} answered {line}")))
    }
}

/// One request on a fresh connection. The connection task is aborted when this returns or is
/// cancelled by the caller's timeout, so a silent server leaves nothing behind.
async fn send<S>(
    io: TokioIo<S>,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(hyper::StatusCode, Vec<u8>), hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, read_bounded(response.into_body()).await))
}

/// Reads at most [`RESPONSE_LIMIT`] bytes of a body.
async fn read_bounded(mut body: hyper::body::Incoming) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            let room = RESPONSE_LIMIT.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() >= RESPONSE_LIMIT {
                break;
            }
        }
    }
    out.truncate(512);
    out
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            });
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(Arc::clone(config))
}

/// A URL without its user-info (a password in the URL never reaches a log).
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<redacted>@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server answering `answer`, returning what it received.
    async fn server(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut received = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let n = socket.read(&mut buffer).await.expect("read");
                received.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&received);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            socket.write_all(answer.as_bytes()).await.expect("write");
            String::from_utf8_lossy(&received).to_string()
        });
        (url, task)
    }

    #[tokio::test]
    async fn posts_json_with_bearer_auth() {
        let (url, server) = server("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        let answer = post_json(
            &url,
            &HttpAuth::Bearer(Secret::new("s3cret")),
            b"{\"version\":\"4\"}".to_vec(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(answer, Ok("200 ok".to_string()));
        let request = server.await.expect("server");
        assert!(request.starts_with("POST /hook HTTP/1.1"), "{request}");
        assert!(
            request.contains("authorization: Bearer s3cret"),
            "{request}"
        );
        assert!(
            request.contains("content-type: application/json"),
            "{request}"
        );
        assert!(request.ends_with("{\"version\":\"4\"}"), "{request}");
    }

    #[tokio::test]
    async fn a_server_error_is_retried_a_client_error_is_not() {
        let (url, _server) =
            server("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy").await;
        let error = post_json(
            &url,
            &HttpAuth::None,
            b"{}".to_vec(),
            Duration::from_secs(5),
        )
        .await
        .expect_err("503");
        assert!(error.is_retryable());
        assert!(error.to_string().contains("503 busy"), "{error}");
        let (url, _server) =
            server("HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nbad").await;
        let error = post_json(
            &url,
            &HttpAuth::None,
            b"{}".to_vec(),
            Duration::from_secs(5),
        )
        .await
        .expect_err("400");
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let error = post_json(
            &url,
            &HttpAuth::None,
            b"{}".to_vec(),
            Duration::from_millis(300),
        )
        .await
        .expect_err("times out");
        assert!(error.is_retryable());
        assert!(error.to_string().contains("did not answer"), "{error}");
        drop(listener);
    }

    #[test]
    fn credentials_in_a_url_are_not_shown() {
        assert_eq!(
            redact("https://user:pw@hooks.example/x"),
            "https://<redacted>@hooks.example/x"
        );
        assert_eq!(redact("http://h/x"), "http://h/x");
    }
}
