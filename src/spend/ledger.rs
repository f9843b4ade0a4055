//! The spend ledger: lifetime counters, month-to-date totals and daily spend, with caps on label
//! cardinality. Pure: dates come in already converted to the configured time zone. Serialised
//! as is into the state directory.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::pricing::Tokens;

/// Label value used for values past a label's cardinality cap.
pub const OTHER: &str = "other";

/// Latency histogram bounds in seconds, as Prometheus' defaults stretched for LLM calls.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0,
];

/// Cumulative bucket counts (one per [`LATENCY_BUCKETS`] bound), sum and count.
pub type LatencyHistogram = (Vec<f64>, f64, f64);

/// One usage record, from any ingest path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageEvent {
    pub provider: String,
    pub model: String,
    pub tokens: Tokens,
    /// Requests this record stands for (1 for an event; a delta count for OTLP).
    pub requests: f64,
    pub latency_seconds: Option<f64>,
    /// Whether the application's own response cache answered.
    pub cache_hit: Option<bool>,
    /// Allowed labels only (the ingest paths filter them).
    pub labels: BTreeMap<String, String>,
}

/// Series identity: provider, model and allowed labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SpendKey {
    pub provider: String,
    pub model: String,
    pub labels: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub cached_tokens: f64,
    pub cost_dollars: f64,
    pub requests: f64,
    /// Tokens of models without a price (counted, not priced at zero silently).
    pub unpriced_tokens: f64,
}

impl Totals {
    fn add(&mut self, tokens: Tokens, cost: Option<f64>, requests: f64) {
        self.input_tokens += tokens.input;
        self.output_tokens += tokens.output;
        self.cached_tokens += tokens.cached;
        self.requests += requests;
        match cost {
            Some(cost) => self.cost_dollars += cost,
            None => self.unpriced_tokens += tokens.input + tokens.output,
        }
    }

    pub fn tokens(&self) -> f64 {
        self.input_tokens + self.output_tokens
    }
}

/// Spend of one day of the month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Day {
    pub cost_dollars: f64,
    pub tokens: f64,
}

/// See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// The month the month-to-date figures belong to, `YYYY-MM`.
    pub month: String,
    pub month_to_date: Vec<(SpendKey, Totals)>,
    /// Day of month -> spend.
    pub days: BTreeMap<u8, Day>,
    /// Since the state was created; never reset, so the exported counters stay monotonic.
    pub lifetime: Vec<(SpendKey, Totals)>,
    /// Latency histogram per provider and model: bucket counts (cumulative), sum, count.
    pub latency: Vec<((String, String), LatencyHistogram)>,
    pub cache_lookups: f64,
    pub cache_hits: f64,
    /// Values seen per label, for the cardinality cap.
    pub label_values: BTreeMap<String, BTreeSet<String>>,
    /// Distinct provider/model pairs seen, for their cap.
    pub models: BTreeSet<(String, String)>,
    /// Values folded into "other", per label (`model` for provider/model pairs).
    pub folded: BTreeMap<String, f64>,
    /// Per SQL source, the newest `at` read (seconds since the epoch).
    #[serde(default)]
    pub sql_watermarks: BTreeMap<String, f64>,
}

/// A civil date in the configured time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalDate {
    pub year: i16,
    pub month: i8,
    pub day: i8,
}

impl LocalDate {
    pub fn month_key(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// Caps that keep a bad client from exploding series or memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub max_label_values: usize,
    pub max_models: usize,
}

impl Ledger {
    /// Starts a new month (month-to-date totals and days cleared) when `today` is in a later
    /// month than the ledger's.
    pub fn roll_to(&mut self, today: LocalDate) {
        let month = today.month_key();
        if self.month < month {
            self.month = month;
            self.month_to_date.clear();
            self.days.clear();
        }
    }

    /// Records one event that happened on `date` (in the configured zone), priced at `cost`
    /// (None when the model has no price). Events of an earlier month count in the lifetime
    /// counters only.
    pub fn record(
        &mut self,
        mut event: UsageEvent,
        date: LocalDate,
        cost: Option<f64>,
        caps: Caps,
    ) {
        self.roll_to(date);
        self.fold(&mut event, caps);
        let key = SpendKey {
            provider: event.provider.clone(),
            model: event.model.clone(),
            labels: event
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        entry(&mut self.lifetime, &key).add(event.tokens, cost, event.requests);
        if date.month_key() == self.month {
            entry(&mut self.month_to_date, &key).add(event.tokens, cost, event.requests);
            let day = self.days.entry(date.day as u8).or_default();
            day.cost_dollars += cost.unwrap_or(0.0);
            day.tokens += event.tokens.input + event.tokens.output;
        }
        if let Some(seconds) = event.latency_seconds.filter(|s| s.is_finite() && *s >= 0.0) {
            let model = (event.provider.clone(), event.model.clone());
            let index = match self.latency.iter().position(|(k, _)| *k == model) {
                Some(index) => index,
                None => {
                    self.latency
                        .push((model, (vec![0.0; LATENCY_BUCKETS.len()], 0.0, 0.0)));
                    self.latency.len() - 1
                }
            };
            let (buckets, sum, count) = &mut self.latency[index].1;
            for (bucket, bound) in buckets.iter_mut().zip(LATENCY_BUCKETS) {
                if seconds <= bound {
                    *bucket += 1.0;
                }
            }
            *sum += seconds;
            *count += 1.0;
        }
        if let Some(hit) = event.cache_hit {
            self.cache_lookups += 1.0;
            if hit {
                self.cache_hits += 1.0;
            }
        }
    }

    /// Month-to-date totals over every series.
    pub fn month_total(&self) -> Totals {
        let mut total = Totals::default();
        for (_, t) in &self.month_to_date {
            total.input_tokens += t.input_tokens;
            total.output_tokens += t.output_tokens;
            total.cached_tokens += t.cached_tokens;
            total.cost_dollars += t.cost_dollars;
            total.requests += t.requests;
            total.unpriced_tokens += t.unpriced_tokens;
        }
        total
    }

    /// Month-to-date cost of the series whose `label` is `value`.
    pub fn month_cost_where(&self, label: &str, value: &str) -> f64 {
        self.month_to_date
            .iter()
            .filter(|(k, _)| k.labels.iter().any(|(l, v)| l == label && v == value))
            .map(|(_, t)| t.cost_dollars)
            .sum()
    }

    /// Replaces label values and provider/model pairs past their caps with "other".
    fn fold(&mut self, event: &mut UsageEvent, caps: Caps) {
        for (label, value) in event.labels.iter_mut() {
            let seen = self.label_values.entry(label.clone()).or_default();
            if !seen.contains(value.as_str()) {
                if seen.len() >= caps.max_label_values {
                    *self.folded.entry(label.clone()).or_default() += 1.0;
                    *value = OTHER.to_string();
                    continue;
                }
                seen.insert(value.clone());
            }
        }
        let pair = (event.provider.clone(), event.model.clone());
        if !self.models.contains(&pair) {
            if self.models.len() >= caps.max_models {
                *self.folded.entry("model".to_string()).or_default() += 1.0;
                event.model = OTHER.to_string();
            } else {
                self.models.insert(pair);
            }
        }
    }
}

/// The totals of `key` in a list kept sorted by key (binary search; a Vec serialises as a plain
/// JSON array, which a map keyed by a struct would not).
fn entry<'a>(list: &'a mut Vec<(SpendKey, Totals)>, key: &SpendKey) -> &'a mut Totals {
    let index = match list.binary_search_by(|(k, _)| k.cmp(key)) {
        Ok(index) => index,
        Err(index) => {
            list.insert(index, (key.clone(), Totals::default()));
            index
        }
    };
    &mut list[index].1
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        max_label_values: 2,
        max_models: 10,
    };

    fn event(feature: &str, input: f64) -> UsageEvent {
        UsageEvent {
            provider: "google".into(),
            model: "gemini-2.5-flash".into(),
            tokens: Tokens {
                input,
                output: 10.0,
                cached: 0.0,
            },
            requests: 1.0,
            labels: [("feature".to_string(), feature.to_string())].into(),
            ..UsageEvent::default()
        }
    }

    fn date(month: i8, day: i8) -> LocalDate {
        LocalDate {
            year: 2026,
            month,
            day,
        }
    }

    #[test]
    fn month_boundary_resets_month_to_date_but_not_lifetime() {
        let mut ledger = Ledger::default();
        ledger.record(event("chat", 100.0), date(10, 31), Some(1.0), CAPS);
        ledger.record(event("chat", 100.0), date(11, 1), Some(2.0), CAPS);
        assert_eq!(ledger.month, "2026-11");
        assert_eq!(ledger.month_total().cost_dollars, 2.0);
        assert_eq!(ledger.lifetime[0].1.cost_dollars, 3.0);
        // A late event of October counts in lifetime only.
        ledger.record(event("chat", 100.0), date(10, 30), Some(4.0), CAPS);
        assert_eq!(ledger.month_total().cost_dollars, 2.0);
        assert_eq!(ledger.lifetime[0].1.cost_dollars, 7.0);
        assert_eq!(ledger.days.get(&1).map(|d| d.cost_dollars), Some(2.0));
    }

    #[test]
    fn label_values_past_the_cap_fold_into_other_and_are_counted() {
        let mut ledger = Ledger::default();
        for feature in ["a", "b", "c", "d", "a"] {
            ledger.record(event(feature, 1.0), date(11, 2), None, CAPS);
        }
        let labels: Vec<String> = ledger
            .month_to_date
            .iter()
            .map(|(k, _)| k.labels[0].1.clone())
            .collect();
        assert_eq!(labels, vec!["a", "b", "other"]);
        assert_eq!(ledger.folded.get("feature"), Some(&2.0));
        assert_eq!(ledger.month_total().unpriced_tokens, 55.0);
        assert_eq!(ledger.month_cost_where("feature", "a"), 0.0);
    }
}
