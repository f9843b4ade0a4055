//! A size bound on what a PostgreSQL-protocol server (PostgreSQL or PgBouncer) can make us read.
//!
//! sqlx buffers each backend message whole, at whatever length the server announces (up to
//! 4 GiB), and collects a reply's rows before it returns them: a hostile or broken server could
//! drive the daemon's memory as far as the collection's timeout lets it stream. sqlx takes no
//! socket of ours, so the guard sits beside it: sqlx connects (plain) to a Unix socket in a
//! private directory (mode 0700), and for each such connection the guard dials the real server
//! (TCP or Unix socket, with TLS as the DSN's `sslmode` asks), copies what we send unchanged,
//! and reads what the server sends message by message: a message announced over
//! [`Limits::max_message`], or a reply (everything between two `ReadyForQuery`) over
//! [`Limits::max_reply`], ends the connection before it is read. What went wrong is kept for
//! the collector to report with its root cause, since sqlx itself only sees the connection end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

use super::{CollectError, FailureKind};

/// The bounds a guarded connection keeps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest single backend message (a row, an error, a notice).
    pub max_message: usize,
    /// The most bytes between two `ReadyForQuery` messages: one query's whole answer.
    pub max_reply: usize,
    /// Bounds the connect and TLS handshake to the real server.
    pub connect_timeout: Duration,
}

impl Limits {
    /// Room for the largest answer the collectors expect (the snapshot document, a few
    /// thousand statement rows, PgBouncer's lists) many times over.
    pub fn collector(connect_timeout: Duration) -> Limits {
        Limits {
            max_message: 16 << 20,
            max_reply: 64 << 20,
            connect_timeout,
        }
    }
}

/// Why the guard ended a connection, for the collector's error.
#[derive(Clone, Debug)]
pub struct GuardFailure {
    pub kind: FailureKind,
    pub message: String,
}

/// One server's guard: the options sqlx connects with, and the listener behind them.
pub struct WireGuard {
    options: PgConnectOptions,
    directory: PathBuf,
    listener: Mutex<Option<std::os::unix::net::UnixListener>>,
    state: Arc<Shared>,
    accept_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Shared {
    upstream: Upstream,
    limits: Limits,
    failure: Mutex<Option<GuardFailure>>,
}

/// Where and how the guard reaches the real server.
struct Upstream {
    address: Address,
    /// The host name for TLS (SNI and, with `verify-full`, the certificate check).
    host: String,
    ssl_mode: PgSslMode,
    tls: Option<Result<Arc<rustls::ClientConfig>, String>>,
}

enum Address {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// A connection to the real server, plain or TLS.
trait Wire: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Wire for T {}

impl WireGuard {
    /// Sets up the guard for `options` (parsed from `dsn`, which is read again for the TLS files
    /// sqlx does not expose). Binds the private socket at once, serves it from the first
    /// [`WireGuard::serve`] call on.
    pub fn new(options: PgConnectOptions, dsn: &str, limits: Limits) -> Result<WireGuard, String> {
        let ssl_mode = options.get_ssl_mode();
        // A TLS file that cannot be read fails each connection (pg_up 0, with the reason),
        // as sqlx did, rather than leaving the target without any series.
        let tls = match ssl_mode {
            PgSslMode::Disable => None,
            mode => Some(tls_config(mode, &TlsFiles::from_dsn(dsn))),
        };
        let host = options.get_host().to_string();
        let port = options.get_port();
        let address = match options.get_socket() {
            Some(path) if path.is_dir() => Address::Unix(path.join(format!(".s.PGSQL.{port}"))),
            Some(path) => Address::Unix(path.clone()),
            None => Address::Tcp(host.clone(), port),
        };
        let directory = private_directory()
            .map_err(|error| format!("cannot create a private socket directory: {error}"))?;
        let socket = directory.join(format!(".s.PGSQL.{port}"));
        let listener = std::os::unix::net::UnixListener::bind(&socket)
            .map_err(|error| format!("cannot listen on {}: {error}", socket.display()))?;
        Ok(WireGuard {
            options: options.socket(&directory).ssl_mode(PgSslMode::Disable),
            directory,
            listener: Mutex::new(Some(listener)),
            state: Arc::new(Shared {
                upstream: Upstream {
                    address,
                    host,
                    ssl_mode,
                    tls,
                },
                limits,
                failure: Mutex::new(None),
            }),
            accept_task: Mutex::new(None),
        })
    }

    /// The options sqlx connects with: the private socket, without TLS (the guard does it).
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// Starts serving the socket, once; later calls do nothing. Called inside the runtime,
    /// before each use of [`WireGuard::options`].
    pub fn serve(&self) {
        let listener = lock(&self.listener).take();
        if let Some(listener) = listener {
            match listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixListener::from_std(listener))
            {
                Ok(listener) => {
                    let state = Arc::clone(&self.state);
                    let task = tokio::spawn(accept_loop(listener, state));
                    *lock(&self.accept_task) = Some(task);
                }
                Err(error) => self.state.fail(FailureKind::Other, format!("{error}")),
            }
        }
    }

    /// A collection's error for a failed sqlx call: the guard's reason when the guard ended
    /// the connection (that is the root cause), else sqlx's own. `context` names the target.
    pub fn collect_error(&self, context: &str, error: sqlx::Error) -> CollectError {
        match lock(&self.state.failure).take() {
            Some(failure) => CollectError::Target {
                kind: failure.kind,
                message: format!("{context}: {}", failure.message),
            },
            None => CollectError::Target {
                kind: FailureKind::of_sqlx(&error),
                message: format!("{context}: {error}"),
            },
        }
    }
}

impl Drop for WireGuard {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.accept_task).take() {
            task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

impl Shared {
    fn fail(&self, kind: FailureKind, message: String) {
        *lock(&self.failure) = Some(GuardFailure { kind, message });
    }
}

/// The guard's locks hold plain values that stay valid if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh directory only we can enter, for the socket sqlx connects to. Created, never
/// reused: a name that exists (another process's, or a planted one) is skipped.
fn private_directory() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var_os("RUNTIME_DIRECTORY")
        .map(PathBuf::from)
        .filter(|path| path.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let mut last = None;
    for _ in 0..100 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("prismwatch-pg-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => last = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free directory name")))
}

async fn accept_loop(listener: tokio::net::UnixListener, state: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(serve(client, Arc::clone(&state)));
            }
            Err(error) => {
                debug!(%error, "Failed to accept a guarded PostgreSQL connection.");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One guarded connection: dial the server, then copy both ways until either side ends.
async fn serve(mut client: tokio::net::UnixStream, state: Arc<Shared>) {
    let limits = state.limits;
    let server = match tokio::time::timeout(limits.connect_timeout, dial(&state.upstream)).await {
        Ok(Ok(server)) => server,
        Ok(Err(failure)) => {
            // Recorded before sqlx can see the refusal, so the collector finds the reason.
            state.fail(failure.kind, failure.message.clone());
            refuse(&mut client, &failure.message).await;
            return;
        }
        Err(_) => {
            let message = format!(
                "connecting to {} timed out after {:?}",
                state.upstream.describe(),
                limits.connect_timeout
            );
            state.fail(FailureKind::TimedOut, message.clone());
            refuse(&mut client, &message).await;
            return;
        }
    };
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    tokio::select! {
        _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
        result = copy_bounded(&mut server_read, &mut client_write, limits) => {
            if let Err(message) = result {
                state.fail(FailureKind::Other, message);
            }
        }
    }
}

/// Copies backend messages from `server` to `client`, refusing any over the bounds before
/// reading it. Returns `Ok` when the server ends the connection or a write to the client fails.
async fn copy_bounded<R, W>(server: &mut R, client: &mut W, limits: Limits) -> Result<(), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reply = 0usize;
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let mut header = [0u8; 5];
        if server.read_exact(&mut header).await.is_err() {
            return Ok(());
        }
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let body = length
            .checked_sub(4)
            .ok_or_else(|| format!("the server sent a malformed message (length {length})"))?;
        if body > limits.max_message {
            return Err(format!(
                "the server announced a message of {body} bytes (type {:?}), over the limit of {} bytes",
                char::from(header[0]),
                limits.max_message
            ));
        }
        reply = reply.saturating_add(5 + body);
        if reply > limits.max_reply {
            return Err(format!(
                "the server's answer exceeded the limit of {} bytes",
                limits.max_reply
            ));
        }
        // A message is passed on as it arrives, in pieces of at most 64 KiB: the server may
        // wait for our answer after any message (authentication), so nothing is held back.
        chunk[..5].copy_from_slice(&header);
        let mut filled = 5;
        let mut left = body;
        loop {
            let want = left.min(chunk.len() - filled);
            if want > 0 {
                match server.read(&mut chunk[filled..filled + want]).await {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(read) => {
                        filled += read;
                        left -= read;
                    }
                }
            }
            if left == 0 || filled == chunk.len() {
                if client.write_all(&chunk[..filled]).await.is_err() {
                    return Ok(());
                }
                filled = 0;
            }
            if left == 0 {
                break;
            }
        }
        if header[0] == b'Z' {
            reply = 0;
        }
    }
}

/// Answers sqlx's startup with a PostgreSQL error, so it reports the guard's reason at once
/// instead of waiting for its own timeout.
async fn refuse(client: &mut tokio::net::UnixStream, message: &str) {
    let mut body = Vec::with_capacity(message.len() + 32);
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "08001"),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.push(b'E');
    frame.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    // sqlx writes its startup message first; read it so the error is not lost to a reset.
    let mut startup = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(200), client.read(&mut startup)).await;
    let _ = client.write_all(&frame).await;
    let _ = client.shutdown().await;
}

impl Upstream {
    fn describe(&self) -> String {
        match &self.address {
            Address::Tcp(host, port) => format!("{host}:{port}"),
            Address::Unix(path) => path.display().to_string(),
        }
    }
}

/// Connects to the real server and negotiates TLS as `sslmode` says.
async fn dial(upstream: &Upstream) -> Result<Box<dyn Wire>, GuardFailure> {
    let io_failure = |error: std::io::Error| GuardFailure {
        kind: FailureKind::of_io(&error),
        message: format!("connecting to {}: {error}", upstream.describe()),
    };
    let mut plain: Box<dyn Wire> = match &upstream.address {
        Address::Tcp(host, port) => Box::new(
            tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(io_failure)?,
        ),
        Address::Unix(path) => Box::new(
            tokio::net::UnixStream::connect(path)
                .await
                .map_err(io_failure)?,
        ),
    };
    let tls_failure = |message: String| GuardFailure {
        kind: FailureKind::Tls,
        message: format!("TLS with {}: {message}", upstream.describe()),
    };
    let config = match &upstream.tls {
        None => return Ok(plain),
        Some(Ok(config)) => config,
        Some(Err(error)) => return Err(tls_failure(error.clone())),
    };
    // SSLRequest: length 8, code 80877103; the server answers one byte, S or N.
    plain
        .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .map_err(io_failure)?;
    let mut answer = [0u8; 1];
    plain.read_exact(&mut answer).await.map_err(io_failure)?;
    if answer[0] != b'S' {
        return match upstream.ssl_mode {
            PgSslMode::Allow | PgSslMode::Prefer => Ok(plain),
            _ => Err(tls_failure(format!(
                "the server does not offer TLS, and sslmode={} requires it",
                mode_name(upstream.ssl_mode)
            ))),
        };
    }
    let name = ServerName::try_from(upstream.host.clone())
        .map_err(|error| tls_failure(format!("invalid host name: {error}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
    let tls = connector
        .connect(name, plain)
        .await
        .map_err(|error| tls_failure(error.to_string()))?;
    Ok(Box::new(tls))
}

fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// The TLS files a DSN names: `sslrootcert`, `sslcert`, `sslkey` (or `PGSSLROOTCERT`, ...).
#[derive(Default)]
struct TlsFiles {
    root: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl TlsFiles {
    fn from_dsn(dsn: &str) -> TlsFiles {
        let mut files = TlsFiles {
            root: std::env::var_os("PGSSLROOTCERT").map(PathBuf::from),
            cert: std::env::var_os("PGSSLCERT").map(PathBuf::from),
            key: std::env::var_os("PGSSLKEY").map(PathBuf::from),
        };
        let query = dsn.split_once('?').map(|(_, query)| query).unwrap_or("");
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = PathBuf::from(percent_decode(value));
            match key {
                "sslrootcert" | "ssl-root-cert" => files.root = Some(value),
                "sslcert" | "ssl-cert" => files.cert = Some(value),
                "sslkey" | "ssl-key" => files.key = Some(value),
                _ => {}
            }
        }
        files
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// rustls for `mode`: `verify-full` checks the chain and the host name, `verify-ca` the chain
/// only, and `allow`/`prefer`/`require` encrypt without checking the certificate, as libpq
/// and sqlx do without a root certificate.
fn tls_config(mode: PgSslMode, files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS: {error}"))?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match mode {
        PgSslMode::VerifyCa | PgSslMode::VerifyFull => {
            let roots = Arc::new(root_store(files.root.as_deref())?);
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots,
                Arc::clone(&provider),
            )
            .build()
            .map_err(|error| format!("TLS roots: {error}"))?;
            Arc::new(Verifier {
                webpki: Some(webpki),
                check_name: matches!(mode, PgSslMode::VerifyFull),
                provider: Arc::clone(&provider),
            })
        }
        _ => Arc::new(Verifier {
            webpki: None,
            check_name: false,
            provider,
        }),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|error| format!("sslcert {}: {error}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|error| format!("sslkey {}: {error}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| format!("sslcert/sslkey: {error}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("sslcert and sslkey must be given together".into()),
    };
    Ok(Arc::new(config))
}

fn root_store(file: Option<&Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    match file {
        Some(file) => {
            for cert in CertificateDer::pem_file_iter(file)
                .map_err(|error| format!("sslrootcert {}: {error}", file.display()))?
            {
                let cert =
                    cert.map_err(|error| format!("sslrootcert {}: {error}", file.display()))?;
                roots
                    .add(cert)
                    .map_err(|error| format!("sslrootcert {}: {error}", file.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// Checks the server's certificate as the `sslmode` asks; the handshake's signatures are
/// always checked.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_message: 1024,
            max_reply: 4096,
            connect_timeout: Duration::from_secs(1),
        }
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![kind];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    async fn copy(input: Vec<u8>) -> (Result<(), String>, Vec<u8>) {
        let mut output = Vec::new();
        let result = copy_bounded(&mut input.as_slice(), &mut output, limits()).await;
        (result, output)
    }

    #[tokio::test]
    async fn messages_within_the_bounds_pass_unchanged() {
        let mut input = message(b'D', &[7; 1000]);
        input.extend(message(b'Z', b"I"));
        let (result, output) = copy(input.clone()).await;
        assert_eq!(result, Ok(()));
        assert_eq!(output, input);
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_before_it_is_read() {
        let mut input = vec![b'D'];
        input.extend_from_slice(&1_000_000_000u32.to_be_bytes());
        input.extend_from_slice(&[0; 100]);
        let (result, output) = copy(input).await;
        assert_eq!(
            result,
            Err("the server announced a message of 999999996 bytes (type 'D'), over the limit of 1024 bytes".into())
        );
        assert!(output.is_empty(), "nothing of it is passed on");
    }

    #[tokio::test]
    async fn a_reply_is_bounded_as_a_whole_and_the_bound_resets_at_ready_for_query() {
        let mut input = Vec::new();
        for _ in 0..3 {
            input.extend(message(b'D', &[1; 1000]));
        }
        input.extend(message(b'Z', b"I"));
        for _ in 0..3 {
            input.extend(message(b'D', &[1; 1000]));
        }
        input.extend(message(b'Z', b"I"));
        assert_eq!(
            copy(input.clone()).await.0,
            Ok(()),
            "two replies of 3 kB each"
        );
        for _ in 0..5 {
            input.extend(message(b'D', &[1; 1000]));
        }
        assert_eq!(
            copy(input).await.0,
            Err("the server's answer exceeded the limit of 4096 bytes".into())
        );
    }

    #[tokio::test]
    async fn a_malformed_length_is_refused() {
        let mut input = vec![b'D'];
        input.extend_from_slice(&2u32.to_be_bytes());
        assert!(copy(input).await.0.is_err());
    }

    #[test]
    fn tls_files_are_read_from_the_dsn() {
        let files =
            TlsFiles::from_dsn("postgres://u@h/db?sslmode=verify-full&sslrootcert=/etc/ca%20x.pem");
        assert_eq!(files.root, Some(PathBuf::from("/etc/ca x.pem")));
        assert_eq!(files.cert, None);
    }
}
