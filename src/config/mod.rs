//! Configuration in two stages: [`file`] is a serde mirror of the TOML file that refuses unknown
//! keys, and [`Config`] is the validated form the daemon runs on (durations checked, secrets
//! resolved, TLS material loaded). Command-line flags override the file, as exporters do.

mod ai;
mod alerting;
mod client;
mod error;
mod file;
mod query;
mod recover;
mod reload;
mod secret;
mod targets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use ai::{AiConfig, AiSqlSource, LabelBudget};
pub use alerting::{AlertingSection, AlertingSettings};
pub use client::{DaemonEndpoint, daemon_endpoint};
pub use error::{ConfigError, ConfigErrors, Source};
pub use file::{FileConfig, HumanDuration, LogFormat};
pub use query::QueryConfig;
pub use reload::{load_for_reload, removed_protections};
pub use secret::{Secret, SecretRef};
pub use targets::{PgbouncerTarget, PostgresTarget, RedisTarget, TargetCommon, Targets};

/// The configuration used when no file is given.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The name errors use for the embedded default configuration.
pub const DEFAULT_CONFIG_ORIGIN: &str = "<embedded default config>";

/// The port prismwatch listens on by default: outside the ports of Prometheus (9090),
/// Alertmanager (9093), node_exporter (9100), redis_exporter (9121), pgbouncer_exporter (9127),
/// postgres_exporter (9187) and OpenTelemetry's Prometheus exporter (9464).
pub const DEFAULT_PORT: u16 = 9777;

/// Settings given on the command line; each one wins over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub rules: Vec<PathBuf>,
    pub log_level: Option<String>,
    pub log_format: Option<LogFormat>,
    pub host_interval: Option<String>,
    pub postgres: Vec<String>,
    pub pgbouncer: Vec<String>,
    pub redis: Vec<String>,
    /// `--alerting-config`: the Alertmanager file (wins over `[alerting] config_file`).
    pub alerting_config: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from: a file path or [`DEFAULT_CONFIG_ORIGIN`].
    pub origin: String,
    pub state_dir: PathBuf,
    /// Rule files and directories, evaluated beside the built-in rules.
    pub rules: Vec<PathBuf>,
    /// Whether the built-in default rules run (`builtin_rules`, default true).
    pub builtin_rules: bool,
    /// `$externalLabels` of alert templates, sorted.
    pub external_labels: Vec<(String, String)>,
    pub log: LogConfig,
    pub web: WebConfig,
    /// Limits of the HTTP query API.
    pub query: QueryConfig,
    pub history: HistoryConfig,
    pub host: CollectorSchedule,
    pub host_filters: HostFilters,
    pub targets: Targets,
    pub ai: AiConfig,
    pub alerting: AlertingSettings,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A `RUST_LOG`-style filter such as `info` or `prismwatch=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

#[derive(Clone, Debug)]
pub struct WebConfig {
    pub listen: SocketAddr,
    pub auth: WebAuth,
    pub tls: Option<TlsConfig>,
    /// Client connections open at once; more are closed at once and counted.
    pub max_connections: usize,
    /// Time allowed for a request's headers, its body and a TLS handshake.
    pub read_timeout: Duration,
}

/// Who may read the endpoints. With neither set, everyone who can reach the port may.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebAuth {
    pub bearer_token: Option<Secret>,
    pub basic_auth: Option<(String, Secret)>,
}

impl WebAuth {
    pub fn is_enabled(&self) -> bool {
        self.bearer_token.is_some() || self.basic_auth.is_some()
    }
}

/// Loaded TLS material; the paths are kept so a reload can tell whether it changed.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    pub retention: Duration,
    pub max_series: usize,
}

/// When and how long a collector runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectorSchedule {
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Which mounts and devices the host collector leaves out, as node_exporter's
/// `--collector.*-exclude` flags do (same regular expressions, same defaults).
#[derive(Clone, Debug)]
pub struct HostFilters {
    pub mount_points_exclude: regex::Regex,
    pub fs_types_exclude: regex::Regex,
    /// Empty by default: node_exporter excludes no network device upstream (Debian's package
    /// passes `^lo$`).
    pub network_devices_exclude: Option<regex::Regex>,
    pub disk_devices_exclude: regex::Regex,
}

impl PartialEq for HostFilters {
    fn eq(&self, other: &HostFilters) -> bool {
        let text = |f: &HostFilters| {
            (
                f.mount_points_exclude.as_str().to_string(),
                f.fs_types_exclude.as_str().to_string(),
                f.network_devices_exclude
                    .as_ref()
                    .map(|r| r.as_str().to_string()),
                f.disk_devices_exclude.as_str().to_string(),
            )
        };
        text(self) == text(other)
    }
}

/// node_exporter's default `--collector.filesystem.mount-points-exclude`.
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default `--collector.filesystem.fs-types-exclude`.
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
/// node_exporter's default `--collector.diskstats.device-exclude`.
pub const DEFAULT_DISK_DEVICES_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// Reads, parses and validates the configuration: the file at `path`, or the embedded default.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    match path {
        Some(path) => {
            let (origin, text) = read_file(
                path,
                "check the path given to --config and that the file is readable",
            )?;
            parse(&origin, &text, overrides)
        }
        None => parse(DEFAULT_CONFIG_ORIGIN, DEFAULT_CONFIG, overrides),
    }
}

/// Reads a configuration file: its name for errors and its text, or an error with `hint`.
// One error at most per file read, never on a hot path: not worth boxing.
#[allow(clippy::result_large_err)]
pub(crate) fn read_file(path: &Path, hint: &str) -> Result<(String, String), ConfigError> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((origin, text)),
        Err(error) => Err(ConfigError {
            secret_unavailable: false,
            origin,
            position: None,
            key: None,
            message: format!("cannot read the configuration file: {error}"),
            hint: Some(hint.into()),
        }),
    }
}

/// Parses and validates configuration text; `origin` names it in errors.
pub fn parse(origin: &str, text: &str, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let source = Source { origin, text };
    let (file, mut errors) = recover::deserialize_all::<FileConfig>(&source);
    // The keys with errors are left out; the rest is still validated so one run reports all.
    match file.map(|file| file::validate(&source, file, overrides)) {
        Some(Ok(config)) if errors.is_empty() => return Ok(config),
        Some(Ok(_)) | None => {}
        Some(Err(more)) => errors.extend(more.0),
    }
    // In the order of the file; problems from flags and rule files after it.
    errors.sort_by_key(|e| (e.origin != origin, e.position.unwrap_or((usize::MAX, 0))));
    Err(ConfigErrors(errors))
}

/// The state directory used when neither the file nor `--state-dir` names one: systemd's
/// `$STATE_DIRECTORY`, else `/var/lib/prismwatch` for root, else `~/.local/state/prismwatch`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several, colon-separated; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        if !first.is_empty() {
            return PathBuf::from(first);
        }
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/prismwatch");
    }
    match std::env::var_os("HOME") {
        Some(home) => Path::new(&home).join(".local/state/prismwatch"),
        None => PathBuf::from("prismwatch-state"),
    }
}
