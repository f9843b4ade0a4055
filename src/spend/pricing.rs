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
    /// The shipped defaults followed by `overrides` (later entries win on the same key and date);
    /// providers are stored under their canonical name.
    pub fn with_defaults(overrides: Vec<Price>) -> Result<PriceTable, String> {
        let file: PriceFile =
            toml::from_str(DEFAULT_PRICES).map_err(|e| format!("shipped price table: {e}"))?;
        let mut prices = file.prices;
        prices.extend(overrides);
        // Older configs name providers by alias (`google`); they price the canonical name.
        for price in &mut prices {
            price.provider = canonical_provider(&price.provider);
        }
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
        self.lookup_exact(&provider, &model, date).or_else(|| {
            price_fallback(&provider).and_then(|other| self.lookup_exact(other, &model, date))
        })
    }

    /// The price of a canonical provider's model (lowercased), without fallback.
    fn lookup_exact(&self, provider: &str, model: &str, date: &str) -> Option<&Price> {
        self.prices
            .iter()
            .filter(|p| p.provider == provider)
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

/// OpenTelemetry's `gen_ai.provider.name` for a provider name as clients send it: every ingest
/// path and the price table use this one name per vendor, so one vendor is never two providers
/// (`google` from JSON beside `gcp.gemini` from OTLP). Known aliases and older SDKs'
/// `gen_ai.system` values map to the registry value; other names are kept, lowercased and
/// trimmed.
pub fn canonical_provider(provider: &str) -> String {
    let lower = provider.trim().to_ascii_lowercase();
    let canonical = match lower.as_str() {
        "google" | "gemini" | "google_ai" | "google.gemini" => "gcp.gemini",
        "vertex" | "vertexai" | "vertex_ai" | "google.vertex_ai" => "gcp.vertex_ai",
        "bedrock" | "aws" | "aws_bedrock" => "aws.bedrock",
        "azure" | "azure_openai" | "az.ai.openai" => "azure.ai.openai",
        "az.ai.inference" | "azure_ai_inference" => "azure.ai.inference",
        "xai" | "grok" => "x_ai",
        "mistral" | "mistralai" => "mistral_ai",
        "watsonx" | "ibm" | "ibm_watsonx" => "ibm.watsonx.ai",
        _ => return lower,
    };
    canonical.to_string()
}

/// The provider whose list prices apply when a provider has none of its own: Vertex AI and
/// the Gen AI SDK bill Google's Gemini list prices, Azure OpenAI OpenAI's.
fn price_fallback(provider: &str) -> Option<&'static str> {
    match provider {
        "gcp.vertex_ai" | "gcp.gen_ai" => Some("gcp.gemini"),
        "azure.ai.openai" => Some("openai"),
        _ => None,
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

    /// The models a team on OpenAI, Anthropic and Gemini sends, with their dated releases:
    /// (provider, model as sent, priced entry, input and output per million).
    #[test]
    fn the_snapshot_prices_the_common_models_and_their_dated_releases() {
        let table = PriceTable::with_defaults(Vec::new()).unwrap_or_default();
        let cases = [
            ("openai", "gpt-4o-2024-08-06", "gpt-4o", 2.50, 10.0),
            (
                "openai",
                "gpt-4o-mini-2024-07-18",
                "gpt-4o-mini",
                0.15,
                0.60,
            ),
            ("openai", "gpt-4.1-2025-04-14", "gpt-4.1", 2.0, 8.0),
            ("openai", "gpt-4.1-mini", "gpt-4.1-mini", 0.40, 1.60),
            (
                "openai",
                "gpt-4.1-nano-2025-04-14",
                "gpt-4.1-nano",
                0.10,
                0.40,
            ),
            ("openai", "o1-2024-12-17", "o1", 15.0, 60.0),
            ("openai", "o1-mini", "o1-mini", 1.10, 4.40),
            ("openai", "o3-2025-04-16", "o3", 2.0, 8.0),
            ("openai", "o3-mini-2025-01-31", "o3-mini", 1.10, 4.40),
            ("openai", "o4-mini", "o4-mini", 1.10, 4.40),
            ("openai", "gpt-3.5-turbo-0125", "gpt-3.5-turbo", 0.50, 1.50),
            (
                "openai",
                "text-embedding-3-small",
                "text-embedding-3-small",
                0.02,
                0.0,
            ),
            (
                "openai",
                "text-embedding-3-large",
                "text-embedding-3-large",
                0.13,
                0.0,
            ),
            (
                "openai",
                "text-embedding-ada-002",
                "text-embedding-ada-002",
                0.10,
                0.0,
            ),
            (
                "anthropic",
                "claude-3-5-sonnet-20241022",
                "claude-3-5-sonnet",
                3.0,
                15.0,
            ),
            (
                "anthropic",
                "claude-3-5-haiku-20241022",
                "claude-3-5-haiku",
                0.80,
                4.0,
            ),
            (
                "anthropic",
                "claude-3-7-sonnet-20250219",
                "claude-3-7-sonnet",
                3.0,
                15.0,
            ),
            (
                "anthropic",
                "claude-sonnet-4-20250514",
                "claude-sonnet-4",
                3.0,
                15.0,
            ),
            (
                "anthropic",
                "claude-opus-4-20250514",
                "claude-opus-4",
                15.0,
                75.0,
            ),
            (
                "anthropic",
                "claude-3-haiku-20240307",
                "claude-3-haiku",
                0.25,
                1.25,
            ),
            (
                "anthropic",
                "claude-3-opus-20240229",
                "claude-3-opus",
                15.0,
                75.0,
            ),
            (
                "google",
                "gemini-1.5-flash",
                "gemini-1.5-flash",
                0.075,
                0.30,
            ),
            (
                "gcp.gemini",
                "gemini-1.5-flash-002",
                "gemini-1.5-flash",
                0.075,
                0.30,
            ),
            (
                "gcp.gemini",
                "gemini-1.5-flash-8b-001",
                "gemini-1.5-flash-8b",
                0.0375,
                0.15,
            ),
            (
                "gcp.gemini",
                "gemini-1.5-pro-002",
                "gemini-1.5-pro",
                1.25,
                5.0,
            ),
            (
                "gcp.gemini",
                "gemini-2.0-flash-001",
                "gemini-2.0-flash",
                0.10,
                0.40,
            ),
            (
                "gcp.gemini",
                "gemini-2.0-flash-lite",
                "gemini-2.0-flash-lite",
                0.075,
                0.30,
            ),
            ("gcp.gemini", "gemini-2.5-pro", "gemini-2.5-pro", 1.25, 10.0),
            (
                "gcp.vertex_ai",
                "gemini-2.5-flash",
                "gemini-2.5-flash",
                0.30,
                2.50,
            ),
            (
                "gcp.gemini",
                "text-embedding-004",
                "text-embedding-004",
                0.0,
                0.0,
            ),
            (
                "gcp.gemini",
                "gemini-embedding-001",
                "gemini-embedding-001",
                0.15,
                0.0,
            ),
        ];
        for (provider, model, entry, input, output) in cases {
            let price = table.lookup(provider, model, "2025-11-24");
            assert_eq!(
                price.map(|p| (p.model.as_str(), p.input_per_million, p.output_per_million)),
                Some((entry, input, output)),
                "{provider}/{model}"
            );
        }
    }

    /// Model names the documentation and examples use, found by pattern so the check follows
    /// the docs as they change.
    fn models_named_in_docs() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
        for dir in ["examples", "docs"] {
            let mut stack = vec![root.join(dir)];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let path = entry.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else {
                        files.push(path);
                    }
                }
            }
        }
        let pattern =
            regex::Regex::new(r"\b(?:gpt-[0-9][a-z0-9.-]*|claude-[0-9a-z][a-z0-9.-]*|gemini-[0-9][a-z0-9.-]*|text-embedding-[a-z0-9-]+)")
                .unwrap_or_else(|e| panic!("{e}"));
        let mut found = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for name in pattern.find_iter(&text) {
                let model = name.as_str().trim_end_matches(['.', '-']).to_string();
                found.push((file.display().to_string(), model));
            }
        }
        found
    }

    #[test]
    fn every_model_named_in_the_docs_and_examples_is_priced() {
        let table = PriceTable::with_defaults(Vec::new()).unwrap_or_default();
        let named = models_named_in_docs();
        assert!(!named.is_empty(), "the pattern finds no model in the docs");
        let unpriced: Vec<&(String, String)> = named
            .iter()
            .filter(|(_, model)| {
                !["openai", "anthropic", "gcp.gemini"]
                    .iter()
                    .any(|provider| table.lookup(provider, model, "2025-11-24").is_some())
            })
            .collect();
        assert!(
            unpriced.is_empty(),
            "not in the shipped prices: {unpriced:?}"
        );
    }

    #[test]
    fn provider_aliases_map_to_opentelemetry_registry_names() {
        let cases = [
            ("google", "gcp.gemini"),
            ("Gemini", "gcp.gemini"),
            (" google_ai ", "gcp.gemini"),
            ("gcp.gemini", "gcp.gemini"),
            ("vertex", "gcp.vertex_ai"),
            ("VertexAI", "gcp.vertex_ai"),
            ("vertex_ai", "gcp.vertex_ai"),
            ("gcp.gen_ai", "gcp.gen_ai"),
            ("bedrock", "aws.bedrock"),
            ("aws", "aws.bedrock"),
            ("azure", "azure.ai.openai"),
            ("azure_openai", "azure.ai.openai"),
            ("az.ai.openai", "azure.ai.openai"),
            ("az.ai.inference", "azure.ai.inference"),
            ("xai", "x_ai"),
            ("Grok", "x_ai"),
            ("mistral", "mistral_ai"),
            ("watsonx", "ibm.watsonx.ai"),
            ("OpenAI", "openai"),
            ("anthropic", "anthropic"),
            ("cohere", "cohere"),
            ("deepseek", "deepseek"),
            ("groq", "groq"),
            ("perplexity", "perplexity"),
            ("acme", "acme"),
        ];
        for (alias, canonical) in cases {
            assert_eq!(canonical_provider(alias), canonical, "{alias}");
        }
    }

    #[test]
    fn prices_are_keyed_by_canonical_names_and_old_names_in_configs_still_price() {
        let old_name = Price {
            provider: "Google".into(),
            model: "custom-model".into(),
            input_per_million: 1.0,
            output_per_million: 2.0,
            cached_input_per_million: None,
            effective_from: "2025-01-01".into(),
        };
        let table = PriceTable::with_defaults(vec![old_name]).unwrap_or_default();
        for provider in ["gcp.gemini", "google", "gemini"] {
            assert!(
                table
                    .lookup(provider, "custom-model", "2026-01-01")
                    .is_some(),
                "{provider}"
            );
            assert!(
                table
                    .lookup(provider, "gemini-2.5-flash", "2026-11-01")
                    .is_some_and(|p| p.provider == "gcp.gemini"),
                "{provider}"
            );
        }
        // Vertex AI bills Gemini's list prices unless it has its own.
        assert!(
            table
                .lookup("gcp.vertex_ai", "gemini-2.5-flash", "2026-11-01")
                .is_some()
        );
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
