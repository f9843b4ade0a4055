//! The spend ledger: lifetime counters, month-to-date totals and daily spend, with caps on label
//! cardinality. Pure: dates come in already converted to the configured time zone. Serialised
//! as is into the state directory.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::otlp::CumulativeState;
use super::pricing::Tokens;

/// Label value used for values past a label's cardinality cap.
pub const OTHER: &str = "other";

/// Latency histogram bounds in seconds, as Prometheus' defaults stretched for LLM calls.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0, 300.0,
];

/// Cumulative bucket counts (one per [`LATENCY_BUCKETS`] bound), sum and count.
pub type LatencyHistogram = (Vec<f64>, f64, f64);

/// Latency observations of one record: cumulative counts per [`LATENCY_BUCKETS`] bound, sum
/// (seconds) and count. OTLP histograms arrive as such aggregates, so a point of any count costs
/// the same.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    pub buckets: [f64; LATENCY_BUCKETS.len()],
    pub sum: f64,
    pub count: f64,
}

impl Latency {
    /// One request that took `seconds`.
    pub fn single(seconds: f64) -> Latency {
        let mut latency = Latency {
            sum: seconds,
            count: 1.0,
            ..Latency::default()
        };
        for (bucket, bound) in latency.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket = 1.0;
            }
        }
        latency
    }
}

/// One usage record, from any ingest path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageEvent {
    pub provider: String,
    pub model: String,
    pub tokens: Tokens,
    /// Requests this record stands for (1 for an event; a delta count for OTLP).
    pub requests: f64,
    pub latency: Option<Latency>,
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
    /// When usage was last recorded for this series (ms since the epoch), for aging out.
    #[serde(default)]
    pub last_seen_ms: i64,
}

impl Totals {
    fn add(&mut self, tokens: Tokens, cost: Option<f64>, requests: f64, at_ms: i64) {
        self.input_tokens += tokens.input;
        self.output_tokens += tokens.output;
        self.cached_tokens += tokens.cached;
        self.requests += requests;
        match cost {
            Some(cost) => self.cost_dollars += cost,
            None => self.unpriced_tokens += tokens.input + tokens.output,
        }
        self.last_seen_ms = self.last_seen_ms.max(at_ms);
    }

    pub fn tokens(&self) -> f64 {
        self.input_tokens + self.output_tokens
    }

    /// Adds another series' totals into this one (two saved names of one series).
    fn merge(&mut self, other: &Totals) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
        self.cost_dollars += other.cost_dollars;
        self.requests += other.requests;
        self.unpriced_tokens += other.unpriced_tokens;
        self.last_seen_ms = self.last_seen_ms.max(other.last_seen_ms);
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
    /// Series in use; a series unseen for `Caps::forget_after_ms` is dropped (its counters
    /// disappear, as a restarted exporter's would), so the caps track what is in use.
    pub lifetime: Vec<(SpendKey, Totals)>,
    /// Latency histogram per provider and model: bucket counts (cumulative), sum, count.
    pub latency: Vec<((String, String), LatencyHistogram)>,
    pub cache_lookups: f64,
    pub cache_hits: f64,
    /// Values folded into "other", per label (`provider`, `model`, `series`).
    pub folded: BTreeMap<String, f64>,
    /// Per SQL source, the newest `at` read (seconds since the epoch).
    #[serde(default)]
    pub sql_watermarks: BTreeMap<String, f64>,
    /// Previous values of OTLP cumulative streams, so a restart does not count them again.
    #[serde(default)]
    pub otlp_streams: CumulativeState,
    /// The budgets the daemon enforces, recorded with the ledger so `prismwatch spend` shows
    /// them without being given the daemon's configuration.
    #[serde(default)]
    pub budgets: Option<Budgets>,
    /// Names in use, derived from `lifetime` (rebuilt after a load or an age-out).
    #[serde(skip)]
    seen: Option<Seen>,
}

/// Monthly budgets as the daemon's `[ai]` section sets them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Budgets {
    pub monthly_dollars: Option<f64>,
    pub monthly_tokens: Option<f64>,
    #[serde(default)]
    pub by_label: Vec<crate::config::LabelBudget>,
}

/// The names the caps count: those of the series in `lifetime`, "other" excluded.
#[derive(Clone, Debug, Default, PartialEq)]
struct Seen {
    providers: BTreeSet<String>,
    models: BTreeSet<(String, String)>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Seen {
    fn add(&mut self, key: &SpendKey) {
        if key.provider != OTHER {
            self.providers.insert(key.provider.clone());
            if key.model != OTHER {
                self.models
                    .insert((key.provider.clone(), key.model.clone()));
            }
        }
        for (label, value) in &key.labels {
            if value != OTHER {
                self.labels
                    .entry(label.clone())
                    .or_default()
                    .insert(value.clone());
            }
        }
    }
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
    pub max_providers: usize,
    /// Series (provider, model and label values) kept; further ones fold into one series of
    /// "other". This is the ingest paths' own budget, so they cannot fill the history's cap.
    pub max_series: usize,
    /// A name unseen this long frees its place under the caps.
    pub forget_after_ms: i64,
}

impl Ledger {
    /// Starts a new month (month-to-date totals and days cleared) when `today` is in a later
    /// month than the ledger's. Only the clock calls this: an event never rolls the month.
    pub fn roll_to(&mut self, today: LocalDate) {
        let month = today.month_key();
        if self.month < month {
            self.month = month;
            self.month_to_date.clear();
            self.days.clear();
        }
    }

    /// Records one event that happened at `at_ms`, on `date` (in the configured zone), priced
    /// at `cost` (None when the model has no price). Events of another month than the ledger's
    /// count in the lifetime counters only.
    pub fn record(
        &mut self,
        mut event: UsageEvent,
        at_ms: i64,
        date: LocalDate,
        cost: Option<f64>,
        caps: Caps,
    ) {
        self.fold(&mut event, caps);
        let mut key = SpendKey {
            provider: event.provider.clone(),
            model: event.model.clone(),
            labels: event
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let known = self.lifetime.binary_search_by(|(k, _)| k.cmp(&key)).is_ok();
        if !known && self.lifetime.len() >= caps.max_series {
            *self.folded.entry("series".to_string()).or_default() += 1.0;
            key = SpendKey {
                provider: OTHER.into(),
                model: OTHER.into(),
                labels: key
                    .labels
                    .into_iter()
                    .map(|(k, _)| (k, OTHER.to_string()))
                    .collect(),
            };
            event.provider = OTHER.into();
            event.model = OTHER.into();
        }
        if let Some(seen) = self.seen.as_mut() {
            seen.add(&key);
        }
        entry(&mut self.lifetime, &key).add(event.tokens, cost, event.requests, at_ms);
        if date.month_key() == self.month {
            entry(&mut self.month_to_date, &key).add(event.tokens, cost, event.requests, at_ms);
            let day = self.days.entry(date.day as u8).or_default();
            day.cost_dollars += cost.unwrap_or(0.0);
            day.tokens += event.tokens.input + event.tokens.output;
        }
        if let Some(latency) = event.latency.filter(|l| l.count > 0.0) {
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
            for (bucket, add) in buckets.iter_mut().zip(latency.buckets) {
                *bucket += add;
            }
            *sum += latency.sum;
            *count += latency.count;
        }
        if let Some(hit) = event.cache_hit {
            self.cache_lookups += 1.0;
            if hit {
                self.cache_hits += 1.0;
            }
        }
    }

    /// Drops series unseen since `now_ms - caps.forget_after_ms` (and the latency of models left
    /// with no series), so their names no longer count against the caps. Month-to-date figures
    /// stay whole. Series saved before last-seen times were kept count as seen at `now_ms`.
    pub fn forget_unseen(&mut self, now_ms: i64, caps: Caps) -> usize {
        let cutoff = now_ms.saturating_sub(caps.forget_after_ms);
        let before = self.lifetime.len();
        for (_, totals) in &mut self.lifetime {
            if totals.last_seen_ms == 0 {
                totals.last_seen_ms = now_ms;
            }
        }
        self.lifetime.retain(|(_, t)| t.last_seen_ms >= cutoff);
        let removed = before - self.lifetime.len();
        if removed > 0 || self.seen.is_none() {
            self.rebuild_seen();
            let pairs: BTreeSet<(&str, &str)> = self
                .lifetime
                .iter()
                .map(|(k, _)| (k.provider.as_str(), k.model.as_str()))
                .collect();
            self.latency
                .retain(|(pair, _)| pairs.contains(&(pair.0.as_str(), pair.1.as_str())));
        }
        removed
    }

    /// Renames every provider through `canonical` and merges the series (and latency) that
    /// end up with one name, leaving the lists sorted: a ledger saved before provider names
    /// were canonical carries on under the names ingest now records.
    pub fn canonicalize_providers(&mut self, canonical: impl Fn(&str) -> String) {
        for list in [&mut self.lifetime, &mut self.month_to_date] {
            let mut merged: Vec<(SpendKey, Totals)> = Vec::with_capacity(list.len());
            for (mut key, totals) in list.drain(..) {
                if key.provider != OTHER {
                    key.provider = canonical(&key.provider);
                }
                match merged.binary_search_by(|(k, _)| k.cmp(&key)) {
                    Ok(index) => merged[index].1.merge(&totals),
                    Err(index) => merged.insert(index, (key, totals)),
                }
            }
            *list = merged;
        }
        let mut latency: Vec<((String, String), LatencyHistogram)> = Vec::new();
        for ((provider, model), (buckets, sum, count)) in self.latency.drain(..) {
            let pair = (canonical(&provider), model);
            match latency.iter_mut().find(|(k, _)| *k == pair) {
                Some((_, (into, into_sum, into_count))) => {
                    for (a, b) in into.iter_mut().zip(&buckets) {
                        *a += b;
                    }
                    *into_sum += sum;
                    *into_count += count;
                }
                None => latency.push((pair, (buckets, sum, count))),
            }
        }
        self.latency = latency;
        self.seen = None;
    }

    fn rebuild_seen(&mut self) {
        let mut seen = Seen::default();
        for (key, _) in &self.lifetime {
            seen.add(key);
        }
        self.seen = Some(seen);
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

    /// Replaces providers, provider/model pairs and label values past their caps with "other".
    fn fold(&mut self, event: &mut UsageEvent, caps: Caps) {
        if self.seen.is_none() {
            self.rebuild_seen();
        }
        let Some(seen) = self.seen.as_ref() else {
            return;
        };
        for (label, value) in event.labels.iter_mut() {
            let values = seen.labels.get(label);
            let known = values.is_some_and(|v| v.contains(value.as_str()));
            if !known && values.map_or(0, BTreeSet::len) >= caps.max_label_values {
                *self.folded.entry(label.clone()).or_default() += 1.0;
                *value = OTHER.to_string();
            }
        }
        if !seen.providers.contains(&event.provider) && seen.providers.len() >= caps.max_providers {
            *self.folded.entry("provider".to_string()).or_default() += 1.0;
            event.provider = OTHER.to_string();
            event.model = OTHER.to_string();
            return;
        }
        let pair = (event.provider.clone(), event.model.clone());
        if !seen.models.contains(&pair) && seen.models.len() >= caps.max_models {
            *self.folded.entry("model".to_string()).or_default() += 1.0;
            event.model = OTHER.to_string();
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

    const DAY_MS: i64 = 86_400_000;

    const CAPS: Caps = Caps {
        max_label_values: 2,
        max_models: 10,
        max_providers: 3,
        max_series: 1_000,
        forget_after_ms: 7 * DAY_MS,
    };

    fn event(feature: &str, input: f64) -> UsageEvent {
        UsageEvent {
            provider: "gcp.gemini".into(),
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

    fn named(provider: &str, model: &str) -> UsageEvent {
        UsageEvent {
            provider: provider.into(),
            model: model.into(),
            ..event("a", 1.0)
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
        ledger.roll_to(date(10, 31));
        ledger.record(event("chat", 100.0), 1, date(10, 31), Some(1.0), CAPS);
        ledger.roll_to(date(11, 1));
        ledger.record(event("chat", 100.0), 2, date(11, 1), Some(2.0), CAPS);
        assert_eq!(ledger.month, "2026-11");
        assert_eq!(ledger.month_total().cost_dollars, 2.0);
        assert_eq!(ledger.lifetime[0].1.cost_dollars, 3.0);
        // A late event of October counts in lifetime only.
        ledger.record(event("chat", 100.0), 3, date(10, 30), Some(4.0), CAPS);
        assert_eq!(ledger.month_total().cost_dollars, 2.0);
        assert_eq!(ledger.lifetime[0].1.cost_dollars, 7.0);
        assert_eq!(ledger.days.get(&1).map(|d| d.cost_dollars), Some(2.0));
    }

    #[test]
    fn an_event_dated_in_the_next_month_does_not_roll_the_ledger() {
        let mut ledger = Ledger::default();
        ledger.roll_to(date(11, 30));
        ledger.record(event("chat", 100.0), 1, date(11, 30), Some(1.0), CAPS);
        ledger.record(event("chat", 100.0), 2, date(12, 1), Some(2.0), CAPS);
        assert_eq!(ledger.month, "2026-11");
        assert_eq!(ledger.month_total().cost_dollars, 1.0);
        ledger.record(event("chat", 100.0), 3, date(11, 30), Some(4.0), CAPS);
        assert_eq!(ledger.month_total().cost_dollars, 5.0);
    }

    #[test]
    fn label_values_past_the_cap_fold_into_other_and_are_counted() {
        let mut ledger = Ledger::default();
        ledger.roll_to(date(11, 2));
        for feature in ["a", "b", "c", "d", "a"] {
            ledger.record(event(feature, 1.0), 1, date(11, 2), None, CAPS);
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

    #[test]
    fn providers_past_the_cap_fold_into_other() {
        let mut ledger = Ledger::default();
        ledger.roll_to(date(11, 2));
        for n in 0..100 {
            let junk = format!("junk-{n}");
            ledger.record(named(&junk, "m"), 1, date(11, 2), None, CAPS);
        }
        assert_eq!(ledger.lifetime.len(), CAPS.max_providers + 1);
        assert_eq!(ledger.folded.get("provider"), Some(&97.0));
        assert!(
            ledger
                .lifetime
                .iter()
                .any(|(k, t)| k.provider == OTHER && k.model == OTHER && t.requests == 97.0)
        );
    }

    #[test]
    fn names_unseen_for_a_while_free_their_place_under_the_caps() {
        let caps = Caps {
            max_models: 200,
            max_providers: 20,
            ..CAPS
        };
        let mut ledger = Ledger::default();
        ledger.roll_to(date(11, 2));
        for n in 0..200 {
            let model = format!("old-{n}");
            ledger.record(named("openai", &model), 1, date(11, 2), None, caps);
        }
        ledger.record(named("openai", "gpt-5"), DAY_MS, date(11, 3), None, caps);
        assert!(ledger.lifetime.iter().all(|(k, _)| k.model != "gpt-5"));
        // A week later the old names are gone and the new model has its own series.
        assert_eq!(ledger.forget_unseen(8 * DAY_MS, caps), 200);
        ledger.record(
            named("openai", "gpt-5"),
            8 * DAY_MS,
            date(11, 10),
            None,
            caps,
        );
        assert!(ledger.lifetime.iter().any(|(k, _)| k.model == "gpt-5"));
        // Month-to-date figures stay whole.
        assert_eq!(ledger.month_total().requests, 202.0);
    }

    #[test]
    fn series_past_their_budget_fold_into_one_other_series() {
        let caps = Caps {
            max_label_values: 1_000,
            max_series: 10,
            ..CAPS
        };
        let mut ledger = Ledger::default();
        ledger.roll_to(date(11, 2));
        for n in 0..100 {
            ledger.record(event(&format!("f{n}"), 1.0), 1, date(11, 2), None, caps);
        }
        assert_eq!(ledger.lifetime.len(), 11);
        assert_eq!(ledger.folded.get("series"), Some(&90.0));
        assert_eq!(ledger.month_total().requests, 100.0);
    }

    #[test]
    fn latency_aggregates_add_without_expanding() {
        let mut ledger = Ledger::default();
        ledger.roll_to(date(11, 2));
        let mut aggregate = Latency::single(0.3);
        for bucket in &mut aggregate.buckets {
            *bucket *= 1e9;
        }
        aggregate.sum = 0.3e9;
        aggregate.count = 1e9;
        let huge = UsageEvent {
            latency: Some(aggregate),
            requests: 1e9,
            ..event("a", 0.0)
        };
        ledger.record(huge, 1, date(11, 2), None, CAPS);
        let (buckets, sum, count) = &ledger.latency[0].1;
        assert_eq!((buckets[1], buckets[2], *count), (0.0, 1e9, 1e9));
        assert!((sum - 0.3e9).abs() < 1.0);
    }
}
