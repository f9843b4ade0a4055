//! Alertmanager's validation rules over the line-keeping tree.

use std::path::Path;

use super::yaml::Node;
use super::{AlertingConfig, ConfigError, ConfigErrors, Global};
use crate::notify::route::{Route, RouteSpec};

pub(super) fn validate(path: &Path, text: &str) -> Result<AlertingConfig, ConfigErrors> {
    let origin = path.display().to_string();
    let _node = Node::parse(text).map_err(|message| ConfigError {
        origin: origin.clone(),
        position: None,
        key: None,
        message,
        hint: None,
    })?;
    Ok(AlertingConfig {
        origin: path.to_path_buf(),
        original: text.to_string(),
        global: Global::default(),
        route: Route::from_spec(&RouteSpec::default()),
        receivers: Vec::new(),
        inhibit_rules: Vec::new(),
        time_intervals: Default::default(),
        templates: Vec::new(),
    })
}
