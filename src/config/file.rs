//! The serde mirror of the TOML file, and its validation into [`Config`](super::Config).
//!
//! Every field is optional so a file states only what it changes; values that are checked
//! against each other are `Spanned` so an error can point at the line that holds them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors, Source};
use super::secret::SecretRef;
use super::{
    CollectorSchedule, Config, DEFAULT_DISK_DEVICES_EXCLUDE, DEFAULT_FS_TYPES_EXCLUDE,
    DEFAULT_MOUNT_POINTS_EXCLUDE, DEFAULT_PORT, HistoryConfig, HostFilters, LogConfig, Overrides,
    TlsConfig, WebAuth, WebConfig,
};

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Directory for durable state such as alert state and spend totals.
    pub state_dir: Option<Spanned<PathBuf>>,
    /// Rule files or directories of rule files, in Prometheus' format.
    pub rules: Vec<Spanned<PathBuf>>,
    /// Whether the built-in default rules run beside `rules` (default true).
    pub builtin_rules: Option<bool>,
    /// Labels identifying this host to alert templates (`$externalLabels`), as Prometheus'
    /// `global.external_labels`.
    pub external_labels: std::collections::BTreeMap<String, String>,
    pub log: LogSection,
    pub web: WebSection,
    pub query: super::query::QuerySection,
    pub history: HistorySection,
    pub host: HostSection,
    /// PostgreSQL servers to watch.
    pub postgres: Vec<super::targets::PostgresSection>,
    /// PgBouncer admin consoles to watch.
    pub pgbouncer: Vec<super::targets::PgbouncerSection>,
    /// Redis servers to watch.
    pub redis: Vec<super::targets::RedisSection>,
    /// AI usage ingest, prices and budgets.
    pub ai: super::ai::AiSection,
    /// Notifications: the Alertmanager file and the Alertmanagers to forward to.
    pub alerting: super::alerting::AlertingSection,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A level (`info`) or a `RUST_LOG`-style filter; `RUST_LOG` in the environment wins.
    pub level: Option<Spanned<String>>,
    /// `text` for terminals, `json` for log shippers.
    pub format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[web]`: the HTTP endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSection {
    /// `ADDRESS:PORT` to listen on.
    pub listen: Option<Spanned<String>>,
    /// Require `Authorization: Bearer <token>`; `env:NAME`, `file:/path` or the value.
    pub bearer_token: Option<Spanned<SecretRef>>,
    /// Require HTTP basic auth.
    pub basic_auth: Option<BasicAuthSection>,
    /// Serve HTTPS.
    pub tls: Option<TlsSection>,
    /// The most client connections open at once; more are closed at once and counted.
    pub max_connections: Option<Spanned<i64>>,
    /// How long a client may take to send a request's headers, or its body once the handler
    /// reads it, or to finish a TLS handshake.
    pub read_timeout: Option<Spanned<HumanDuration>>,
}

/// `[web.basic_auth]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthSection {
    pub username: String,
    /// `env:NAME`, `file:/path` or the value.
    pub password: Spanned<SecretRef>,
}

/// `[web.tls]`: PEM files.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert_file: Spanned<PathBuf>,
    pub key_file: Spanned<PathBuf>,
}

/// `[history]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySection {
    /// How long samples are kept in memory.
    pub retention: Option<Spanned<HumanDuration>>,
    /// The most series kept; new series beyond it are dropped and counted.
    pub max_series: Option<Spanned<i64>>,
}

/// `[host]`: the host collector.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostSection {
    pub enabled: Option<bool>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Regular expression of mount points to leave out (node_exporter's default).
    pub mount_points_exclude: Option<Spanned<String>>,
    /// Regular expression of filesystem types to leave out (node_exporter's default).
    pub fs_types_exclude: Option<Spanned<String>>,
    /// Regular expression of network devices to leave out (none by default).
    pub network_devices_exclude: Option<Spanned<String>>,
    /// Regular expression of block devices to leave out (partitions, loop and ram devices).
    pub disk_devices_exclude: Option<Spanned<String>>,
}

/// A duration written as text: `500ms`, `15s`, `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<HumanDuration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a duration such as `15s`, with an error that says what a valid one looks like.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| {
        format!("invalid duration `{text}` ({error}); write a number and a unit such as 500ms, 15s, 5m, 1h")
    })
}

const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
const MIN_RETENTION: Duration = Duration::from_secs(60);
const MAX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_SERIES_LIMIT: i64 = 10_000_000;
/// Prometheus' `--web.max-connections` default.
const DEFAULT_MAX_CONNECTIONS: usize = 512;
const MAX_CONNECTIONS_LIMIT: i64 = 65_536;

/// Checks every value and resolves secrets; collects all problems before failing.
pub fn validate(
    source: &Source<'_>,
    file: FileConfig,
    overrides: &Overrides,
) -> Result<Config, ConfigErrors> {
    let mut errors: Vec<ConfigError> = Vec::new();
    let flag_error = |flag: &str, message: String, hint: &str| ConfigError {
        secret_unavailable: false,
        origin: flag.to_string(),
        position: None,
        key: None,
        message,
        hint: Some(hint.to_string()),
    };

    // [web]
    let default_listen = format!("127.0.0.1:{DEFAULT_PORT}");
    let listen_hint =
        "write ADDRESS:PORT, e.g. 127.0.0.1:9777 or [::1]:9777 (0.0.0.0 exposes it to the network)";
    let listen = match (&overrides.listen, &file.web.listen) {
        (Some(text), _) => text.parse::<SocketAddr>().map_err(|e| {
            flag_error(
                "--listen",
                format!("invalid address `{text}`: {e}"),
                listen_hint,
            )
        }),
        (None, Some(spanned)) => spanned.get_ref().parse::<SocketAddr>().map_err(|e| {
            source.error_at(
                spanned.span(),
                "web.listen",
                format!("invalid address `{}`: {e}", spanned.get_ref()),
                listen_hint,
            )
        }),
        (None, None) => default_listen
            .parse::<SocketAddr>()
            .map_err(|e| flag_error("web.listen", e.to_string(), listen_hint)),
    };
    let listen = listen.map_err(|e| errors.push(e)).ok();

    let mut auth = WebAuth::default();
    if let Some(token) = &file.web.bearer_token {
        match token.get_ref().resolve() {
            Ok(secret) if secret.expose().is_empty() => errors.push(source.error_at(
                token.span(),
                "web.bearer_token",
                "the bearer token is empty",
                "give a non-empty token or remove the key",
            )),
            Ok(secret) => auth.bearer_token = Some(secret),
            Err(message) => errors.push(
                source
                    .error_at(
                        token.span(),
                        "web.bearer_token",
                        message,
                        "set the variable or create the file, or write the token itself",
                    )
                    .secret(),
            ),
        }
    }
    if let Some(basic) = &file.web.basic_auth {
        match basic.password.get_ref().resolve() {
            Ok(secret) => auth.basic_auth = Some((basic.username.clone(), secret)),
            Err(message) => errors.push(
                source
                    .error_at(
                        basic.password.span(),
                        "web.basic_auth.password",
                        message,
                        "set the variable or create the file, or write the password itself",
                    )
                    .secret(),
            ),
        }
    }
    let tls = match &file.web.tls {
        None => None,
        Some(tls) => {
            match crate::http::tls::load_server_config(
                tls.cert_file.get_ref(),
                tls.key_file.get_ref(),
            ) {
                Ok(server_config) => Some(TlsConfig {
                    cert_file: tls.cert_file.get_ref().clone(),
                    key_file: tls.key_file.get_ref().clone(),
                    server_config,
                }),
                Err(message) => {
                    errors.push(source.error_at(
                        tls.cert_file.span(),
                        "web.tls",
                        message,
                        "give readable PEM files: cert_file with the certificate chain, key_file with its private key",
                    ));
                    None
                }
            }
        }
    };

    let max_connections = match &file.web.max_connections {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(value) if (1..=MAX_CONNECTIONS_LIMIT).contains(value.get_ref()) => {
            *value.get_ref() as usize
        }
        Some(value) => {
            errors.push(source.error_at(
                value.span(),
                "web.max_connections",
                format!("{} is out of range", value.get_ref()),
                format!("give a number from 1 to {MAX_CONNECTIONS_LIMIT}"),
            ));
            DEFAULT_MAX_CONNECTIONS
        }
    };
    let read_timeout = duration_in_range(
        source,
        &mut errors,
        file.web.read_timeout.as_ref(),
        "web.read_timeout",
        Duration::from_secs(10),
        (Duration::from_secs(1), Duration::from_secs(600)),
    );

    // [history]
    let retention = duration_in_range(
        source,
        &mut errors,
        file.history.retention.as_ref(),
        "history.retention",
        Duration::from_secs(3600),
        (MIN_RETENTION, MAX_RETENTION),
    );
    let max_series = match &file.history.max_series {
        None => 100_000,
        Some(value) if (1..=MAX_SERIES_LIMIT).contains(value.get_ref()) => {
            *value.get_ref() as usize
        }
        Some(value) => {
            errors.push(source.error_at(
                value.span(),
                "history.max_series",
                format!("{} is out of range", value.get_ref()),
                format!("give a number from 1 to {MAX_SERIES_LIMIT}"),
            ));
            100_000
        }
    };

    // [host]
    let interval = match &overrides.host_interval {
        Some(text) => match parse_duration(text) {
            Ok(d) if (MIN_INTERVAL..=MAX_INTERVAL).contains(&d) => d,
            Ok(d) => {
                errors.push(flag_error(
                    "--host-interval",
                    format!("{d:?} is out of range"),
                    "give a duration from 100ms to 1h",
                ));
                d
            }
            Err(message) => {
                errors.push(flag_error(
                    "--host-interval",
                    message,
                    "e.g. --host-interval 15s",
                ));
                Duration::from_secs(15)
            }
        },
        None => duration_in_range(
            source,
            &mut errors,
            file.host.interval.as_ref(),
            "host.interval",
            Duration::from_secs(15),
            (MIN_INTERVAL, MAX_INTERVAL),
        ),
    };
    let timeout = match &file.host.timeout {
        None => interval.min(Duration::from_secs(10)),
        Some(timeout) => {
            let value = timeout.get_ref().0;
            if value.is_zero() || value > interval {
                errors.push(source.error_at(
                    timeout.span(),
                    "host.timeout",
                    format!("timeout {value:?} must be above zero and at most the interval ({interval:?})"),
                    "lower the timeout or raise host.interval",
                ));
            }
            value
        }
    };
    if retention < interval * 2 {
        errors.push(flag_error(
            "history.retention",
            format!(
                "retention {retention:?} keeps fewer than two samples at host interval {interval:?}"
            ),
            "raise history.retention or lower host.interval",
        ));
    }

    let mut regex_or = |value: &Option<Spanned<String>>,
                        key: &str,
                        default: &str|
     -> regex::Regex {
        let fallback = || {
            regex::Regex::new(default).unwrap_or_else(|_| regex::Regex::new("^$").expect("valid"))
        };
        match value {
            None => fallback(),
            Some(text) => match regex::Regex::new(text.get_ref()) {
                Ok(regex) => regex,
                Err(error) => {
                    errors.push(source.error_at(
                        text.span(),
                        key,
                        format!("invalid regular expression: {error}"),
                        "write a regular expression in Rust regex syntax, as node_exporter's --collector.*-exclude flags take",
                    ));
                    fallback()
                }
            },
        }
    };
    let host_filters = HostFilters {
        mount_points_exclude: regex_or(
            &file.host.mount_points_exclude,
            "host.mount_points_exclude",
            DEFAULT_MOUNT_POINTS_EXCLUDE,
        ),
        fs_types_exclude: regex_or(
            &file.host.fs_types_exclude,
            "host.fs_types_exclude",
            DEFAULT_FS_TYPES_EXCLUDE,
        ),
        network_devices_exclude: match &file.host.network_devices_exclude {
            Some(text) if !text.get_ref().is_empty() => Some(regex_or(
                &file.host.network_devices_exclude,
                "host.network_devices_exclude",
                "^$",
            )),
            _ => None,
        },
        disk_devices_exclude: regex_or(
            &file.host.disk_devices_exclude,
            "host.disk_devices_exclude",
            DEFAULT_DISK_DEVICES_EXCLUDE,
        ),
    };

    let targets = super::targets::validate(
        source,
        &mut errors,
        &file.postgres,
        &file.pgbouncer,
        &file.redis,
        overrides,
    );

    let ai = super::ai::validate(source, &mut errors, &file.ai);
    let query = super::query::validate(source, &mut errors, &file.query);
    let alerting = super::alerting::validate(source, &mut errors, &file.alerting, overrides);

    // [log]
    let level = overrides
        .log_level
        .clone()
        .or_else(|| file.log.level.as_ref().map(|l| l.get_ref().clone()))
        .unwrap_or_else(|| "info".to_string());
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&level) {
        let message = format!("invalid log level `{level}`: {error}");
        let hint =
            "use error, warn, info, debug or trace, or a filter such as prismwatch=debug,info";
        errors.push(match (&overrides.log_level, &file.log.level) {
            (None, Some(spanned)) => source.error_at(spanned.span(), "log.level", message, hint),
            _ => flag_error("--log-level", message, hint),
        });
    }

    // Top level.
    let rules: Vec<PathBuf> = file
        .rules
        .iter()
        .map(|rule| rule.get_ref().clone())
        .chain(overrides.rules.iter().cloned())
        .collect();
    for rule in &file.rules {
        if !rule.get_ref().exists() {
            errors.push(source.error_at(
                rule.span(),
                "rules",
                format!("rule path `{}` does not exist", rule.get_ref().display()),
                "give a rule file or a directory of *.yml rule files",
            ));
        }
    }
    for rule in &overrides.rules {
        if !rule.exists() {
            errors.push(flag_error(
                "--rules",
                format!("rule path `{}` does not exist", rule.display()),
                "give a rule file or a directory of *.yml rule files",
            ));
        }
    }
    // Rule files must load (every expression parses, every template checks) for the
    // configuration to be valid, so `check-config` catches a broken rule too.
    let existing: Vec<PathBuf> = rules.iter().filter(|p| p.exists()).cloned().collect();
    for problem in crate::rules::load(&existing).1 {
        errors.push(ConfigError {
            secret_unavailable: false,
            origin: problem.file.display().to_string(),
            position: None,
            key: None,
            message: problem
                .to_string()
                .trim_start_matches(&format!("{}: ", problem.file.display()))
                .to_string(),
            hint: Some("check it with `prismwatch rules check FILE`".into()),
        });
    }
    let state_dir = overrides
        .state_dir
        .clone()
        .or_else(|| file.state_dir.as_ref().map(|d| d.get_ref().clone()))
        .unwrap_or_else(super::default_state_dir);

    match (errors.is_empty(), listen) {
        (true, Some(listen)) => Ok(Config {
            origin: source.origin.to_string(),
            state_dir,
            rules,
            builtin_rules: file.builtin_rules.unwrap_or(true),
            external_labels: file.external_labels.into_iter().collect(),
            log: LogConfig {
                level,
                format: overrides.log_format.or(file.log.format).unwrap_or_default(),
            },
            web: WebConfig {
                listen,
                auth,
                tls,
                max_connections,
                read_timeout,
            },
            query,
            history: HistoryConfig {
                retention,
                max_series,
            },
            host: CollectorSchedule {
                enabled: file.host.enabled.unwrap_or(true),
                interval,
                timeout,
            },
            host_filters,
            targets,
            ai,
            alerting,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

fn duration_in_range(
    source: &Source<'_>,
    errors: &mut Vec<ConfigError>,
    value: Option<&Spanned<HumanDuration>>,
    key: &str,
    default: Duration,
    (min, max): (Duration, Duration),
) -> Duration {
    let Some(value) = value else { return default };
    let duration = value.get_ref().0;
    if !(min..=max).contains(&duration) {
        errors.push(source.error_at(
            value.span(),
            key,
            format!("{duration:?} is out of range"),
            format!(
                "give a duration from {} to {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    duration
}

#[cfg(test)]
mod tests {
    use crate::config::{Overrides, parse};

    /// Parses `text` and returns the first error's rendering, or "ok".
    fn check(text: &str) -> String {
        match parse("test.toml", text, &Overrides::default()) {
            Ok(_) => "ok".to_string(),
            Err(errors) => errors.0.first().map(|e| e.to_string()).unwrap_or_default(),
        }
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let config = parse(
            super::super::DEFAULT_CONFIG_ORIGIN,
            super::super::DEFAULT_CONFIG,
            &Overrides::default(),
        );
        assert!(config.is_ok(), "{:?}", config.err());
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let unknown = check("[web]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n");
        assert!(
            unknown.starts_with("test.toml:3:1: key `web.listen_port`: unknown field"),
            "{unknown}"
        );
        let wrong_type = check("[history]\nmax_series = \"many\"\n");
        assert!(
            wrong_type.starts_with("test.toml:2:14: key `history.max_series`: invalid type"),
            "{wrong_type}"
        );
        let bad_duration = check("[host]\ninterval = \"15 parsecs\"\n");
        assert!(
            bad_duration.starts_with("test.toml:2:12: key `host.interval`: invalid duration"),
            "{bad_duration}"
        );
        let impossible = check("[host]\ninterval = \"10s\"\ntimeout = \"20s\"\n");
        assert!(
            impossible.starts_with("test.toml:3:11: key `host.timeout`: timeout 20s must be"),
            "{impossible}"
        );
        let address = check("[web]\nlisten = \"localhost\"\n");
        assert!(
            address.starts_with("test.toml:2:10: key `web.listen`: invalid address"),
            "{address}"
        );
        assert!(address.contains("hint:"), "{address}");
    }

    #[test]
    fn flags_override_the_file() -> Result<(), String> {
        let overrides = Overrides {
            listen: Some("127.0.0.1:1234".into()),
            ..Overrides::default()
        };
        let config = parse("t", "[web]\nlisten = \"127.0.0.1:1\"\n", &overrides)
            .map_err(|e| e.to_string())?;
        assert_eq!(config.web.listen.port(), 1234);
        Ok(())
    }
}
