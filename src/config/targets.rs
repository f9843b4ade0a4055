//! Remote targets: PostgreSQL, PgBouncer and Redis servers, from `[[postgres]]`, `[[pgbouncer]]`
//! and `[[redis]]` tables or the `--postgres`, `--pgbouncer` and `--redis` flags.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::CollectorSchedule;
use super::error::{ConfigError, Source};
use super::file::HumanDuration;
use super::secret::{Secret, SecretRef};

/// Tables with per-table series when `max_tables` is not set: enough for most applications'
/// schemas, while a schema of thousands of tables cannot flood the history.
const DEFAULT_MAX_TABLES: usize = 200;

/// The largest `max_tables`: the snapshot's other lists are bounded at 10000 rows too.
const MAX_MAX_TABLES: i64 = 10_000;

/// `[[postgres]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// The `server` label; default `host:port` from the DSN.
    pub name: Option<String>,
    /// Connection string, e.g. `postgres://prismwatch@127.0.0.1:5432/app`; `env:`/`file:` work.
    pub dsn: Spanned<SecretRef>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    /// Extra labels on every series of this target.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Statements whose mean time in an interval exceeds this are counted as slow.
    pub slow_statement_threshold: Option<Spanned<HumanDuration>>,
    /// Active statements running longer than this are counted as long-running.
    pub long_running_threshold: Option<Spanned<HumanDuration>>,
    /// How many statements (by time spent in the interval) are exported per interval.
    pub top_statements: Option<Spanned<i64>>,
    /// How many tables of the DSN's database get `pg_stat_user_tables_*` series, busiest first.
    pub max_tables: Option<Spanned<i64>>,
}

/// `[[pgbouncer]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgbouncerSection {
    pub name: Option<String>,
    /// Admin console DSN, e.g. `postgres://pgbouncer@127.0.0.1:6432/pgbouncer`.
    pub dsn: Spanned<SecretRef>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `[[redis]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSection {
    pub name: Option<String>,
    /// `redis://[user:password@]host:port[/db]`, `rediss://` for TLS, `unix:///path`.
    pub url: Spanned<SecretRef>,
    /// PEM file of the CA that signed the server's certificate, for `rediss://` URLs when the
    /// system's trust store does not have it.
    pub ca_file: Option<Spanned<std::path::PathBuf>>,
    pub interval: Option<Spanned<HumanDuration>>,
    pub timeout: Option<Spanned<HumanDuration>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// What every remote target has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetCommon {
    /// The `server` label: the configured name or `host:port`, never credentials.
    pub server: String,
    pub schedule: CollectorSchedule,
    /// Extra labels, sorted by name.
    pub labels: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresTarget {
    pub common: TargetCommon,
    pub dsn: Secret,
    pub slow_statement_threshold: Duration,
    pub long_running_threshold: Duration,
    pub top_statements: usize,
    /// Tables with `pg_stat_user_tables_*` series: each costs 19 series, so the cap bounds them.
    pub max_tables: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgbouncerTarget {
    pub common: TargetCommon,
    pub dsn: Secret,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisTarget {
    pub common: TargetCommon,
    pub url: Secret,
    /// The CA certificate (PEM) to trust for TLS, read from `ca_file`.
    pub ca_pem: Option<Vec<u8>>,
}

/// All remote targets of a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub postgres: Vec<PostgresTarget>,
    pub pgbouncer: Vec<PgbouncerTarget>,
    pub redis: Vec<RedisTarget>,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Label names the collectors set themselves; user labels may not take them.
const RESERVED_LABELS: [&str; 8] = [
    "server", "datname", "datid", "state", "user", "database", "queryid", "mode",
];

/// Where a target's settings came from, for error messages.
pub enum Origin<'a> {
    File { table: &'static str, index: usize },
    Flag(&'a str),
}

/// Validates the parts every target has.
#[allow(clippy::too_many_arguments)]
pub fn common(
    source: &Source<'_>,
    errors: &mut Vec<ConfigError>,
    origin: &Origin<'_>,
    name: Option<&String>,
    address: Option<String>,
    interval: Option<&Spanned<HumanDuration>>,
    timeout: Option<&Spanned<HumanDuration>>,
    labels: &BTreeMap<String, String>,
) -> TargetCommon {
    let key = |field: &str| match origin {
        Origin::File { table, index } => format!("{table}[{index}].{field}"),
        Origin::Flag(flag) => flag.to_string(),
    };
    let interval_value = interval.map_or(DEFAULT_INTERVAL, |d| d.get_ref().0);
    if let Some(spanned) = interval
        && !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&interval_value)
    {
        errors.push(source.error_at(
            spanned.span(),
            &key("interval"),
            format!("{interval_value:?} is out of range"),
            "give a duration from 100ms to 1h",
        ));
    }
    let timeout_value = timeout.map_or(DEFAULT_TIMEOUT.min(interval_value), |d| d.get_ref().0);
    if let Some(spanned) = timeout
        && (timeout_value.is_zero() || timeout_value > interval_value)
    {
        errors.push(source.error_at(
            spanned.span(),
            &key("timeout"),
            format!("timeout {timeout_value:?} must be above zero and at most the interval ({interval_value:?})"),
            "lower the timeout or raise the interval",
        ));
    }
    for label in labels.keys() {
        let valid = label
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !label.starts_with("__");
        if !valid || RESERVED_LABELS.contains(&label.as_str()) {
            errors.push(ConfigError {
 secret_unavailable: false,
                origin: source.origin.to_string(),
                position: None,
                key: Some(key("labels")),
                message: format!("`{label}` cannot be used as a label name"),
                hint: Some(format!(
                    "use letters, digits and underscores, not starting with a digit or `__`, and none of {}",
                    RESERVED_LABELS.join(", ")
                )),
            });
        }
    }
    TargetCommon {
        server: name
            .cloned()
            .or(address)
            .unwrap_or_else(|| "unknown".to_string()),
        schedule: CollectorSchedule {
            enabled: true,
            interval: interval_value,
            timeout: timeout_value,
        },
        labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// The fields every `[[postgres]]`, `[[pgbouncer]]` and `[[redis]]` table has.
struct SectionFields<'a> {
    secret: &'a Spanned<SecretRef>,
    /// The secret's key: `dsn` or `url`.
    key: &'static str,
    name: Option<&'a String>,
    interval: Option<&'a Spanned<HumanDuration>>,
    timeout: Option<&'a Spanned<HumanDuration>>,
    labels: &'a BTreeMap<String, String>,
}

impl PostgresSection {
    fn fields(&self) -> SectionFields<'_> {
        SectionFields {
            secret: &self.dsn,
            key: "dsn",
            name: self.name.as_ref(),
            interval: self.interval.as_ref(),
            timeout: self.timeout.as_ref(),
            labels: &self.labels,
        }
    }
}

impl PgbouncerSection {
    fn fields(&self) -> SectionFields<'_> {
        SectionFields {
            secret: &self.dsn,
            key: "dsn",
            name: self.name.as_ref(),
            interval: self.interval.as_ref(),
            timeout: self.timeout.as_ref(),
            labels: &self.labels,
        }
    }
}

impl RedisSection {
    fn fields(&self) -> SectionFields<'_> {
        SectionFields {
            secret: &self.url,
            key: "url",
            name: self.name.as_ref(),
            interval: self.interval.as_ref(),
            timeout: self.timeout.as_ref(),
            labels: &self.labels,
        }
    }
}

/// `host:port` of a PostgreSQL DSN (or `socket-dir:port`), or why it does not parse. The error
/// never repeats the DSN, which may hold a password.
pub fn postgres_address(dsn: &str) -> Result<String, String> {
    if !(dsn.starts_with("postgres://") || dsn.starts_with("postgresql://")) {
        let scheme = dsn
            .split("://")
            .next()
            .filter(|s| s.len() < dsn.len())
            .unwrap_or("none");
        return Err(format!(
            "invalid PostgreSQL connection string: the scheme is `{scheme}`, expected postgres:// or postgresql://"
        ));
    }
    let options = sqlx::postgres::PgConnectOptions::from_str(dsn).map_err(|error| {
        // sqlx's messages name the faulty part, not the whole string.
        format!("invalid PostgreSQL connection string: {error}")
    })?;
    Ok(format!("{}:{}", options.get_host(), options.get_port()))
}

/// `host:port` (or the socket path) of a Redis URL, or why it does not parse.
pub fn redis_address(url: &str) -> Result<String, String> {
    let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(|error| {
        format!(
            "invalid Redis URL: {}",
            error.detail().unwrap_or("unparsable")
        )
    })?;
    Ok(match info.addr() {
        redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
        redis::ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "unknown".to_string(),
    })
}

/// Validates every target of the file and the command line; duplicate `server` labels of one
/// kind are refused because their series would collide.
pub fn validate(
    source: &Source<'_>,
    errors: &mut Vec<ConfigError>,
    postgres: &[PostgresSection],
    pgbouncer: &[PgbouncerSection],
    redis: &[RedisSection],
    flags: &super::Overrides,
) -> Targets {
    let mut targets = Targets::default();
    let resolve = |errors: &mut Vec<ConfigError>,
                   origin: &Origin<'_>,
                   secret: &Spanned<SecretRef>,
                   key: &str| {
        match secret.get_ref().resolve() {
            Ok(secret) => Some(secret),
            Err(message) => {
                errors.push(
                    located(
                        source,
                        origin,
                        secret,
                        key,
                        message,
                        "set the variable or create the file",
                    )
                    .secret(),
                );
                None
            }
        }
    };
    // What every file target shares: its secret resolved, its address checked, its name,
    // schedule and labels.
    let file_target = |errors: &mut Vec<ConfigError>,
                       table: &'static str,
                       index: usize,
                       fields: SectionFields<'_>,
                       parse: fn(&str) -> Result<String, String>| {
        let origin = Origin::File { table, index };
        let secret = resolve(errors, &origin, fields.secret, fields.key)?;
        let address = parse(secret.expose())
            .map_err(|message| {
                errors.push(located(
                    source,
                    &origin,
                    fields.secret,
                    fields.key,
                    message,
                    "see examples/prismwatch.toml for the form",
                ));
            })
            .ok();
        let common = common(
            source,
            errors,
            &origin,
            fields.name,
            address,
            fields.interval,
            fields.timeout,
            fields.labels,
        );
        Some((common, secret))
    };
    for (index, section) in postgres.iter().enumerate() {
        let Some((common, dsn)) = file_target(
            errors,
            "postgres",
            index,
            section.fields(),
            postgres_address,
        ) else {
            continue;
        };
        let duration = |value: &Option<Spanned<HumanDuration>>, default: Duration| {
            value.as_ref().map_or(default, |d| d.get_ref().0)
        };
        let top_statements = match &section.top_statements {
            None => 20,
            Some(n) if (0..=1000).contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                errors.push(source.error_at(
                    n.span(),
                    &format!("postgres[{index}].top_statements"),
                    format!("{} is out of range", n.get_ref()),
                    "give a number from 0 to 1000",
                ));
                20
            }
        };
        let max_tables = match &section.max_tables {
            None => DEFAULT_MAX_TABLES,
            Some(n) if (0..=MAX_MAX_TABLES).contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                errors.push(source.error_at(
                    n.span(),
                    &format!("postgres[{index}].max_tables"),
                    format!("{} is out of range", n.get_ref()),
                    "give a number from 0 (no per-table series) to 10000",
                ));
                DEFAULT_MAX_TABLES
            }
        };
        targets.postgres.push(PostgresTarget {
            common,
            dsn,
            slow_statement_threshold: duration(
                &section.slow_statement_threshold,
                Duration::from_secs(1),
            ),
            long_running_threshold: duration(
                &section.long_running_threshold,
                Duration::from_secs(60),
            ),
            top_statements,
            max_tables,
        });
    }
    for (index, section) in pgbouncer.iter().enumerate() {
        let Some((common, dsn)) = file_target(
            errors,
            "pgbouncer",
            index,
            section.fields(),
            postgres_address,
        ) else {
            continue;
        };
        targets.pgbouncer.push(PgbouncerTarget { common, dsn });
    }
    for (index, section) in redis.iter().enumerate() {
        let Some((common, url)) =
            file_target(errors, "redis", index, section.fields(), redis_address)
        else {
            continue;
        };
        let ca_pem = match &section.ca_file {
            None => None,
            Some(path) => match std::fs::read(path.get_ref()) {
                Ok(pem) => Some(pem),
                Err(error) => {
                    errors.push(source.error_at(
                        path.span(),
                        &format!("redis[{index}].ca_file"),
                        format!("cannot read `{}`: {error}", path.get_ref().display()),
                        "give the PEM file of the CA that signed the server's certificate",
                    ));
                    None
                }
            },
        };
        targets.redis.push(RedisTarget {
            common,
            url,
            ca_pem,
        });
    }

    // Command-line targets take every default.
    let no_labels = BTreeMap::new();
    let flag_target = |errors: &mut Vec<ConfigError>,
                       flag: &str,
                       value: &str,
                       parse: fn(&str) -> Result<String, String>| {
        let secret = match SecretRef::from_flag(value).resolve() {
            Ok(secret) => secret,
            Err(message) => {
                errors.push(flag_error(flag, message).secret());
                return None;
            }
        };
        match parse(secret.expose()) {
            Ok(address) => {
                let common = common(
                    source,
                    errors,
                    &Origin::Flag(flag),
                    None,
                    Some(address),
                    None,
                    None,
                    &no_labels,
                );
                Some((common, secret))
            }
            Err(message) => {
                errors.push(flag_error(flag, message));
                None
            }
        }
    };
    for value in &flags.postgres {
        if let Some((common, dsn)) = flag_target(errors, "--postgres", value, postgres_address) {
            targets.postgres.push(PostgresTarget {
                common,
                dsn,
                slow_statement_threshold: Duration::from_secs(1),
                long_running_threshold: Duration::from_secs(60),
                top_statements: 20,
                max_tables: DEFAULT_MAX_TABLES,
            });
        }
    }
    for value in &flags.pgbouncer {
        if let Some((common, dsn)) = flag_target(errors, "--pgbouncer", value, postgres_address) {
            targets.pgbouncer.push(PgbouncerTarget { common, dsn });
        }
    }
    for value in &flags.redis {
        if let Some((common, url)) = flag_target(errors, "--redis", value, redis_address) {
            targets.redis.push(RedisTarget {
                common,
                url,
                ca_pem: None,
            });
        }
    }

    for (kind, servers) in [
        (
            "postgres",
            targets
                .postgres
                .iter()
                .map(|t| t.common.server.clone())
                .collect::<Vec<_>>(),
        ),
        (
            "pgbouncer",
            targets
                .pgbouncer
                .iter()
                .map(|t| t.common.server.clone())
                .collect(),
        ),
        (
            "redis",
            targets
                .redis
                .iter()
                .map(|t| t.common.server.clone())
                .collect(),
        ),
    ] {
        let mut seen = std::collections::BTreeSet::new();
        for server in servers {
            if !seen.insert(server.clone()) {
                errors.push(ConfigError {
                    secret_unavailable: false,
                    origin: source.origin.to_string(),
                    position: None,
                    key: Some(kind.to_string()),
                    message: format!("two {kind} targets have the server label `{server}`"),
                    hint: Some("give each target a distinct `name`".to_string()),
                });
            }
        }
    }
    targets
}

fn located(
    source: &Source<'_>,
    origin: &Origin<'_>,
    secret: &Spanned<SecretRef>,
    field: &str,
    message: String,
    hint: &str,
) -> ConfigError {
    match origin {
        Origin::File { table, index } => source.error_at(
            secret.span(),
            &format!("{table}[{index}].{field}"),
            message,
            hint,
        ),
        Origin::Flag(flag) => flag_error(flag, message),
    }
}

fn flag_error(flag: &str, message: String) -> ConfigError {
    ConfigError {
 secret_unavailable: false,
        origin: flag.to_string(),
        position: None,
        key: None,
        message,
        hint: Some("e.g. --postgres postgres://user@127.0.0.1:5432/db, --redis redis://127.0.0.1:6379, or env:NAME to keep the password off the command line".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Overrides, parse};

    fn postgres(extra: &str) -> String {
        format!("[[postgres]]\ndsn = \"postgres://prismwatch@127.0.0.1:5432/app\"\n{extra}")
    }

    #[test]
    fn max_tables_defaults_to_200_and_is_checked() {
        let config = parse("t", &postgres(""), &Overrides::default()).expect("defaults parse");
        assert_eq!(config.targets.postgres[0].max_tables, 200);
        let config = parse("t", &postgres("max_tables = 0\n"), &Overrides::default())
            .expect("zero turns per-table series off");
        assert_eq!(config.targets.postgres[0].max_tables, 0);
        let error = parse(
            "t",
            &postgres("max_tables = 10001\n"),
            &Overrides::default(),
        )
        .expect_err("too many refused")
        .to_string();
        assert!(
            error.starts_with("t:3:14: key `postgres[0].max_tables`: 10001 is out of range"),
            "{error}"
        );
        assert!(
            error.contains("from 0 (no per-table series) to 10000"),
            "{error}"
        );
    }
}
