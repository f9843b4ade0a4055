//! `[alerting]`: the Alertmanager configuration file notifications follow, and the
//! Alertmanagers alerts are forwarded to (as Prometheus' `alerting.alertmanagers`).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::Overrides;
use super::error::{ConfigError, Source};
use crate::notify::config::AlertingConfig;

/// `[alerting]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSection {
    /// An Alertmanager configuration file (`alertmanager.yml`), read unchanged: routes,
    /// receivers (email and webhook), inhibit rules, time intervals, templates. Relative to
    /// the TOML file's directory.
    pub config_file: Option<Spanned<PathBuf>>,
    /// Alertmanager base URLs (`http://am1:9093`) that receive every alert through
    /// `POST /api/v2/alerts`, so a fleet keeps its central routing.
    pub alertmanagers: Vec<Spanned<String>>,
}

/// The validated `[alerting]` section.
#[derive(Clone, Debug, Default)]
pub struct AlertingSettings {
    /// The Alertmanager file, from `--alerting-config` or `config_file`.
    pub config_file: Option<PathBuf>,
    /// The file, loaded and validated; None without a file.
    pub config: Option<Arc<AlertingConfig>>,
    /// Base URLs without a trailing slash.
    pub alertmanagers: Vec<String>,
}

impl AlertingSettings {
    /// True when alerts go somewhere: a receiver file or an Alertmanager to forward to.
    pub fn delivers(&self) -> bool {
        self.config.is_some() || !self.alertmanagers.is_empty()
    }
}

/// Validates the section and loads the Alertmanager file it names, so `check-config` catches a
/// broken alerting file as it catches a broken rule file.
pub fn validate(
    source: &Source,
    errors: &mut Vec<ConfigError>,
    section: &AlertingSection,
    overrides: &Overrides,
) -> AlertingSettings {
    let mut alertmanagers = Vec::new();
    for url in &section.alertmanagers {
        let text = url.get_ref().trim_end_matches('/');
        let valid = text
            .split_once("://")
            .is_some_and(|(scheme, host)| matches!(scheme, "http" | "https") && !host.is_empty());
        if valid {
            alertmanagers.push(text.to_string());
        } else {
            errors.push(source.error_at(
                url.span(),
                "alerting.alertmanagers",
                format!("`{}` is not an http:// or https:// URL", url.get_ref()),
                "give the Alertmanager's base URL, e.g. http://alertmanager:9093",
            ));
        }
    }
    // A relative `config_file` is relative to the TOML file, as Prometheus resolves the files
    // its configuration names; the flag is relative to the working directory.
    let from_file = section.config_file.as_ref().map(|f| {
        let path = f.get_ref();
        match std::path::Path::new(source.origin).parent() {
            Some(dir) if path.is_relative() && source.origin != super::DEFAULT_CONFIG_ORIGIN => {
                dir.join(path)
            }
            _ => path.clone(),
        }
    });
    let config_file = overrides.alerting_config.clone().or(from_file);
    let config = match &config_file {
        None => None,
        Some(path) => match AlertingConfig::load(path) {
            Ok(config) => Some(Arc::new(config)),
            Err(problems) => {
                errors.extend(problems.0);
                None
            }
        },
    };
    AlertingSettings {
        config_file,
        config,
        alertmanagers,
    }
}
