//! A small RESP2 client for the few commands the collector sends, with every reply bounded by
//! size: the redis crate buffers a bulk reply of whatever length the server announces (a
//! `$1000000000` header and a stream of bytes took the daemon to 1.9 GB), and offers no limit.
//!
//! The URL is still parsed by the redis crate (`redis://`, `rediss://`, `unix://`); this module
//! connects (TCP, TLS through rustls with ring, or a Unix socket), authenticates, selects the
//! database, and reads each reply within [`MAX_REPLY_BYTES`] before allocating for it.

use std::path::Path;
use std::sync::Arc;

use redis::{ConnectionAddr, ConnectionInfo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The largest reply accepted: `INFO ALL` of a busy server with hundreds of commands is about
/// 100 KB, so this leaves a wide margin while bounding memory per connection.
pub const MAX_REPLY_BYTES: usize = 4 << 20;

/// The most elements an array reply may have (`CONFIG GET` answers two).
const MAX_ARRAY_ELEMENTS: usize = 1024;

/// How deep arrays may nest.
const MAX_DEPTH: u8 = 4;

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Simple(String),
    /// `:42`
    Integer(i64),
    /// `$n` followed by n bytes, or `$-1` (nil).
    Bulk(Option<Vec<u8>>),
    /// `*n` followed by n values, or `*-1` (nil).
    Array(Option<Vec<Value>>),
}

/// Why talking to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The connection could not be made or broke.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The TLS setup or handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server answered with an error (`-ERR ...`, `-WRONGPASS ...`).
    #[error("server error: {0}")]
    Server(String),
    /// A reply was larger than [`MAX_REPLY_BYTES`] (or had too many elements); nothing more was
    /// read, and the connection is dropped.
    #[error("reply larger than the limit of {limit} bytes ({what}); the connection was dropped")]
    TooLarge { limit: usize, what: String },
    /// The server sent something that is not RESP2, or a reply of an unexpected type.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The URL names something this client does not do.
    #[error("{0}")]
    Unsupported(String),
}

impl RespError {
    /// The root cause's kind, for the scheduler's log.
    pub fn kind(&self) -> super::FailureKind {
        use super::FailureKind;
        match self {
            RespError::Io(error) => FailureKind::of_io(error),
            RespError::Tls(_) => FailureKind::Tls,
            RespError::Server(message)
                if message.starts_with("WRONGPASS") || message.starts_with("NOAUTH") =>
            {
                FailureKind::AuthenticationFailed
            }
            RespError::Closed => FailureKind::ConnectionLost,
            _ => FailureKind::Other,
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One connection to a Redis server.
pub struct RespConnection {
    stream: BufReader<Box<dyn Stream>>,
}

impl RespConnection {
    /// Connects, authenticates and selects the URL's database. `ca_pem` replaces the system's
    /// roots for TLS. The caller bounds the time.
    pub async fn connect(
        info: &ConnectionInfo,
        ca_pem: Option<&[u8]>,
    ) -> Result<RespConnection, RespError> {
        let stream: Box<dyn Stream> = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Box::new(tcp(host, *port).await?),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                if *insecure {
                    return Err(RespError::Unsupported(
                        "TLS without certificate verification (#insecure) is not supported; give the server's CA with ca_file".into(),
                    ));
                }
                let connector = tokio_rustls::TlsConnector::from(client_config(ca_pem)?);
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| RespError::Tls(format!("invalid server name `{host}`: {e}")))?;
                let stream = tcp(host, *port).await?;
                Box::new(
                    connector
                        .connect(name, stream)
                        .await
                        .map_err(|e| RespError::Tls(e.to_string()))?,
                )
            }
            ConnectionAddr::Unix(path) => Box::new(unix(path).await?),
            other => {
                return Err(RespError::Unsupported(format!(
                    "unsupported Redis address {other}"
                )));
            }
        };
        let mut connection = RespConnection {
            stream: BufReader::new(stream),
        };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let reply = match settings.username() {
                Some(user) => connection.command(&["AUTH", user, password]).await?,
                None => connection.command(&["AUTH", password]).await?,
            };
            expect_ok(&reply, "AUTH")?;
        }
        if settings.db() != 0 {
            let db = settings.db().to_string();
            let reply = connection.command(&["SELECT", &db]).await?;
            expect_ok(&reply, "SELECT")?;
        }
        Ok(connection)
    }

    /// Sends one command and reads its reply; an error reply is an `Err`.
    pub async fn command(&mut self, args: &[&str]) -> Result<Value, RespError> {
        let mut replies = self.pipeline(&[args]).await?;
        replies
            .pop()
            .ok_or_else(|| RespError::Protocol("no reply".into()))
    }

    /// Sends commands in one write and reads their replies in order.
    pub async fn pipeline(&mut self, commands: &[&[&str]]) -> Result<Vec<Value>, RespError> {
        let mut request = Vec::new();
        for args in commands {
            encode(args, &mut request);
        }
        self.stream.get_mut().write_all(&request).await?;
        self.stream.get_mut().flush().await?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            let mut budget = MAX_REPLY_BYTES;
            replies.push(read_value(&mut self.stream, &mut budget, 0).await?);
        }
        Ok(replies)
    }
}

async fn tcp(host: &str, port: u16) -> Result<tokio::net::TcpStream, RespError> {
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn unix(path: &Path) -> Result<tokio::net::UnixStream, RespError> {
    Ok(tokio::net::UnixStream::connect(path).await?)
}

/// rustls with ring, trusting `ca_pem` if given, else the system's roots.
fn client_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, RespError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for certificate in CertificateDer::pem_slice_iter(pem) {
                let certificate =
                    certificate.map_err(|e| RespError::Tls(format!("invalid CA file: {e}")))?;
                roots
                    .add(certificate)
                    .map_err(|e| RespError::Tls(format!("unusable CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                // A system store may hold certificates rustls cannot use; skip those.
                let _ = roots.add(certificate);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RespError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn expect_ok(reply: &Value, command: &str) -> Result<(), RespError> {
    match reply {
        Value::Simple(text) if text == "OK" => Ok(()),
        other => Err(RespError::Protocol(format!(
            "unexpected answer to {command}: {}",
            describe(other)
        ))),
    }
}

/// A reply's type, for errors (never its content, which could be anything).
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Simple(_) => "a status",
        Value::Integer(_) => "an integer",
        Value::Bulk(None) | Value::Array(None) => "nil",
        Value::Bulk(Some(_)) => "a string",
        Value::Array(Some(_)) => "an array",
    }
}

/// A command as an array of bulk strings.
fn encode(args: &[&str], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads one value, charging every byte to `budget` before it is buffered.
async fn read_value<R: AsyncBufReadExt + Unpin + Send>(
    reader: &mut R,
    budget: &mut usize,
    depth: u8,
) -> Result<Value, RespError> {
    let line = read_line(reader, budget).await?;
    let (kind, rest) = line
        .split_first()
        .ok_or_else(|| RespError::Protocol("empty line".into()))?;
    let text = std::str::from_utf8(rest)
        .map_err(|_| RespError::Protocol("a header line is not UTF-8".into()))?;
    let length = || {
        text.parse::<i64>()
            .map_err(|_| RespError::Protocol(format!("invalid length `{text}`")))
    };
    match kind {
        b'+' => Ok(Value::Simple(text.to_string())),
        b'-' => Err(RespError::Server(text.to_string())),
        b':' => text
            .parse()
            .map(Value::Integer)
            .map_err(|_| RespError::Protocol(format!("invalid integer `{text}`"))),
        b'$' => {
            let length = length()?;
            if length < 0 {
                return Ok(Value::Bulk(None));
            }
            let wanted = usize::try_from(length)
                .ok()
                .and_then(|n| n.checked_add(2))
                .filter(|n| *n <= *budget)
                .ok_or_else(|| RespError::TooLarge {
                    limit: MAX_REPLY_BYTES,
                    what: format!("a string of {length} bytes"),
                })?;
            *budget -= wanted;
            let mut data = vec![0u8; wanted];
            reader.read_exact(&mut data).await.map_err(closed_or_io)?;
            if !data.ends_with(b"\r\n") {
                return Err(RespError::Protocol("a string does not end in CRLF".into()));
            }
            data.truncate(wanted - 2);
            Ok(Value::Bulk(Some(data)))
        }
        b'*' => {
            let count = length()?;
            if count < 0 {
                return Ok(Value::Array(None));
            }
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count > MAX_ARRAY_ELEMENTS {
                return Err(RespError::TooLarge {
                    limit: MAX_REPLY_BYTES,
                    what: format!("an array of {count} elements (at most {MAX_ARRAY_ELEMENTS})"),
                });
            }
            if depth >= MAX_DEPTH {
                return Err(RespError::Protocol("arrays nested too deep".into()));
            }
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(Box::pin(read_value(reader, budget, depth + 1)).await?);
            }
            Ok(Value::Array(Some(items)))
        }
        other => Err(RespError::Protocol(format!(
            "unexpected reply type byte 0x{other:02x}"
        ))),
    }
}

/// Reads a line up to CRLF (without it), within `budget`.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    budget: &mut usize,
) -> Result<Vec<u8>, RespError> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Err(RespError::Closed);
        }
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        if line.len() + taken > *budget {
            return Err(RespError::TooLarge {
                limit: MAX_REPLY_BYTES,
                what: "a header line without an end".into(),
            });
        }
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if done {
            break;
        }
    }
    *budget -= line.len();
    if !line.ends_with(b"\r\n") {
        return Err(RespError::Protocol("a line does not end in CRLF".into()));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn closed_or_io(error: std::io::Error) -> RespError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        RespError::Closed
    } else {
        RespError::Io(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Value, RespError> {
        let mut reader = BufReader::new(bytes);
        let mut budget = MAX_REPLY_BYTES;
        read_value(&mut reader, &mut budget, 0).await
    }

    #[tokio::test]
    async fn replies_are_decoded() {
        assert_eq!(
            parse(b"+PONG\r\n").await.ok(),
            Some(Value::Simple("PONG".into()))
        );
        assert_eq!(parse(b":12\r\n").await.ok(), Some(Value::Integer(12)));
        assert_eq!(
            parse(b"$5\r\nhe\r\no\r\n").await.ok(),
            Some(Value::Bulk(Some(b"he\r\no".to_vec())))
        );
        assert_eq!(parse(b"$-1\r\n").await.ok(), Some(Value::Bulk(None)));
        assert_eq!(
            parse(b"*2\r\n$9\r\ndatabases\r\n$2\r\n16\r\n").await.ok(),
            Some(Value::Array(Some(vec![
                Value::Bulk(Some(b"databases".to_vec())),
                Value::Bulk(Some(b"16".to_vec())),
            ])))
        );
        assert!(matches!(
            parse(b"-WRONGPASS invalid username-password pair\r\n").await,
            Err(RespError::Server(message)) if message.starts_with("WRONGPASS")
        ));
    }

    #[tokio::test]
    async fn oversized_replies_are_refused_before_they_are_read() {
        // Only the header is there: a reader that waited for the bytes would hang.
        for header in [
            &b"$1000000000\r\n"[..],
            b"$9223372036854775807\r\n",
            b"*100000000\r\n",
        ] {
            assert!(
                matches!(parse(header).await, Err(RespError::TooLarge { .. })),
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        let endless_line = vec![b'+'; MAX_REPLY_BYTES + 10];
        assert!(matches!(
            parse(&endless_line).await,
            Err(RespError::TooLarge { .. })
        ));
        // Many elements each within the limit still share one budget.
        let mut many = b"*1000\r\n".to_vec();
        for _ in 0..1000 {
            many.extend_from_slice(format!("${}\r\n", 8 << 10).as_bytes());
            many.extend(std::iter::repeat_n(b'x', 8 << 10));
            many.extend_from_slice(b"\r\n");
        }
        assert!(matches!(
            parse(&many).await,
            Err(RespError::TooLarge { .. })
        ));
    }

    #[test]
    fn commands_are_encoded_as_bulk_arrays() {
        let mut out = Vec::new();
        encode(&["INFO", "ALL"], &mut out);
        assert_eq!(out, b"*2\r\n$4\r\nINFO\r\n$3\r\nALL\r\n");
    }
}
