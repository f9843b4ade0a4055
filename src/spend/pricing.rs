//! Prices per provider and model, per million tokens, with effective dates. Shipped defaults
//! are a dated snapshot (see `default_prices.toml`); the config adds or overrides entries.

use serde::Deserialize;

/// Token prices of one model from a date on, in dollars per million tokens.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub provider: String,
    pub model: String,
    pub input_per_million: f64,
    pub output_per_million: f64,
    /// Cached input tokens; defaults to the input price when the provider gives no discount.
    pub cached_input_per_million: Option<f64>,
    /// First day (YYYY-MM-DD, UTC) the price applies.
    pub effective_from: String,
}

/// The embedded snapshot of public list prices.
pub const DEFAULT_PRICES: &str = include_str!("default_prices.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    snapshot_date: String,
    prices: Vec<Price>,
}

/// Prices looked up by provider, model and date.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriceTable {
    prices: Vec<Price>,
    /// Date of the shipped snapshot, for the status output.
    pub snapshot_date: String,
}

/// Tokens of one request or aggregate, input including cached input (as providers report it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tokens {
    pub input: f64,
    pub output: f64,
    pub cached: f64,
}

impl PriceTable {
    /// The shipped defaults followed by `overrides` (later entries win on the same key and date).
    pub fn with_defaults(overrides: Vec<Price>) -> Result<PriceTable, String> {
        let file: PriceFile =
            toml::from_str(DEFAULT_PRICES).map_err(|e| format!("shipped price table: {e}"))?;
        let mut prices = file.prices;
        prices.extend(overrides);
        Ok(PriceTable {
            prices,
            snapshot_date: file.snapshot_date,
        })
    }

    /// The price in force on `date` (YYYY-MM-DD) for a provider and model; names compare
    /// case-insensitively, and a model also matches a priced prefix (`gpt-4o-2024-08-06` uses
    /// `gpt-4o`) so dated releases need no entry of their own.
    pub fn lookup(&self, provider: &str, model: &str, date: &str) -> Option<&Price> {
        let provider = canonical_provider(provider);
        let model = model.to_ascii_lowercase();
        self.prices
            .iter()
            .filter(|p| p.provider.eq_ignore_ascii_case(&provider))
            .filter(|p| {
                let priced = p.model.to_ascii_lowercase();
                model == priced
                    || model
                        .strip_prefix(&priced)
                        .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('@'))
            })
            .filter(|p| p.effective_from.as_str() <= date)
            // Longest model name (most specific), then latest date, then last declared.
            .enumerate()
            .max_by(|(ia, a), (ib, b)| {
                a.model
                    .len()
                    .cmp(&b.model.len())
                    .then(a.effective_from.cmp(&b.effective_from))
                    .then(ia.cmp(ib))
            })
            .map(|(_, p)| p)
    }

    /// Dollars for `tokens` at `price`.
    pub fn cost(price: &Price, tokens: Tokens) -> f64 {
        let cached = tokens.cached.min(tokens.input).max(0.0);
        let fresh = (tokens.input - cached).max(0.0);
        let cached_price = price
            .cached_input_per_million
            .unwrap_or(price.input_per_million);
        (fresh * price.input_per_million
            + cached * cached_price
            + tokens.output * price.output_per_million)
            / 1e6
    }
}

/// The price table's provider name for OpenTelemetry's `gen_ai.provider.name` values and
/// common spellings (`gcp.gemini` and `gcp.vertex_ai` are Google's list prices).
fn canonical_provider(provider: &str) -> String {
    let lower = provider.to_ascii_lowercase();
    match lower.as_str() {
        "gcp.gemini" | "gcp.vertex_ai" | "gcp.gen_ai" | "vertex_ai" | "gemini" => {
            "google".to_string()
        }
        "azure.ai.openai" => "openai".to_string(),
        _ => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_parses_and_prefixes_match_dated_releases() {
        let table = PriceTable::with_defaults(Vec::new()).unwrap_or_default();
        assert!(!table.snapshot_date.is_empty());
        assert!(
            table
                .lookup("google", "gemini-2.5-flash", "2026-11-01")
                .is_some()
        );
        assert!(
            table
                .lookup("openai", "gpt-4o-2024-08-06", "2026-11-01")
                .is_some_and(|p| p.model == "gpt-4o")
        );
        assert!(
            table
                .lookup("openai", "gpt-4o-mini", "2026-11-01")
                .is_some_and(|p| p.model == "gpt-4o-mini")
        );
        assert!(table.lookup("acme", "mystery-1", "2026-11-01").is_none());
    }

    #[test]
    fn overrides_and_effective_dates_choose_the_price() {
        let price = |input: f64, from: &str| Price {
            provider: "acme".into(),
            model: "m".into(),
            input_per_million: input,
            output_per_million: 2.0,
            cached_input_per_million: Some(0.5),
            effective_from: from.into(),
        };
        let table =
            PriceTable::with_defaults(vec![price(1.0, "2026-01-01"), price(3.0, "2026-06-01")])
                .unwrap_or_default();
        assert_eq!(
            table
                .lookup("ACME", "m", "2026-05-31")
                .map(|p| p.input_per_million),
            Some(1.0)
        );
        assert_eq!(
            table
                .lookup("acme", "m", "2026-06-01")
                .map(|p| p.input_per_million),
            Some(3.0)
        );
        assert_eq!(table.lookup("acme", "m", "2025-12-31"), None);
        let cost = PriceTable::cost(
            &price(1.0, "2026-01-01"),
            Tokens {
                input: 1_000_000.0,
                output: 500_000.0,
                cached: 400_000.0,
            },
        );
        assert!((cost - (0.6 + 0.2 + 1.0)).abs() < 1e-12, "{cost}");
    }
}
