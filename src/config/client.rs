//! Where a command-line client finds the daemon: the address and token of the configuration the
//! daemon runs with. Only the `[web]` keys are read, so a client works where the daemon's other
//! secrets (DSNs in the daemon's environment) are out of reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::error::{ConfigErrors, Source};
use super::file::FileConfig;
use super::{DEFAULT_CONFIG, DEFAULT_CONFIG_ORIGIN, DEFAULT_PORT, Secret};

/// How to reach the daemon.
#[derive(Debug, PartialEq, Eq)]
pub struct DaemonEndpoint {
    /// `http://ADDRESS:PORT`, or `https://` when the daemon serves TLS.
    pub url: String,
    /// The bearer token the daemon requires, when it requires one.
    pub token: Option<Secret>,
}

/// The endpoint of the configuration at `path` (the embedded default without one).
pub fn daemon_endpoint(path: Option<&Path>) -> Result<DaemonEndpoint, ConfigErrors> {
    let (origin, text) = match path {
        Some(path) => super::read_file(path, "check the path given to --config, or pass --url")?,
        None => (
            DEFAULT_CONFIG_ORIGIN.to_string(),
            DEFAULT_CONFIG.to_string(),
        ),
    };
    endpoint_of(&origin, &text)
}

/// The endpoint of configuration text; `origin` names it in errors.
pub fn endpoint_of(origin: &str, text: &str) -> Result<DaemonEndpoint, ConfigErrors> {
    let source = Source { origin, text };
    let (file, errors) = super::recover::deserialize_all::<FileConfig>(&source);
    let file = match file {
        Some(file) if errors.is_empty() => file,
        _ => return Err(ConfigErrors(errors)),
    };
    let listen = match &file.web.listen {
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
        Some(listen) => listen.get_ref().parse::<SocketAddr>().map_err(|error| {
            source.error_at(
                listen.span(),
                "web.listen",
                format!("invalid address `{}`: {error}", listen.get_ref()),
                "fix web.listen, or pass --url",
            )
        })?,
    };
    let token = match &file.web.bearer_token {
        None => None,
        Some(token) => Some(token.get_ref().resolve().map_err(|message| {
            source.error_at(
                token.span(),
                "web.bearer_token",
                message,
                "run as a user who can read the token, or pass --token",
            )
        })?),
    };
    let scheme = if file.web.tls.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(DaemonEndpoint {
        url: format!("{scheme}://{}", dialable(listen)),
        token,
    })
}

/// A listening address a client can dial: the wildcard addresses become the loopback.
fn dialable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> (String, Option<String>) {
        let endpoint = endpoint_of("t.toml", text).expect("valid");
        (endpoint.url, endpoint.token.map(|t| t.expose().to_string()))
    }

    #[test]
    fn the_url_and_token_come_from_the_web_section() {
        assert_eq!(check(""), ("http://127.0.0.1:9777".into(), None));
        assert_eq!(
            check("[web]\nlisten = \"127.0.0.1:9911\"\nbearer_token = \"s3cret\"\n"),
            ("http://127.0.0.1:9911".into(), Some("s3cret".into()))
        );
        assert_eq!(
            check(
                "[web]\nlisten = \"0.0.0.0:1\"\n[web.tls]\ncert_file = \"c\"\nkey_file = \"k\"\n"
            ),
            ("https://127.0.0.1:1".into(), None)
        );
        assert_eq!(
            check("[web]\nlisten = \"[::]:2\"\n").0,
            "http://[::1]:2".to_string()
        );
    }

    #[test]
    fn other_sections_are_not_resolved() {
        // A DSN the client cannot resolve does not stop it.
        let text = "[web]\nlisten = \"127.0.0.1:3\"\n[[postgres]]\ndsn = \"env:PRISMWATCH_TEST_UNSET_DSN\"\n";
        assert_eq!(check(text).0, "http://127.0.0.1:3");
    }
}
