//! `[query]`: the limits of the HTTP query API, Prometheus' `--query.*` flags with their
//! defaults.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, Source};
use super::file::HumanDuration;

/// `[query]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySection {
    /// How long one query may run, queueing included (Prometheus' `--query.timeout`, 2m).
    pub timeout: Option<Spanned<HumanDuration>>,
    /// How many queries run at once; others wait in a queue until their timeout
    /// (Prometheus' `--query.max-concurrency`, 20).
    pub max_concurrency: Option<Spanned<i64>>,
    /// The most samples one query may load (Prometheus' `--query.max-samples`, 50 M).
    pub max_samples: Option<Spanned<i64>>,
}

/// The validated limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryConfig {
    pub timeout: Duration,
    pub max_concurrency: usize,
    pub max_samples: u64,
}

impl Default for QueryConfig {
    fn default() -> QueryConfig {
        QueryConfig {
            timeout: Duration::from_secs(120),
            max_concurrency: 20,
            max_samples: crate::rules::eval::MAX_SAMPLES,
        }
    }
}

const MIN_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_CONCURRENCY: i64 = 1_000;
const MAX_SAMPLES_LIMIT: i64 = 1_000_000_000;

/// Checks `[query]`, pushing every problem to `errors`; a bad value falls back to its default.
pub fn validate(
    source: &Source<'_>,
    errors: &mut Vec<ConfigError>,
    section: &QuerySection,
) -> QueryConfig {
    let mut config = QueryConfig::default();
    if let Some(timeout) = &section.timeout {
        let HumanDuration(value) = *timeout.get_ref();
        if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&value) {
            config.timeout = value;
        } else {
            errors.push(source.error_at(
                timeout.span(),
                "query.timeout",
                format!("{value:?} is out of range"),
                "give a duration from 100ms to 1h; Prometheus' default is 2m",
            ));
        }
    }
    let mut count = |value: &Option<Spanned<i64>>, key: &str, max: i64, hint: &str| {
        let spanned = value.as_ref()?;
        let value = *spanned.get_ref();
        if (1..=max).contains(&value) {
            Some(value)
        } else {
            errors.push(source.error_at(
                spanned.span(),
                key,
                format!("{value} is out of range"),
                format!("give a number from 1 to {max}; {hint}"),
            ));
            None
        }
    };
    if let Some(value) = count(
        &section.max_concurrency,
        "query.max_concurrency",
        MAX_CONCURRENCY,
        "Prometheus' default is 20",
    ) {
        config.max_concurrency = value as usize;
    }
    if let Some(value) = count(
        &section.max_samples,
        "query.max_samples",
        MAX_SAMPLES_LIMIT,
        "Prometheus' default is 50000000",
    ) {
        config.max_samples = value as u64;
    }
    config
}

#[cfg(test)]
mod tests {
    use crate::config::{Overrides, parse};

    #[test]
    fn query_limits_default_to_prometheus_and_are_checked() {
        let config = parse("t", "", &Overrides::default()).expect("defaults parse");
        assert_eq!(config.query.timeout.as_secs(), 120);
        assert_eq!(config.query.max_concurrency, 20);
        assert_eq!(config.query.max_samples, 50_000_000);
        let text = "[query]\ntimeout = \"1s\"\nmax_concurrency = 2\nmax_samples = 1000\n";
        let config = parse("t", text, &Overrides::default()).expect("valid");
        assert_eq!(config.query.timeout.as_millis(), 1000);
        assert_eq!(config.query.max_concurrency, 2);
        assert_eq!(config.query.max_samples, 1000);
        let error = parse("t", "[query]\nmax_concurrency = 0\n", &Overrides::default())
            .expect_err("zero refused")
            .to_string();
        assert!(
            error.starts_with("t:2:19: key `query.max_concurrency`: 0 is out of range"),
            "{error}"
        );
        let error = parse("t", "[query]\ntimeout = \"10ms\"\n", &Overrides::default())
            .expect_err("too short refused")
            .to_string();
        assert!(error.contains("key `query.timeout`"), "{error}");
    }
}
