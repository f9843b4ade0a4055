//! The Alertmanager configuration file, read unchanged: parsed with line numbers, checked with
//! Alertmanager's own rules, and resolved (globals applied to receivers, routes inherited).
//!
//! Two stages as elsewhere: [`yaml`] reads the file into a tree that keeps each node's line,
//! [`validate`] turns it into an [`AlertingConfig`] and collects every error of the file.

mod validate;
mod yaml;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::config::{ConfigError, ConfigErrors, Secret};
use crate::notify::inhibit::InhibitRule;
use crate::notify::route::Route;
use crate::notify::time_interval::NamedTimeIntervals;

/// A validated Alertmanager configuration.
#[derive(Clone, Debug)]
pub struct AlertingConfig {
    /// The file it was read from.
    pub origin: PathBuf,
    /// The file's text, shown by the API's status as Alertmanager shows its own.
    pub original: String,
    pub global: Global,
    pub route: Route,
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<InhibitRule>,
    /// `time_intervals` and the older `mute_time_intervals`, by name.
    pub time_intervals: NamedTimeIntervals,
    /// Template file globs, resolved against the file's directory.
    pub templates: Vec<String>,
}

/// The `global` section's settings we use.
#[derive(Clone, Debug)]
pub struct Global {
    /// How long after its last update an alert without an end time counts as resolved.
    pub resolve_timeout: Duration,
    pub smtp_from: Option<String>,
    pub smtp_hello: String,
    pub smtp_smarthost: Option<(String, u16)>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<Secret>,
    pub smtp_auth_identity: Option<String>,
    pub smtp_require_tls: bool,
    /// `smtp_tls_config`, the default of every email config without its own.
    pub smtp_tls: TlsOptions,
}

impl Default for Global {
    fn default() -> Global {
        Global {
            resolve_timeout: Duration::from_secs(300),
            smtp_from: None,
            smtp_hello: "localhost".to_string(),
            smtp_smarthost: None,
            smtp_auth_username: None,
            smtp_auth_password: None,
            smtp_auth_identity: None,
            smtp_require_tls: true,
            smtp_tls: TlsOptions::default(),
        }
    }
}

/// A receiver, with the integrations we deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub name: String,
    pub email: Vec<EmailConfig>,
    pub webhook: Vec<WebhookConfig>,
}

impl Receiver {
    /// True when any integration sends resolved notifications.
    pub fn send_resolved(&self) -> bool {
        self.email.iter().any(|e| e.send_resolved) || self.webhook.iter().any(|w| w.send_resolved)
    }
}

/// TLS options of an integration (Alertmanager's `tls_config`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub insecure_skip_verify: bool,
    pub ca_file: Option<PathBuf>,
    pub server_name: Option<String>,
}

/// One `email_configs` entry with the globals applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailConfig {
    /// The addresses of `to` (Alertmanager takes a comma-separated list).
    pub to: Vec<String>,
    pub from: String,
    pub smarthost: (String, u16),
    pub hello: String,
    pub auth_username: Option<String>,
    pub auth_password: Option<Secret>,
    pub auth_identity: Option<String>,
    pub require_tls: bool,
    pub tls: TlsOptions,
    /// Extra headers, canonicalised as Go's `textproto.CanonicalMIMEHeaderKey`, sorted.
    pub headers: Vec<(String, String)>,
    /// Template text for the bodies, when the file sets them.
    pub html: Option<String>,
    pub text: Option<String>,
    pub send_resolved: bool,
}

/// Authentication of a webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookAuth {
    Basic { username: String, password: Secret },
    Bearer(Secret),
}

/// One `webhook_configs` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    pub url: String,
    pub send_resolved: bool,
    /// 0: no limit.
    pub max_alerts: u64,
    /// None: the delivery default.
    pub timeout: Option<Duration>,
    pub auth: Option<WebhookAuth>,
    pub tls: TlsOptions,
}

impl AlertingConfig {
    /// Reads and validates an Alertmanager file; every error of the file at once.
    pub fn load(path: &Path) -> Result<AlertingConfig, ConfigErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            secret_unavailable: false,
            origin: origin.clone(),
            position: None,
            key: None,
            message: format!("cannot read the Alertmanager configuration: {e}"),
            hint: Some("check the path in `[alerting] config_file` or `--alerting-config`".into()),
        })?;
        AlertingConfig::parse(path, &text)
    }

    /// Validates the text of an Alertmanager file read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<AlertingConfig, ConfigErrors> {
        validate::validate(path, text)
    }

    /// The receiver of this name.
    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}
