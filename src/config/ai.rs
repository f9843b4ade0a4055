//! `[ai]`: AI usage ingest, prices, monthly budgets.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, Source};
use super::file::HumanDuration;
use super::secret::{Secret, SecretRef};
use crate::spend::ledger::Caps;
use crate::spend::pricing::{Price, PriceTable};

/// `[ai]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AiSection {
    /// Bearer token required on `/v1/metrics` and `/api/v1/ai/usage`; without it the web auth
    /// (if any) applies.
    pub ingest_token: Option<Spanned<SecretRef>>,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: Option<Spanned<i64>>,
    /// Labels clients may attach (e.g. feature, tenant); others are refused or ignored.
    pub allowed_labels: Option<Vec<String>>,
    /// Distinct values kept per label; further values fold into "other".
    pub max_label_values: Option<Spanned<i64>>,
    /// Distinct provider/model pairs kept; further ones fold into model "other".
    pub max_models: Option<Spanned<i64>>,
    /// Distinct providers kept; further ones fold into provider "other".
    pub max_providers: Option<Spanned<i64>>,
    /// Spend series (provider, model and label values) kept; further ones fold into one
    /// series of "other". Ingested series have this budget of their own, so a client cannot
    /// fill the history's `max_series` that every collector shares.
    pub max_series: Option<Spanned<i64>>,
    /// A provider, model or label value unseen this long frees its place under the caps.
    pub forget_unseen_after: Option<Spanned<HumanDuration>>,
    /// IANA time zone that months and days are counted in, e.g. "Europe/Berlin".
    pub time_zone: Option<Spanned<String>>,
    /// Monthly budget in dollars over all usage.
    pub monthly_budget_dollars: Option<f64>,
    /// Monthly budget in tokens (input + output) over all usage.
    pub monthly_budget_tokens: Option<f64>,
    /// Budgets for one label value, e.g. { label = "feature", value = "chat", dollars = 300 }.
    pub budgets: Vec<LabelBudget>,
    /// Prices added to (or overriding) the shipped snapshot.
    pub prices: Vec<Price>,
    /// How often spend metrics are refreshed and the state is saved.
    pub interval: Option<Spanned<HumanDuration>>,
    /// Queries that read usage rows from the application's PostgreSQL.
    pub sql_sources: Vec<SqlSourceSection>,
}

/// `[[ai.sql_sources]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSourceSection {
    pub name: String,
    /// `env:NAME`, `file:/path` or the DSN.
    pub dsn: Spanned<SecretRef>,
    /// See `spend/sql_source.rs` for the columns it must return; `$1` is the watermark.
    pub query: String,
    pub interval: Option<Spanned<HumanDuration>>,
}

/// A validated SQL source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AiSqlSource {
    pub name: String,
    pub dsn: Secret,
    pub query: String,
    pub schedule: super::CollectorSchedule,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelBudget {
    pub label: String,
    pub value: String,
    pub dollars: f64,
}

/// The validated `[ai]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct AiConfig {
    pub ingest_token: Option<Secret>,
    pub max_body_bytes: usize,
    pub allowed_labels: Vec<String>,
    pub caps: Caps,
    pub time_zone_name: String,
    pub time_zone: jiff::tz::TimeZone,
    pub monthly_budget_dollars: Option<f64>,
    pub monthly_budget_tokens: Option<f64>,
    pub budgets: Vec<LabelBudget>,
    pub prices: PriceTable,
    pub interval: Duration,
    pub sql_sources: Vec<AiSqlSource>,
}

pub fn validate(
    source: &Source<'_>,
    errors: &mut Vec<ConfigError>,
    section: &AiSection,
) -> AiConfig {
    let mut number = |value: &Option<Spanned<i64>>, key: &str, default: i64, max: i64| match value {
        None => default,
        Some(v) if (1..=max).contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            errors.push(source.error_at(
                v.span(),
                key,
                format!("{} is out of range", v.get_ref()),
                format!("give a number from 1 to {max}"),
            ));
            default
        }
    };
    let max_body_bytes = number(
        &section.max_body_bytes,
        "ai.max_body_bytes",
        1 << 20,
        64 << 20,
    ) as usize;
    let max_label_values = number(
        &section.max_label_values,
        "ai.max_label_values",
        100,
        100_000,
    ) as usize;
    let max_models = number(&section.max_models, "ai.max_models", 200, 100_000) as usize;
    let max_providers = number(&section.max_providers, "ai.max_providers", 20, 10_000) as usize;
    let max_series = number(&section.max_series, "ai.max_series", 2_000, 100_000) as usize;
    let forget_after_ms = section
        .forget_unseen_after
        .as_ref()
        .map_or(7 * 86_400_000, |d| d.get_ref().0.as_millis() as i64)
        .max(1_000);
    let ingest_token =
        section
            .ingest_token
            .as_ref()
            .and_then(|token| match token.get_ref().resolve() {
                Ok(secret) => Some(secret),
                Err(message) => {
                    errors.push(
                        source
                            .error_at(
                                token.span(),
                                "ai.ingest_token",
                                message,
                                "set the variable or create the file",
                            )
                            .secret(),
                    );
                    None
                }
            });
    let time_zone_name = section
        .time_zone
        .as_ref()
        .map_or("UTC".to_string(), |z| z.get_ref().clone());
    let time_zone = match jiff::tz::TimeZone::get(&time_zone_name) {
        Ok(zone) => zone,
        Err(error) => {
            if let Some(zone) = &section.time_zone {
                errors.push(source.error_at(
                    zone.span(),
                    "ai.time_zone",
                    format!("unknown time zone `{time_zone_name}`: {error}"),
                    "use an IANA name such as UTC or Europe/Berlin",
                ));
            }
            jiff::tz::TimeZone::UTC
        }
    };
    let prices = match PriceTable::with_defaults(section.prices.clone()) {
        Ok(table) => table,
        Err(message) => {
            errors.push(ConfigError {
                secret_unavailable: false,
                origin: source.origin.to_string(),
                position: None,
                key: Some("ai.prices".into()),
                message,
                hint: None,
            });
            PriceTable::default()
        }
    };
    for (index, price) in section.prices.iter().enumerate() {
        let date_ok = price.effective_from.parse::<jiff::civil::Date>().is_ok();
        let prices_ok = [
            price.input_per_million,
            price.output_per_million,
            price.cached_input_per_million.unwrap_or(0.0),
        ]
        .iter()
        .all(|p| p.is_finite() && *p >= 0.0);
        if !date_ok || !prices_ok {
            errors.push(ConfigError {
 secret_unavailable: false,
                origin: source.origin.to_string(),
                position: None,
                key: Some(format!("ai.prices[{index}]")),
                message: format!("price of {}/{} is invalid", price.provider, price.model),
                hint: Some("prices are non-negative dollars per million tokens; effective_from is YYYY-MM-DD".into()),
            });
        }
    }
    let interval = section
        .interval
        .as_ref()
        .map_or(Duration::from_secs(15), |d| d.get_ref().0);
    let mut sql_sources = Vec::new();
    for (index, source_section) in section.sql_sources.iter().enumerate() {
        let key = format!("ai.sql_sources[{index}]");
        let dsn = match source_section.dsn.get_ref().resolve() {
            Ok(dsn) => dsn,
            Err(message) => {
                errors.push(
                    source
                        .error_at(
                            source_section.dsn.span(),
                            &format!("{key}.dsn"),
                            message,
                            "set the variable or create the file",
                        )
                        .secret(),
                );
                continue;
            }
        };
        if let Err(message) = super::targets::postgres_address(dsn.expose()) {
            errors.push(source.error_at(
                source_section.dsn.span(),
                &format!("{key}.dsn"),
                message,
                "a postgres:// URL",
            ));
        }
        if !source_section.query.contains("$1") {
            errors.push(ConfigError {
 secret_unavailable: false,
                origin: source.origin.to_string(),
                position: None,
                key: Some(format!("{key}.query")),
                message: "the query does not use $1, the watermark, so it would count the same rows again on every run".into(),
                hint: Some("filter with e.g. WHERE created_at > to_timestamp($1)".into()),
            });
        }
        let every = source_section
            .interval
            .as_ref()
            .map_or(Duration::from_secs(60), |d| d.get_ref().0)
            .max(Duration::from_secs(1));
        sql_sources.push(AiSqlSource {
            name: source_section.name.clone(),
            dsn,
            query: source_section.query.clone(),
            schedule: super::CollectorSchedule {
                enabled: true,
                interval: every,
                timeout: every.min(Duration::from_secs(30)),
            },
        });
    }
    AiConfig {
        ingest_token,
        max_body_bytes,
        allowed_labels: section
            .allowed_labels
            .clone()
            .unwrap_or_else(|| vec!["feature".to_string(), "tenant".to_string()]),
        caps: Caps {
            max_label_values,
            max_models,
            max_providers,
            max_series,
            forget_after_ms,
        },
        time_zone_name,
        time_zone,
        monthly_budget_dollars: section.monthly_budget_dollars,
        monthly_budget_tokens: section.monthly_budget_tokens,
        budgets: section.budgets.clone(),
        prices,
        interval: interval.max(Duration::from_millis(100)),
        sql_sources,
    }
}
