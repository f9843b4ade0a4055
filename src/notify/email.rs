//! E-mail through lettre's async SMTP client.
//!
//! Transport security follows Alertmanager: port 465 is implicit TLS; otherwise STARTTLS is
//! required (`require_tls: true`, the default) and a server that does not offer it is an
//! error; `require_tls: false` sends in plain text. Every send is bounded by
//! `tokio::time::timeout` (lettre's own timeout covers only the TCP connect), and each
//! recipient gets its own envelope, because lettre aborts a whole envelope at the first
//! rejected `RCPT TO`: a 550 for one address must not cost the others their mail.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{Address, AsyncTransport, Message, Tokio1Executor};

use crate::config::Secret;

/// Where and how to deliver: an `email_configs` entry's transport part.
#[derive(Clone, Debug, PartialEq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// The name sent in EHLO (Alertmanager's `hello`, default `localhost`).
    pub hello: Option<String>,
    /// STARTTLS required (Alertmanager's `require_tls`); false sends in plain text.
    pub require_tls: bool,
    pub auth: Option<SmtpAuth>,
    pub insecure_skip_verify: bool,
    /// A PEM file of extra trusted roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry, if not the host.
    pub server_name: Option<String>,
}

/// PLAIN or LOGIN credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct SmtpAuth {
    pub username: String,
    pub password: Secret,
}

/// A rendered mail, ready to be turned into bytes once and sent to each recipient.
#[derive(Clone, Debug, PartialEq)]
pub struct MailParts {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// Without angle brackets: `id@host`.
    pub message_id: String,
    /// The group's thread: every mail of a group refers to it, so they form one thread.
    pub thread_id: String,
    pub date_ms: i64,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub html: String,
}

/// Why a mail could not be built or sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmailError {
    /// The configuration cannot work (bad address, unreadable CA file): not retried.
    #[error("{0}")]
    Invalid(String),
    /// The server refused for good (5xx): not retried; the server's answer is kept.
    #[error("{0}")]
    Permanent(String),
    /// A 4xx answer, a network error or a timeout: retried later.
    #[error("{0}")]
    Transient(String),
}

impl EmailError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, EmailError::Transient(_))
    }
}

/// Formats the mail: multipart text + HTML, stable Message-ID, threading headers, extra
/// headers. The same bytes go to every recipient and every retry.
pub fn format_message(mail: &MailParts) -> Result<Vec<u8>, EmailError> {
    let from: Mailbox = mail
        .from
        .parse()
        .map_err(|e| EmailError::Invalid(format!("`from` address {:?}: {e}", mail.from)))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject.clone())
        .message_id(Some(format!("<{}>", mail.message_id)))
        .in_reply_to(format!("<{}>", mail.thread_id))
        .references(format!("<{}>", mail.thread_id))
        .date(UNIX_EPOCH + Duration::from_millis(mail.date_ms.max(0) as u64));
    for to in &mail.to {
        let mailbox: Mailbox = to
            .parse()
            .map_err(|e| EmailError::Invalid(format!("`to` address {to:?}: {e}")))?;
        builder = builder.to(mailbox);
    }
    for (name, value) in &mail.headers {
        let name = HeaderName::new_from_ascii(name.clone())
            .map_err(|e| EmailError::Invalid(format!("header name {name:?}: {e}")))?;
        builder = builder.raw_header(HeaderValue::new(name, value.clone()));
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| EmailError::Invalid(format!("cannot build the mail: {e}")))?;
    Ok(fold_long_headers(&message.formatted()))
}

/// Folds header lines longer than RFC 5322's 998 characters after their commas (a `To` of a
/// hundred recipients is one line as lettre writes it, and servers refuse it with "line too
/// long"). Shorter lines and the body are left as they are.
fn fold_long_headers(raw: &[u8]) -> Vec<u8> {
    const LIMIT: usize = 998;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |at| at + 2);
    let (head, body) = raw.split_at(split);
    if head
        .split(|b| *b == b'\n')
        .all(|line| line.len() <= LIMIT + 1)
    {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    for line in head.split_inclusive(|b| *b == b'\n') {
        if line.len() <= LIMIT + 2 {
            out.extend_from_slice(line);
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        let mut width = 0;
        for (index, piece) in text.split_inclusive(", ").enumerate() {
            if index > 0 && width + piece.len() > 76 {
                out.extend_from_slice(b"\r\n ");
                width = 1;
            }
            out.extend_from_slice(piece.trim_end_matches(' ').as_bytes());
            if piece.ends_with(' ') {
                out.push(b' ');
            }
            width += piece.len();
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(body);
    out
}

/// The address part of `Name <user@host>` or `user@host`.
pub fn address_of(mailbox: &str) -> Result<Address, EmailError> {
    mailbox
        .parse::<Mailbox>()
        .map(|m| m.email)
        .map_err(|e| EmailError::Invalid(format!("address {mailbox:?}: {e}")))
}

/// A connection pool to one smarthost.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    settings: SmtpSettings,
    timeout: Duration,
}

impl Mailer {
    /// Builds the transport (no connection yet). `timeout` bounds each whole send.
    pub fn new(settings: &SmtpSettings, timeout: Duration) -> Result<Mailer, EmailError> {
        let server_name = settings
            .server_name
            .clone()
            .unwrap_or_else(|| settings.host.clone());
        let tls_parameters = || -> Result<TlsParameters, EmailError> {
            let mut builder = TlsParameters::builder(server_name.clone())
                .dangerous_accept_invalid_certs(settings.insecure_skip_verify);
            if let Some(path) = &settings.ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    EmailError::Invalid(format!("cannot read ca_file {}: {e}", path.display()))
                })?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|e| EmailError::Invalid(format!("ca_file {}: {e}", path.display())))?;
                builder = builder.add_root_certificate(certificate);
            }
            builder
                .build_rustls()
                .map_err(|e| EmailError::Invalid(format!("TLS settings: {e}")))
        };
        let tls = if settings.port == 465 {
            Tls::Wrapper(tls_parameters()?)
        } else if settings.require_tls {
            Tls::Required(tls_parameters()?)
        } else {
            Tls::None
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(4));
        if let Some(hello) = &settings.hello {
            builder = builder.hello_name(ClientId::Domain(hello.clone()));
        }
        if let Some(auth) = &settings.auth {
            builder = builder
                .credentials(Credentials::new(
                    auth.username.clone(),
                    auth.password.expose().to_string(),
                ))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(Mailer {
            transport: builder.build(),
            settings: settings.clone(),
            timeout,
        })
    }

    pub fn settings(&self) -> &SmtpSettings {
        &self.settings
    }

    /// Sends `raw` to one recipient and returns the server's answer to the message.
    pub async fn send(&self, from: &str, to: &str, raw: &[u8]) -> Result<String, EmailError> {
        let envelope =
            lettre::address::Envelope::new(Some(address_of(from)?), vec![address_of(to)?])
                .map_err(|e| EmailError::Invalid(format!("envelope: {e}")))?;
        let server = format!("{}:{}", self.settings.host, self.settings.port);
        match tokio::time::timeout(self.timeout, self.transport.send_raw(&envelope, raw)).await {
            Err(_) => Err(EmailError::Transient(format!(
                "{server} did not complete the delivery within {}s",
                self.timeout.as_secs_f64()
            ))),
            Ok(Ok(response)) => Ok(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Ok(Err(error)) => Err(classify(&server, &error)),
        }
    }
}

/// 5xx is permanent; a 4xx, a network, TLS or protocol error is worth another try.
fn classify(server: &str, error: &lettre::transport::smtp::Error) -> EmailError {
    let text = format!("{server}: {error}");
    if error.is_permanent() {
        EmailError::Permanent(text)
    } else {
        EmailError::Transient(text)
    }
}

/// A Message-ID domain part: the host name, so ids are unique across a fleet.
pub fn message_id_domain(host: &str) -> String {
    let cleaned: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    if cleaned.is_empty() {
        "prismwatch.localhost".to_string()
    } else {
        cleaned
    }
}

/// Milliseconds since the epoch, for callers that stamp a mail now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> MailParts {
        MailParts {
            from: "prismwatch <alerts@example.com>".into(),
            to: vec!["a@example.com".into(), "b@example.com".into()],
            subject: "[FIRING:1] HostHighCpu".into(),
            message_id: "17.0@web-1".into(),
            thread_id: "group.abc@web-1".into(),
            date_ms: 1_764_662_400_000,
            headers: vec![("X-Team".into(), "db".into())],
            text: "plain body".into(),
            html: "<p>html body</p>".into(),
        }
    }

    #[test]
    fn a_hundred_recipients_fit_the_line_limit() {
        let mut parts = mail();
        parts.to = (0..100).map(|i| format!("r{i}@example.com")).collect();
        let raw = String::from_utf8(format_message(&parts).expect("formats")).expect("utf-8");
        assert!(raw.split("\r\n").all(|line| line.len() <= 998), "{raw}");
        let head = raw
            .split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .replace("\r\n ", " ");
        let to = head.lines().find(|l| l.starts_with("To: ")).unwrap_or("");
        for i in [0, 50, 99] {
            assert!(to.contains(&format!("r{i}@example.com")), "{to}");
        }
        assert_eq!(to.matches('@').count(), 100, "{to}");
    }

    #[test]
    fn the_mail_carries_stable_ids_threading_and_both_bodies() {
        let raw = String::from_utf8(format_message(&mail()).expect("formats")).expect("utf-8");
        assert!(raw.contains("Message-ID: <17.0@web-1>"), "{raw}");
        assert!(raw.contains("In-Reply-To: <group.abc@web-1>"), "{raw}");
        assert!(raw.contains("References: <group.abc@web-1>"), "{raw}");
        assert!(raw.contains("X-Team: db"), "{raw}");
        assert!(raw.contains("To: a@example.com, b@example.com"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("plain body") && raw.contains("html body"),
            "{raw}"
        );
        assert!(
            raw.contains("Date: Tue, 02 Dec 2025 08:00:00 +0000"),
            "{raw}"
        );
        // The same parts give the same bytes (a retry resends exactly this), boundary aside.
        let again = String::from_utf8(format_message(&mail()).expect("formats")).expect("utf-8");
        let header = |s: &str| {
            s.split("\r\n\r\n").next().map(|h| {
                h.lines()
                    .filter(|l| !l.contains("boundary"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        };
        assert_eq!(header(&raw), header(&again));
    }

    #[test]
    fn a_bad_address_is_refused_not_retried() {
        let mut broken = mail();
        broken.to = vec!["not an address".into()];
        let error = format_message(&broken).expect_err("refused");
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("not an address"), "{error}");
    }

    #[test]
    fn envelope_addresses_drop_the_display_name() {
        assert_eq!(
            address_of("prismwatch <alerts@example.com>").map(|a| a.to_string()),
            Ok("alerts@example.com".to_string())
        );
    }
}
