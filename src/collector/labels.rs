//! The labels every series of a remote target carries: `server` plus the configured extras.

use crate::config::TargetCommon;

/// `server` and the target's extra labels, ready to be combined with per-series labels.
#[derive(Clone, Debug)]
pub struct TargetLabels {
    pairs: Vec<(String, String)>,
}

impl TargetLabels {
    pub fn new(target: &TargetCommon) -> TargetLabels {
        let mut pairs = vec![("server".to_string(), target.server.clone())];
        pairs.extend(target.labels.iter().cloned());
        TargetLabels { pairs }
    }

    /// Only `server`, for tests of the series a collector builds.
    #[cfg(test)]
    pub fn of_server(server: &str) -> TargetLabels {
        TargetLabels {
            pairs: vec![("server".to_string(), server.to_string())],
        }
    }

    /// The target's labels followed by `extra`.
    pub fn with<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut labels: Vec<(&str, &str)> = self
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        labels.extend_from_slice(extra);
        labels
    }

    pub fn server(&self) -> &str {
        &self.pairs[0].1
    }
}
