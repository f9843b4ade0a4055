//! AI token spend: usage in (OTLP GenAI metrics, a JSON endpoint), priced, held against monthly
//! budgets in a configured time zone, forecast to the month's end, saved in the state directory.
//!
//! `SpendTracker` owns the ledger behind a mutex; the HTTP handlers feed it, and
//! `SpendCollector` turns it into a batch for the history on its interval (so spend series have
//! history, staleness and rules like every other series) and saves it.

pub mod event;
pub mod forecast;
pub mod ledger;
pub mod otlp;
pub mod pricing;
pub mod render;
pub mod sql_source;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tracing::warn;

use crate::collector::{CollectError, Collector};
use crate::config::AiConfig;
use crate::model::{Batch, MetricKind};
use ledger::{Budgets, LATENCY_BUCKETS, Ledger, LocalDate, UsageEvent};
use pricing::PriceTable;

/// File name of the saved ledger in the state directory.
pub const STATE_FILE: &str = "spend.json";

/// Shared handle to the spend state.
#[derive(Clone)]
pub struct SpendTracker {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    config: AiConfig,
    ledger: Ledger,
    state_path: PathBuf,
    /// Changed since the last save by something other than an ingest (which saves at once).
    dirty: bool,
    /// Why the last save failed, while saves keep failing.
    save_error: Option<String>,
    /// Set when the file on disk could not be read nor moved aside: it is never written over,
    /// and ingest is refused until a person fixes or removes it.
    blocked: Option<String>,
    warned_unpriced: BTreeSet<(String, String)>,
}

/// Why usage was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The ledger could not be saved durably, so nothing of the request was kept (the client
    /// should retry).
    #[error("cannot save the spend state ({0}); nothing of this request was recorded, retry later")]
    NotDurable(String),
}

/// What an ingest request did.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct IngestSummary {
    pub accepted: usize,
    pub unpriced: usize,
}

/// Month-to-date figures and the forecast, for `prismwatch spend` and `/api/v1/ai/spend`.
#[derive(Clone, Debug, Serialize)]
pub struct SpendReport {
    pub month: String,
    pub time_zone: String,
    pub price_snapshot: String,
    pub cost_dollars: f64,
    pub tokens: f64,
    pub unpriced_tokens: f64,
    pub budget_dollars: Option<f64>,
    pub budget_tokens: Option<f64>,
    /// The per-label budgets with this month's spend of each.
    pub label_budgets: Vec<LabelBudgetLine>,
    pub daily_rate_dollars: f64,
    pub forecast_dollars: f64,
    pub forecast_interval: Option<(f64, f64)>,
    pub exhaustion_timestamp: Option<f64>,
    pub by_model: Vec<ReportLine>,
    pub days: Vec<(u8, f64)>,
    pub inputs: ForecastInputs,
}

/// What the forecast was computed from.
#[derive(Clone, Debug, Serialize)]
pub struct ForecastInputs {
    pub completed_days: Vec<f64>,
    pub spent: f64,
    pub today_elapsed: f64,
    pub remaining_days: f64,
}

/// One `[[ai.budgets]]` entry and the month-to-date spend it holds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LabelBudgetLine {
    pub label: String,
    pub value: String,
    pub budget_dollars: f64,
    pub spent_dollars: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportLine {
    pub provider: String,
    pub model: String,
    pub labels: Vec<(String, String)>,
    pub input_tokens: f64,
    pub output_tokens: f64,
    pub cached_tokens: f64,
    pub cost_dollars: f64,
    pub unpriced_tokens: f64,
}

impl SpendTracker {
    /// Loads the saved ledger from `state_dir` for the daemon. A file that cannot be read is
    /// moved aside under a new name (never over an earlier one) and a fresh ledger starts, with
    /// an error in the log that says where it went; one that cannot be moved aside is left
    /// alone, and ingest is refused (503) rather than write over it.
    pub fn open(config: AiConfig, state_dir: &Path) -> SpendTracker {
        use crate::state_file::Loaded;
        let state_path = state_dir.join(STATE_FILE);
        let mut blocked = None;
        let ledger = match crate::state_file::load_json::<Ledger>(&state_path) {
            Loaded::Missing => Ledger::default(),
            Loaded::Read(ledger) => sorted(ledger),
            Loaded::SetAside { error, kept_as } => {
                tracing::error!(%error, path = %state_path.display(), kept_as = %kept_as.display(), "The saved spend state is unreadable; it was moved aside and a new ledger starts. Restore it from the kept file if it can be repaired.");
                Ledger::default()
            }
            Loaded::Stuck { error } => {
                tracing::error!(%error, path = %state_path.display(), "The saved spend state is unreadable and cannot be moved aside; it is left as it is and AI usage is refused until it is repaired or removed.");
                blocked = Some(format!(
                    "{} is unreadable and cannot be moved aside: {error}",
                    state_path.display()
                ));
                Ledger::default()
            }
        };
        let tracker = SpendTracker::with_ledger(config, state_path, ledger, blocked);
        tracker.record_budgets();
        tracker
    }

    /// Reads the saved ledger without changing anything on disk (for `prismwatch spend`). With
    /// `saved_budgets` (no configuration was given), the budgets are those the daemon recorded
    /// in the state, so the report shows what the daemon enforces.
    pub fn read(
        mut config: AiConfig,
        state_dir: &Path,
        saved_budgets: bool,
    ) -> Result<SpendTracker, String> {
        let state_path = state_dir.join(STATE_FILE);
        let bytes = std::fs::read(&state_path)
            .map_err(|e| format!("cannot read {}: {e}", state_path.display()))?;
        let ledger = serde_json::from_slice::<Ledger>(&bytes)
            .map_err(|e| format!("{} is unreadable: {e}", state_path.display()))?;
        if let Some(budgets) = ledger.budgets.as_ref().filter(|_| saved_budgets) {
            config.monthly_budget_dollars = budgets.monthly_dollars;
            config.monthly_budget_tokens = budgets.monthly_tokens;
            config.budgets = budgets.by_label.clone();
        }
        let blocked = Some("read-only view".to_string());
        Ok(SpendTracker::with_ledger(
            config,
            state_path,
            sorted(ledger),
            blocked,
        ))
    }

    fn with_ledger(
        config: AiConfig,
        state_path: PathBuf,
        ledger: Ledger,
        blocked: Option<String>,
    ) -> SpendTracker {
        SpendTracker {
            inner: Arc::new(Mutex::new(Inner {
                config,
                ledger,
                state_path,
                dirty: false,
                save_error: None,
                blocked,
                warned_unpriced: BTreeSet::new(),
            })),
        }
    }

    /// Applies a reloaded `[ai]` section; the ledger carries on.
    pub fn reconfigure(&self, config: AiConfig) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.config = config;
        }
        self.record_budgets();
    }

    /// Puts the configured budgets in the ledger, to be saved with it on the next save, so
    /// `prismwatch spend` shows the budgets in force without the daemon's configuration.
    fn record_budgets(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            let budgets = Some(Budgets {
                monthly_dollars: inner.config.monthly_budget_dollars,
                monthly_tokens: inner.config.monthly_budget_tokens,
                by_label: inner.config.budgets.clone(),
            });
            if inner.ledger.budgets != budgets {
                inner.ledger.budgets = budgets;
                inner.dirty = true;
            }
        }
    }

    /// Reads the current `[ai]` settings without copying them (the price table is large).
    pub fn with_config<R>(&self, read: impl FnOnce(&AiConfig) -> R) -> Option<R> {
        self.inner.lock().ok().map(|inner| read(&inner.config))
    }

    /// Why the spend state cannot be saved now, if it cannot (for `/readyz`).
    pub fn save_problem(&self) -> Option<String> {
        let inner = self.inner.lock().ok()?;
        inner.blocked.clone().or_else(|| inner.save_error.clone())
    }

    /// Records events stamped with their time (ms since the epoch) and saves the ledger durably
    /// before returning; when the save fails nothing of the request is kept.
    pub fn ingest(
        &self,
        events: Vec<(UsageEvent, i64)>,
        now_ms: i64,
    ) -> Result<IngestSummary, IngestError> {
        self.transaction(now_ms, |inner| Ok(inner.record(events, now_ms)))
    }

    /// Records the GenAI metrics of an OTLP request and saves the ledger durably; a request
    /// with a bad point records nothing.
    pub fn ingest_otlp(
        &self,
        request: &opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest,
        now_ms: i64,
    ) -> Result<IngestSummary, IngestError> {
        self.transaction(now_ms, |inner| {
            let allowed = inner.config.allowed_labels.clone();
            let extracted =
                otlp::extract(request, &mut inner.ledger.otlp_streams, &allowed, now_ms)
                    .map_err(IngestError::Invalid)?;
            if extracted.refused_streams > 0 {
                metrics::counter!("prismwatch_ai_otlp_streams_refused_total")
                    .increment(extracted.refused_streams as u64);
                warn!(refused = extracted.refused_streams, live = inner.ledger.otlp_streams.len(), "New OTLP cumulative streams were not counted: the stream table is full of live streams.");
            }
            let events = extracted.events.into_iter().map(|e| (e, now_ms)).collect();
            Ok(inner.record(events, now_ms))
        })
    }

    /// Runs `change` on the ledger and saves it; if the change or the save fails, the ledger is
    /// as it was before.
    fn transaction(
        &self,
        now_ms: i64,
        change: impl FnOnce(&mut Inner) -> Result<IngestSummary, IngestError>,
    ) -> Result<IngestSummary, IngestError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| IngestError::NotDurable("the spend state is poisoned".into()))?;
        if let Some(reason) = &inner.blocked {
            return Err(IngestError::NotDurable(reason.clone()));
        }
        let before = inner.ledger.clone();
        let today = inner.local_date(now_ms);
        inner.ledger.roll_to(today);
        let outcome = change(&mut inner).and_then(|summary| {
            if inner.ledger == before {
                return Ok(summary);
            }
            inner.save().map(|()| summary)
        });
        if outcome.is_err() {
            inner.ledger = before;
        }
        outcome
    }

    /// The last `at` (seconds since the epoch) read by a SQL source; the start of the current
    /// month when it never ran, so a new source counts this month's rows.
    pub fn watermark(&self, source: &str) -> f64 {
        let Ok(inner) = self.inner.lock() else {
            return 0.0;
        };
        if let Some(mark) = inner.ledger.sql_watermarks.get(source) {
            return *mark;
        }
        let now = jiff::Zoned::now().with_time_zone(inner.config.time_zone.clone());
        now.first_of_month()
            .ok()
            .and_then(|d| d.start_of_day().ok())
            .map_or(0.0, |start| {
                start.timestamp().as_millisecond() as f64 / 1000.0
            })
    }

    /// Records a SQL source's rows and moves its watermark in the same durable save, so a
    /// crash cannot count them twice or lose them.
    pub fn ingest_with_watermark(
        &self,
        events: Vec<(UsageEvent, i64)>,
        source: &str,
        watermark: f64,
        now_ms: i64,
    ) -> Result<IngestSummary, IngestError> {
        self.transaction(now_ms, |inner| {
            let summary = inner.record(events, now_ms);
            inner
                .ledger
                .sql_watermarks
                .insert(source.to_string(), watermark);
            Ok(summary)
        })
    }

    /// Saves the ledger if something changed it outside an ingest, or retries a failed save
    /// (so `/readyz` recovers once the state directory is writable again).
    pub fn save(&self) {
        if let Ok(mut inner) = self.inner.lock()
            && inner.blocked.is_none()
            && (inner.dirty || inner.save_error.is_some())
        {
            let _ = inner.save();
        }
    }

    pub fn report(&self, now_ms: i64) -> Option<SpendReport> {
        let mut inner = self.inner.lock().ok()?;
        let today = inner.local_date(now_ms);
        inner.ledger.roll_to(today);
        Some(inner.report(now_ms))
    }

    /// The spend series for the history.
    pub fn batch(&self, now_ms: i64) -> Batch {
        let Ok(mut inner) = self.inner.lock() else {
            return Batch::new();
        };
        let today = inner.local_date(now_ms);
        inner.ledger.roll_to(today);
        let caps = inner.config.caps;
        if inner.ledger.forget_unseen(now_ms, caps) > 0 {
            inner.dirty = true;
        }
        inner
            .ledger
            .otlp_streams
            .forget_before(now_ms.saturating_sub(caps.forget_after_ms));
        inner.batch(now_ms)
    }
}

/// Lookups binary-search these lists; a hand-edited file may be unsorted. Providers saved
/// under an old name (`google`) fold into their canonical one (`gcp.gemini`), which sorts too.
fn sorted(mut ledger: Ledger) -> Ledger {
    ledger.canonicalize_providers(pricing::canonical_provider);
    ledger
}

impl Inner {
    fn local_date(&self, ms: i64) -> LocalDate {
        let zoned = jiff::Timestamp::from_millisecond(ms)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(self.config.time_zone.clone());
        LocalDate {
            year: zoned.year(),
            month: zoned.month(),
            day: zoned.day(),
        }
    }

    /// Records events; one stamped later than `now_ms` (a client clock ahead, up to the hour
    /// the endpoints allow) counts as of now, so only the clock moves the month.
    fn record(&mut self, events: Vec<(UsageEvent, i64)>, now_ms: i64) -> IngestSummary {
        let mut summary = IngestSummary::default();
        for (mut event, ms) in events {
            // Every ingest path passes here, so one vendor has one name whatever the client sent.
            event.provider = pricing::canonical_provider(&event.provider);
            let ms = ms.min(now_ms);
            let date = self.local_date(ms);
            let day = format!("{:04}-{:02}-{:02}", date.year, date.month, date.day);
            let cost = self
                .config
                .prices
                .lookup(&event.provider, &event.model, &day)
                .map(|price| PriceTable::cost(price, event.tokens));
            if cost.is_none() && event.tokens.input + event.tokens.output > 0.0 {
                summary.unpriced += 1;
                let pair = (event.provider.clone(), event.model.clone());
                if self.warned_unpriced.len() < 1_000 && self.warned_unpriced.insert(pair) {
                    warn!(provider = ?event.provider, model = ?event.model, "No price for this model; its tokens are counted in prismwatch_ai_unpriced_tokens_total, not priced at zero. Add it under [[ai.prices]].");
                }
            }
            let caps = self.config.caps;
            self.ledger.record(event, ms, date, cost, caps);
            summary.accepted += 1;
        }
        summary
    }

    /// Writes the ledger durably (temporary file, fsync, rename, fsync of the directory).
    fn save(&mut self) -> Result<(), IngestError> {
        let result = serde_json::to_vec(&self.ledger)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::state_file::write_durable(&self.state_path, &bytes));
        match result {
            Ok(()) => {
                if self.save_error.take().is_some() {
                    tracing::info!(path = %self.state_path.display(), "The spend state is saved again.");
                }
                self.dirty = false;
                Ok(())
            }
            Err(error) => {
                metrics::counter!("prismwatch_ai_state_save_failures_total").increment(1);
                if self.save_error.is_none() {
                    tracing::error!(%error, path = %self.state_path.display(), "Cannot save the spend state; AI usage is refused (503) until it can be saved.");
                }
                let reason = format!("{}: {error}", self.state_path.display());
                self.save_error = Some(reason.clone());
                Err(IngestError::NotDurable(reason))
            }
        }
    }

    fn forecast(&self, now_ms: i64) -> forecast::Forecast {
        let inputs = self.forecast_inputs(now_ms);
        forecast::forecast(
            &inputs.completed_days,
            inputs.spent,
            inputs.today_elapsed,
            inputs.remaining_days,
            self.config.monthly_budget_dollars,
            0.95,
        )
    }

    /// The forecast's inputs, so a reader (or a test) can recompute it.
    fn forecast_inputs(&self, now_ms: i64) -> ForecastInputs {
        let zoned = jiff::Timestamp::from_millisecond(now_ms)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(self.config.time_zone.clone());
        let day = zoned.day();
        let day_fraction = (f64::from(zoned.hour()) * 3600.0
            + f64::from(zoned.minute()) * 60.0
            + f64::from(zoned.second()))
            / 86_400.0;
        let first = self.ledger.days.keys().next().map_or(day, |d| *d as i8);
        ForecastInputs {
            completed_days: (first..day)
                .map(|d| {
                    self.ledger
                        .days
                        .get(&(d as u8))
                        .map_or(0.0, |x| x.cost_dollars)
                })
                .collect(),
            spent: self.ledger.month_total().cost_dollars,
            today_elapsed: day_fraction,
            remaining_days: f64::from(zoned.days_in_month()) - f64::from(day - 1) - day_fraction,
        }
    }

    fn report(&self, now_ms: i64) -> SpendReport {
        let forecast = self.forecast(now_ms);
        let total = self.ledger.month_total();
        SpendReport {
            month: self.ledger.month.clone(),
            time_zone: self.config.time_zone_name.clone(),
            price_snapshot: self.config.prices.snapshot_date.clone(),
            cost_dollars: total.cost_dollars,
            tokens: total.tokens(),
            unpriced_tokens: total.unpriced_tokens,
            budget_dollars: self.config.monthly_budget_dollars,
            budget_tokens: self.config.monthly_budget_tokens,
            label_budgets: self
                .config
                .budgets
                .iter()
                .map(|b| LabelBudgetLine {
                    label: b.label.clone(),
                    value: b.value.clone(),
                    budget_dollars: b.dollars,
                    spent_dollars: self.ledger.month_cost_where(&b.label, &b.value),
                })
                .collect(),
            daily_rate_dollars: forecast.daily_rate,
            forecast_dollars: forecast.month_end,
            forecast_interval: forecast.interval,
            exhaustion_timestamp: forecast
                .days_to_exhaustion
                .map(|days| now_ms as f64 / 1000.0 + days * 86_400.0),
            by_model: self
                .ledger
                .month_to_date
                .iter()
                .map(|(key, t)| ReportLine {
                    provider: key.provider.clone(),
                    model: key.model.clone(),
                    labels: key.labels.clone(),
                    input_tokens: t.input_tokens,
                    output_tokens: t.output_tokens,
                    cached_tokens: t.cached_tokens,
                    cost_dollars: t.cost_dollars,
                    unpriced_tokens: t.unpriced_tokens,
                })
                .collect(),
            days: self
                .ledger
                .days
                .iter()
                .map(|(d, day)| (*d, day.cost_dollars))
                .collect(),
            inputs: self.forecast_inputs(now_ms),
        }
    }

    fn batch(&self, now_ms: i64) -> Batch {
        let mut batch = Batch::new();
        let families: [(&str, MetricKind, &str); 5] = [
            (
                "prismwatch_ai_tokens_total",
                MetricKind::Counter,
                "Tokens used, by provider, model and type: input (uncached input), cached (cached input) and output; the types are disjoint, so their sum is the total tokens `prismwatch spend` prints.",
            ),
            (
                "prismwatch_ai_cost_dollars_total",
                MetricKind::Counter,
                "Dollars spent, by provider and model, at the configured prices.",
            ),
            (
                "prismwatch_ai_requests_total",
                MetricKind::Counter,
                "Model requests, by provider and model.",
            ),
            (
                "prismwatch_ai_unpriced_tokens_total",
                MetricKind::Counter,
                "Tokens of models without a price (not counted in the cost).",
            ),
            (
                "prismwatch_ai_month_to_date_cost_dollars",
                MetricKind::Gauge,
                "Dollars spent this month, by provider and model.",
            ),
        ];
        for (name, kind, help) in families {
            batch.family(name, kind, help);
        }
        for (key, totals) in &self.ledger.lifetime {
            let mut labels: Vec<(&str, &str)> =
                vec![("provider", &key.provider), ("model", &key.model)];
            labels.extend(key.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            for (kind, value) in [
                // Providers report cached tokens as part of the input; exporting the uncached
                // remainder keeps the types disjoint so that `sum()` over them is the total.
                (
                    "input",
                    (totals.input_tokens - totals.cached_tokens).max(0.0),
                ),
                ("output", totals.output_tokens),
                ("cached", totals.cached_tokens),
            ] {
                let mut with_type = labels.clone();
                with_type.push(("type", kind));
                batch.push("prismwatch_ai_tokens_total", &with_type, value);
            }
            batch.push(
                "prismwatch_ai_cost_dollars_total",
                &labels,
                totals.cost_dollars,
            );
            batch.push("prismwatch_ai_requests_total", &labels, totals.requests);
            batch.push(
                "prismwatch_ai_unpriced_tokens_total",
                &labels,
                totals.unpriced_tokens,
            );
        }
        for (key, totals) in &self.ledger.month_to_date {
            let mut labels: Vec<(&str, &str)> =
                vec![("provider", &key.provider), ("model", &key.model)];
            labels.extend(key.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            batch.push(
                "prismwatch_ai_month_to_date_cost_dollars",
                &labels,
                totals.cost_dollars,
            );
        }
        batch.family(
            "prismwatch_ai_request_duration_seconds",
            MetricKind::Histogram,
            "Model request latency.",
        );
        for ((provider, model), (buckets, sum, count)) in &self.ledger.latency {
            let base = [("provider", provider.as_str()), ("model", model.as_str())];
            for (bound, value) in LATENCY_BUCKETS.iter().zip(buckets) {
                let le = bound.to_string();
                batch.push(
                    "prismwatch_ai_request_duration_seconds_bucket",
                    &[base[0], base[1], ("le", &le)],
                    *value,
                );
            }
            batch.push(
                "prismwatch_ai_request_duration_seconds_bucket",
                &[base[0], base[1], ("le", "+Inf")],
                *count,
            );
            batch.push("prismwatch_ai_request_duration_seconds_sum", &base, *sum);
            batch.push(
                "prismwatch_ai_request_duration_seconds_count",
                &base,
                *count,
            );
        }
        let ledger = &self.ledger;
        batch.single(
            "prismwatch_ai_response_cache_lookups_total",
            MetricKind::Counter,
            "Lookups in the application's response cache reported with usage events.",
            ledger.cache_lookups,
        );
        batch.single(
            "prismwatch_ai_response_cache_hits_total",
            MetricKind::Counter,
            "Response cache hits reported with usage events.",
            ledger.cache_hits,
        );
        if ledger.cache_lookups > 0.0 {
            batch.single(
                "prismwatch_ai_response_cache_hit_ratio",
                MetricKind::Gauge,
                "Response cache hits over lookups since the state was created.",
                ledger.cache_hits / ledger.cache_lookups,
            );
        }
        batch.family(
            "prismwatch_ai_label_values_folded_total",
            MetricKind::Counter,
            "Label values (or models) folded into \"other\" by the cardinality caps.",
        );
        for (label, count) in &ledger.folded {
            batch.push(
                "prismwatch_ai_label_values_folded_total",
                &[("label", label)],
                *count,
            );
        }

        // Budgets and forecast.
        let total = ledger.month_total();
        batch.single(
            "prismwatch_ai_month_to_date_dollars",
            MetricKind::Gauge,
            "Dollars spent this month in the configured time zone.",
            total.cost_dollars,
        );
        batch.single(
            "prismwatch_ai_month_to_date_tokens",
            MetricKind::Gauge,
            "Tokens (input + output) used this month.",
            total.tokens(),
        );
        batch.family(
            "prismwatch_ai_budget_dollars",
            MetricKind::Gauge,
            "Monthly budget in dollars, by budget (total or label=value).",
        );
        batch.family(
            "prismwatch_ai_budget_used_ratio",
            MetricKind::Gauge,
            "Month-to-date spend over the monthly budget, by budget.",
        );
        if let Some(budget) = self.config.monthly_budget_dollars.filter(|b| *b > 0.0) {
            batch.push(
                "prismwatch_ai_budget_dollars",
                &[("budget", "total")],
                budget,
            );
            batch.push(
                "prismwatch_ai_budget_used_ratio",
                &[("budget", "total")],
                total.cost_dollars / budget,
            );
        }
        if let Some(budget) = self.config.monthly_budget_tokens.filter(|b| *b > 0.0) {
            batch.single(
                "prismwatch_ai_budget_tokens",
                MetricKind::Gauge,
                "Monthly budget in tokens.",
                budget,
            );
            batch.push(
                "prismwatch_ai_budget_used_ratio",
                &[("budget", "tokens")],
                total.tokens() / budget,
            );
        }
        for budget in &self.config.budgets {
            let name = format!("{}={}", budget.label, budget.value);
            batch.push(
                "prismwatch_ai_budget_dollars",
                &[("budget", &name)],
                budget.dollars,
            );
            if budget.dollars > 0.0 {
                batch.push(
                    "prismwatch_ai_budget_used_ratio",
                    &[("budget", &name)],
                    ledger.month_cost_where(&budget.label, &budget.value) / budget.dollars,
                );
            }
        }
        let forecast = self.forecast(now_ms);
        batch.single(
            "prismwatch_ai_forecast_sample_size",
            MetricKind::Gauge,
            "Completed days of this month the forecast rests on; below 2 there is no interval (bound=\"lower\"/\"upper\") and the estimate is rough.",
            self.forecast_inputs(now_ms).completed_days.len() as f64,
        );
        batch.single(
            "prismwatch_ai_burn_rate_dollars_per_day",
            MetricKind::Gauge,
            "Mean daily spend over this month's completed days.",
            forecast.daily_rate,
        );
        batch.family(
            "prismwatch_ai_forecast_month_end_dollars",
            MetricKind::Gauge,
            "Forecast spend at the end of the month: estimate and 95% prediction interval.",
        );
        batch.push(
            "prismwatch_ai_forecast_month_end_dollars",
            &[("bound", "estimate")],
            forecast.month_end,
        );
        if let Some((low, high)) = forecast.interval {
            batch.push(
                "prismwatch_ai_forecast_month_end_dollars",
                &[("bound", "lower")],
                low,
            );
            batch.push(
                "prismwatch_ai_forecast_month_end_dollars",
                &[("bound", "upper")],
                high,
            );
        }
        if let Some(days) = forecast.days_to_exhaustion {
            batch.single(
                "prismwatch_ai_budget_exhaustion_timestamp_seconds",
                MetricKind::Gauge,
                "When the monthly budget runs out at the current burn rate, in unixtime.",
                now_ms as f64 / 1000.0 + days * 86_400.0,
            );
        }
        batch
    }
}

/// Publishes spend into the history on the `[ai]` interval and saves the ledger.
pub struct SpendCollector {
    tracker: SpendTracker,
}

impl SpendCollector {
    pub fn new(tracker: SpendTracker) -> SpendCollector {
        SpendCollector { tracker }
    }
}

impl Collector for SpendCollector {
    fn name(&self) -> &str {
        "ai"
    }

    async fn collect(&mut self) -> Result<Batch, CollectError> {
        self.tracker.save();
        Ok(self.tracker.batch(crate::collector::now_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker_config() -> AiConfig {
        crate::config::parse(
            "test",
            "[ai]\ntime_zone = \"UTC\"\n",
            &crate::config::Overrides::default(),
        )
        .map(|c| c.ai)
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn tracker(dir: &Path) -> SpendTracker {
        SpendTracker::open(tracker_config(), dir)
    }

    fn event(input: f64) -> UsageEvent {
        UsageEvent {
            provider: "openai".into(),
            model: "gpt-4o".into(),
            tokens: pricing::Tokens {
                input,
                ..pricing::Tokens::default()
            },
            requests: 1.0,
            ..UsageEvent::default()
        }
    }

    fn ms(time: &str) -> i64 {
        time.parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_minute_of_usage_gives_a_rough_forecast_without_an_interval() -> Result<(), IngestError> {
        let dir = tempfile::tempdir().map_err(|e| IngestError::NotDurable(e.to_string()))?;
        let tracker = tracker(dir.path());
        // The first hour of a month: a minute of usage, no completed day.
        let now = ms("2026-12-01T00:31:00Z");
        tracker.ingest(vec![(event(500_000.0), ms("2026-12-01T00:30:00Z"))], now)?;
        let report = tracker
            .report(now)
            .ok_or(IngestError::NotDurable("no report".into()))?;
        assert_eq!(report.forecast_interval, None);
        let text = crate::spend::render::render_text(&report);
        assert!(
            text.contains("(rough: 0 completed day(s) this month, an interval needs 2)"),
            "{text}"
        );
        let batch = tracker.batch(now);
        let series = |name: &str, bound: Option<&str>| {
            batch
                .samples
                .iter()
                .find(|(labels, _)| {
                    labels.metric_name() == name
                        && bound.is_none_or(|b| labels.get("bound") == Some(b))
                })
                .map(|(_, v)| *v)
        };
        assert_eq!(
            series("prismwatch_ai_forecast_sample_size", None),
            Some(0.0)
        );
        assert!(series("prismwatch_ai_forecast_month_end_dollars", Some("estimate")).is_some());
        assert_eq!(
            series("prismwatch_ai_forecast_month_end_dollars", Some("lower")),
            None,
            "the alert's bound must be absent"
        );
        // Three completed days later the interval is there.
        for day in ["01", "02", "03"] {
            tracker.ingest(
                vec![(event(500_000.0), ms(&format!("2026-12-{day}T12:00:00Z")))],
                ms(&format!("2026-12-{day}T12:00:01Z")),
            )?;
        }
        let later = ms("2026-12-04T06:00:00Z");
        let report = tracker
            .report(later)
            .ok_or(IngestError::NotDurable("no report".into()))?;
        assert!(report.forecast_interval.is_some());
        assert!(crate::spend::render::render_text(&report).contains("95% interval"));
        Ok(())
    }

    #[test]
    fn the_month_rolls_with_the_clock_not_with_an_event_ahead_of_it() -> Result<(), IngestError> {
        let dir = tempfile::tempdir().map_err(|e| IngestError::NotDurable(e.to_string()))?;
        let tracker = tracker(dir.path());
        let now = ms("2026-11-30T23:30:00Z");
        tracker.ingest(vec![(event(100.0), ms("2026-11-30T12:00:00Z"))], now)?;
        // Stamped ten minutes into December by a client clock that runs ahead.
        tracker.ingest(vec![(event(10.0), ms("2026-12-01T00:10:00Z"))], now)?;
        tracker.ingest(vec![(event(1.0), ms("2026-11-30T23:31:00Z"))], now + 60_000)?;
        let november = tracker.report(now + 60_000).map(|r| (r.month, r.tokens));
        assert_eq!(november, Some(("2026-11".to_string(), 111.0)));
        // The clock reaches December: a new month from zero.
        let december = tracker
            .report(ms("2026-12-01T00:00:01Z"))
            .map(|r| (r.month, r.tokens));
        assert_eq!(december, Some(("2026-12".to_string(), 0.0)));
        Ok(())
    }

    #[test]
    fn a_provider_alias_is_recorded_and_priced_under_its_canonical_name() -> Result<(), IngestError>
    {
        let dir = tempfile::tempdir().map_err(|e| IngestError::NotDurable(e.to_string()))?;
        let tracker = tracker(dir.path());
        let now = ms("2026-11-20T10:00:00Z");
        let gemini = |provider: &str| UsageEvent {
            provider: provider.into(),
            model: "gemini-2.5-flash".into(),
            ..event(1_000_000.0)
        };
        let summary = tracker.ingest(
            vec![(gemini("google"), now), (gemini(" GCP.Gemini "), now)],
            now,
        )?;
        assert_eq!(summary.unpriced, 0);
        let lines = tracker.report(now).map(|r| r.by_model).unwrap_or_default();
        let providers: Vec<&str> = lines.iter().map(|l| l.provider.as_str()).collect();
        assert_eq!(providers, ["gcp.gemini"]);
        assert!((lines[0].cost_dollars - 0.60).abs() < 1e-9, "{lines:?}");
        Ok(())
    }

    /// Older SDKs send `gen_ai.system` with values such as `az.ai.openai`; OTLP usage lands
    /// under the registry name, priced at OpenAI's list price as Azure OpenAI has none of its own.
    #[test]
    fn otlp_gen_ai_system_values_are_recorded_under_the_registry_name() -> Result<(), IngestError> {
        let dir = tempfile::tempdir().map_err(|e| IngestError::NotDurable(e.to_string()))?;
        let tracker = tracker(dir.path());
        let now = ms("2026-11-20T10:00:00Z");
        let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"gen_ai.client.token.usage","histogram":{"aggregationTemporality":1,
            "dataPoints":[{"count":"1","sum":1000000,"attributes":[{"key":"gen_ai.token.type","value":{"stringValue":"input"}},
            {"key":"gen_ai.system","value":{"stringValue":"az.ai.openai"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o-2024-08-06"}}]}]}}]}]}]}"#;
        let request = otlp::decode(body.as_bytes(), true).map_err(IngestError::Invalid)?;
        let summary = tracker.ingest_otlp(&request, now)?;
        assert_eq!(summary.unpriced, 0);
        let lines = tracker.report(now).map(|r| r.by_model).unwrap_or_default();
        let providers: Vec<&str> = lines.iter().map(|l| l.provider.as_str()).collect();
        assert_eq!(providers, ["azure.ai.openai"]);
        assert!((lines[0].cost_dollars - 2.50).abs() < 1e-9, "{lines:?}");
        Ok(())
    }

    #[test]
    fn a_ledger_saved_with_old_provider_names_folds_into_the_canonical_name_on_load()
    -> Result<(), IngestError> {
        let dir = tempfile::tempdir().map_err(|e| IngestError::NotDurable(e.to_string()))?;
        let now = ms("2026-11-20T10:00:00Z");
        let old = |provider: &str| UsageEvent {
            provider: provider.into(),
            ..event(100.0)
        };
        let mut ledger = Ledger::default();
        let date = LocalDate {
            year: 2026,
            month: 11,
            day: 20,
        };
        ledger.roll_to(date);
        let caps = tracker(dir.path())
            .with_config(|c| c.caps)
            .ok_or_else(|| IngestError::NotDurable("no config".into()))?;
        for provider in ["google", "gcp.gemini", "gemini"] {
            ledger.record(old(provider), now, date, Some(1.0), caps);
        }
        let bytes =
            serde_json::to_vec(&ledger).map_err(|e| IngestError::NotDurable(e.to_string()))?;
        std::fs::write(dir.path().join(STATE_FILE), bytes)
            .map_err(|e| IngestError::NotDurable(e.to_string()))?;
        for loaded in [
            tracker(dir.path()),
            SpendTracker::read(tracker_config(), dir.path(), false)
                .map_err(IngestError::NotDurable)?,
        ] {
            let report = loaded
                .report(now)
                .ok_or_else(|| IngestError::NotDurable("no report".into()))?;
            let providers: Vec<&str> = report
                .by_model
                .iter()
                .map(|l| l.provider.as_str())
                .collect();
            assert_eq!(providers, ["gcp.gemini"]);
            assert_eq!(report.by_model[0].input_tokens, 300.0);
            assert_eq!(report.cost_dollars, 3.0);
        }
        Ok(())
    }

    #[test]
    fn a_failed_save_keeps_nothing_of_the_request() -> Result<(), IngestError> {
        let dir = tempfile::tempdir().map_err(|e| IngestError::NotDurable(e.to_string()))?;
        let state = dir.path().join("state");
        std::fs::create_dir(&state).map_err(|e| IngestError::NotDurable(e.to_string()))?;
        let tracker = tracker(&state);
        let now = ms("2026-11-20T10:00:00Z");
        tracker.ingest(vec![(event(100.0), now)], now)?;
        std::fs::remove_dir_all(&state).map_err(|e| IngestError::NotDurable(e.to_string()))?;
        std::fs::write(&state, "a file").map_err(|e| IngestError::NotDurable(e.to_string()))?;
        let refused = tracker.ingest(vec![(event(1_000.0), now)], now);
        assert!(matches!(refused, Err(IngestError::NotDurable(_))));
        assert!(tracker.save_problem().is_some());
        assert_eq!(tracker.report(now).map(|r| r.tokens), Some(100.0));
        Ok(())
    }
}
