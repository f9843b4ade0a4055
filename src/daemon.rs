//! The daemon's runbook: start the components, wait for signals, reload, drain.
//!
//! Components: one task per collector (restarted when their schedule changes), the HTTP server
//! (rebound when its address or TLS files change), a maintenance task (history retention and
//! size gauges), the telemetry upkeep, and the systemd watchdog. All are registered with one
//! `TaskTracker` so shutdown waits for each of them, bounded by a grace period.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use crate::collector::host::HostCollector;
use crate::collector::pgbouncer::PgbouncerCollector;
use crate::collector::postgres::PostgresCollector;
use crate::collector::process::ProcessCollector;
use crate::collector::redis::RedisCollector;
use crate::collector::{CollectError, Collector, Readiness, StatusBoard, now_ms, run_collector};
use crate::config::{self, CollectorSchedule, Config, Overrides, WebAuth};
use crate::history::{History, HistoryLimits};
use crate::http::{self, AppState};
use crate::notify::actor::{NotifySettings, outgoing_labels};
use crate::rules::manager::RuleSet;
use crate::spend::sql_source::SqlUsageCollector;
use crate::spend::{SpendCollector, SpendTracker};
use crate::store::Store;
use crate::telemetry;

/// Time allowed for every task to stop after SIGTERM; systemd's default stop timeout is longer,
/// the brief's limit is 5 s.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(4_500);

/// How often retention is applied and size gauges refreshed.
const MAINTENANCE_PERIOD: Duration = Duration::from_secs(5);

/// Runs until SIGTERM or SIGINT.
pub async fn run(
    config_path: Option<PathBuf>,
    overrides: Overrides,
    config: Config,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "cannot create the state directory {}; choose a writable one with --state-dir",
            config.state_dir.display()
        )
    })?;
    let telemetry = telemetry::install().context("cannot install the self-metrics recorder")?;
    let history = Arc::new(RwLock::new(History::new(history_limits(&config))));
    let readiness = Readiness::default();
    let status = StatusBoard::default();
    let spend = SpendTracker::open(config.ai.clone(), &config.state_dir);
    let auth = Arc::new(RwLock::new(config.web.auth.clone()));
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let store = open_store(&config, &readiness);
    let notifier =
        crate::notify::actor::spawn(store.clone(), notify_settings(&config), &tracker, &shutdown);
    if !config.alerting.delivers() {
        info!(
            "No alerting configuration: alerts are evaluated but delivered nowhere; set [alerting] config_file (an Alertmanager file) or alertmanagers to send them."
        );
    }
    let rules = crate::rules::manager::spawn(
        RuleSet::from_config(&config),
        Arc::clone(&history),
        crate::rules::manager::Persistence {
            store: store.clone(),
            state_dir: config.state_dir.clone(),
        },
        crate::rules::engine::Context {
            external_labels: outgoing_labels(&config.external_labels),
            default_interval_ms: crate::rules::manager::DEFAULT_INTERVAL.as_millis() as i64,
            notify: Some(notifier.clone()),
            ..Default::default()
        },
        &tracker,
        &shutdown,
    );
    let state = AppState {
        rules: Arc::clone(&rules.view),
        notify: Some(notifier.clone()),
        started_at_ms: crate::collector::now_ms(),
        history: Arc::clone(&history),
        telemetry: telemetry.clone(),
        readiness: readiness.clone(),
        status: status.clone(),
        auth: Arc::clone(&auth),
        spend: spend.clone(),
        queries: Arc::new(http::query::QueryLimits::new(config.query)),
    };

    // Before serving: a SIGTERM that arrives as soon as /readyz answers still drains cleanly.
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    // Collectors register with the readiness before the server answers /readyz, so "ready"
    // always means every collector has run once.
    let mut collectors = Collectors::start(
        &config, &history, &readiness, &status, &spend, &tracker, &shutdown,
    );
    let mut server = Server::start(&config, state.clone(), &tracker, &shutdown).await?;
    spawn_maintenance(&history, &tracker, &shutdown);
    crate::self_metrics::spawn(telemetry.clone(), &history, &tracker, &shutdown);
    spawn_upkeep(telemetry, &tracker, &shutdown);
    spawn_watchdog(&history, &tracker, &shutdown);
    record_reload(true);
    info!(
        listen = %config.web.listen,
        config = %config.origin,
        tls = config.web.tls.is_some(),
        auth = config.web.auth.is_enabled(),
        "Serving metrics on {}://{}/metrics.",
        if config.web.tls.is_some() { "https" } else { "http" },
        config.web.listen
    );
    notify(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("Serving on {}", config.web.listen)),
    ]);

    let mut current = config;
    // The Alertmanager file is watched like the rule files: a change reloads as SIGHUP does.
    let mut alerting_poll = tokio::time::interval(ALERTING_POLL);
    alerting_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut alerting_seen = alerting_stamp(&current);
    loop {
        let cause = tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => "signal",
            _ = alerting_poll.tick() => {
                if alerting_stamp(&current) == alerting_seen {
                    continue;
                }
                "alerting file change"
            }
        };
        notify(&[NotifyState::Reloading]);
        match config::load_for_reload(config_path.as_deref(), &overrides) {
            Ok(next) => {
                let removed = config::removed_protections(&current, &next);
                match apply(
                    &current,
                    &next,
                    &history,
                    &auth,
                    &readiness,
                    &status,
                    &spend,
                    &mut server,
                    &mut collectors,
                    &state,
                    &tracker,
                    &shutdown,
                )
                .await
                {
                    Ok(()) => {
                        info!(config = %next.origin, cause, "Configuration reloaded.");
                        if !removed.is_empty() {
                            warn!(removed = %removed.join(", "), "The reloaded configuration removes protection of the endpoints: {}.", removed.join(", "));
                        }
                        rules.reload(
                            RuleSet::from_config(&next),
                            outgoing_labels(&next.external_labels),
                        );
                        notifier.reload(notify_settings(&next));
                        record_reload(true);
                        current = next;
                    }
                    Err(error) => {
                        error!(
                            error = format!("{error:#}"),
                            cause,
                            "Configuration reload refused; the previous configuration keeps running."
                        );
                        record_reload(false);
                    }
                }
            }
            Err(errors) => {
                error!(errors = %errors, cause, "Configuration reload refused; the previous configuration keeps running.");
                record_reload(false);
            }
        }
        // A refused file is not tried again until it changes.
        alerting_seen = alerting_stamp(&current);
        notify(&[NotifyState::Ready]);
    }

    info!("Shutting down.");
    notify(&[NotifyState::Stopping]);
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("Some tasks did not stop within the grace period; exiting anyway.");
    }
    // Whatever arrived since the last save.
    spend.save();
    Ok(())
}

/// Opens the state store. A store that cannot be opened is reported (path, cause, what to
/// do) and replaced by one in memory, so alerts are still delivered; `/readyz` then says not
/// ready, as it does while the store cannot be written.
fn open_store(config: &Config, readiness: &Readiness) -> Store {
    const READINESS_NAME: &str = "state store";
    let store = match Store::open(&config.state_dir) {
        Ok(store) => store,
        Err(problem) => {
            error!(error = %problem, "Notifications are kept in memory only until the state store can be opened (restart the daemon once fixed).");
            metrics::counter!("prismwatch_store_errors_total").increment(1);
            readiness.expect(READINESS_NAME);
            match Store::open_in_memory() {
                Ok(store) => return store,
                Err(problem) => {
                    error!(error = %problem, "Cannot even open an in-memory store.");
                    std::process::exit(70);
                }
            }
        }
    };
    let readiness = readiness.clone();
    store.on_health_change(move |healthy| {
        if healthy {
            readiness.forget(READINESS_NAME);
        } else {
            readiness.expect(READINESS_NAME);
        }
    });
    store
}

/// What the notification actor needs from the configuration.
fn notify_settings(config: &Config) -> NotifySettings {
    let host = outgoing_labels(&config.external_labels)
        .into_iter()
        .find(|(k, _)| k == "instance")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let scheme = if config.web.tls.is_some() {
        "https"
    } else {
        "http"
    };
    NotifySettings {
        config: config.alerting.config.clone(),
        alertmanagers: config.alerting.alertmanagers.clone(),
        external_labels: outgoing_labels(&config.external_labels),
        external_url: format!("{scheme}://{host}:{}", config.web.listen.port()),
    }
}

/// Applies a validated new configuration. On error nothing has changed.
#[allow(clippy::too_many_arguments)]
async fn apply(
    current: &Config,
    next: &Config,
    history: &Arc<RwLock<History>>,
    auth: &Arc<RwLock<WebAuth>>,
    readiness: &Readiness,
    status: &StatusBoard,
    spend: &SpendTracker,
    server: &mut Server,
    collectors: &mut Collectors,
    state: &AppState,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    // Rebinding is the one step that can fail, so it goes first.
    let tls_paths = |c: &Config| {
        c.web
            .tls
            .as_ref()
            .map(|t| (t.cert_file.clone(), t.key_file.clone()))
    };
    let limits = |c: &Config| (c.web.max_connections, c.web.read_timeout);
    if current.web.listen != next.web.listen
        || tls_paths(current) != tls_paths(next)
        || limits(current) != limits(next)
    {
        let replacement = Server::start(next, state.clone(), tracker, shutdown).await?;
        std::mem::replace(server, replacement).stop();
        info!(listen = %next.web.listen, "Now serving on {}.", next.web.listen);
    }
    if let Ok(mut auth) = auth.write() {
        *auth = next.web.auth.clone();
    }
    if let Ok(mut history) = history.write() {
        history.set_limits(history_limits(next));
    }
    set_history_gauges(next);
    spend.reconfigure(next.ai.clone());
    if current.host != next.host
        || current.host_filters != next.host_filters
        || current.targets != next.targets
        || current.ai.interval != next.ai.interval
        || current.ai.sql_sources != next.ai.sql_sources
    {
        collectors.stop();
        let replacement =
            Collectors::start(next, history, readiness, status, spend, tracker, shutdown);
        // Sources that are gone end now: their series go stale and their details disappear.
        let now = now_ms();
        for source in collectors
            .sources
            .iter()
            .filter(|s| !replacement.sources.contains(s))
        {
            if let Ok(mut history) = history.write() {
                history.retire_source(source, now);
            }
            readiness.forget(source);
            status.remove(source);
        }
        *collectors = replacement;
    }
    if current.log != next.log {
        warn!("Log settings changed; they take effect at the next restart.");
    }
    Ok(())
}

/// The running HTTP server.
struct Server {
    cancel: CancellationToken,
}

impl Server {
    async fn start(
        config: &Config,
        state: AppState,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Server> {
        let listener = http::bind(config.web.listen).await?;
        let cancel = shutdown.child_token();
        let tls = config
            .web
            .tls
            .as_ref()
            .map(|tls| Arc::clone(&tls.server_config));
        tracker.spawn(
            http::serve(
                listener,
                http::router(state),
                tls,
                http::ServeLimits::from_config(&config.web),
                cancel.clone(),
            )
            .instrument(info_span!("http", listen = %config.web.listen)),
        );
        Ok(Server { cancel })
    }

    fn stop(self) {
        self.cancel.cancel();
    }
}

/// The running collector tasks of one configuration generation.
struct Collectors {
    cancel: CancellationToken,
    /// History source names of the running collectors.
    sources: Vec<String>,
}

impl Collectors {
    fn start(
        config: &Config,
        history: &Arc<RwLock<History>>,
        readiness: &Readiness,
        status: &StatusBoard,
        spend: &SpendTracker,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Collectors {
        let mut collectors = Collectors {
            cancel: shutdown.child_token(),
            sources: Vec::new(),
        };
        set_history_gauges(config);
        let ai_schedule = CollectorSchedule {
            enabled: true,
            interval: config.ai.interval,
            timeout: config.ai.interval,
        };
        collectors.spawn(
            SpendCollector::new(spend.clone()),
            ai_schedule,
            history,
            readiness,
            tracker,
        );
        for source in &config.ai.sql_sources {
            let made = SqlUsageCollector::new(source, spend.clone());
            collectors.start_or_log(made, source.schedule, history, readiness, tracker);
        }
        // The daemon's own process metrics always run, on the host schedule.
        let process_schedule = CollectorSchedule {
            enabled: true,
            ..config.host
        };
        collectors.spawn(
            ProcessCollector::new(),
            process_schedule,
            history,
            readiness,
            tracker,
        );
        if config.host.enabled {
            let made = HostCollector::new(config.host_filters.clone());
            collectors.start_or_log(made, config.host, history, readiness, tracker);
        }
        for target in &config.targets.postgres {
            let made = PostgresCollector::new(target.clone(), status.clone());
            collectors.start_or_log(made, target.common.schedule, history, readiness, tracker);
        }
        for target in &config.targets.pgbouncer {
            let made = PgbouncerCollector::new(target.clone());
            collectors.start_or_log(made, target.common.schedule, history, readiness, tracker);
        }
        for target in &config.targets.redis {
            let made = RedisCollector::new(target.clone());
            collectors.start_or_log(made, target.common.schedule, history, readiness, tracker);
        }
        collectors
    }

    /// Runs a collector that could be built, or says which one could not and why (its metrics
    /// are then missing; the daemon and every other collector carry on).
    fn start_or_log<C: Collector>(
        &mut self,
        made: Result<C, CollectError>,
        schedule: CollectorSchedule,
        history: &Arc<RwLock<History>>,
        readiness: &Readiness,
        tracker: &TaskTracker,
    ) {
        match made {
            Ok(collector) => self.spawn(collector, schedule, history, readiness, tracker),
            Err(error) => error!(%error, "Cannot start a collector; its metrics are unavailable."),
        }
    }

    /// Runs one collector as a tracked task of this generation.
    fn spawn<C: Collector>(
        &mut self,
        collector: C,
        schedule: CollectorSchedule,
        history: &Arc<RwLock<History>>,
        readiness: &Readiness,
        tracker: &TaskTracker,
    ) {
        let name = collector.name().to_string();
        self.sources.push(name.clone());
        // Now, not when the task first runs: /readyz must not say ready before it has.
        readiness.expect(&name);
        tracker.spawn(
            run_collector(
                collector,
                schedule,
                Arc::clone(history),
                readiness.clone(),
                self.cancel.clone(),
            )
            .instrument(info_span!("collector", name = %name)),
        );
    }

    fn stop(&self) {
        self.cancel.cancel();
    }
}

fn history_limits(config: &Config) -> HistoryLimits {
    HistoryLimits {
        retention_ms: config.history.retention.as_millis() as i64,
        max_series: config.history.max_series,
    }
}

fn set_history_gauges(config: &Config) {
    metrics::gauge!("prismwatch_history_retention_seconds")
        .set(config.history.retention.as_secs_f64());
    metrics::gauge!("prismwatch_history_max_series").set(config.history.max_series as f64);
}

fn spawn_maintenance(
    history: &Arc<RwLock<History>>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let history = Arc::clone(history);
    let shutdown = shutdown.clone();
    tracker.spawn(
        async move {
            let mut tick = tokio::time::interval(MAINTENANCE_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let stats = match history.write() {
                    Ok(mut history) => {
                        history.trim(now_ms());
                        history.stats()
                    }
                    Err(_) => break,
                };
                metrics::gauge!("prismwatch_history_series").set(stats.series as f64);
                metrics::gauge!("prismwatch_history_samples").set(stats.samples as f64);
                metrics::gauge!("prismwatch_history_memory_bytes").set(stats.total_bytes as f64);
                metrics::gauge!("prismwatch_history_sample_bytes").set(stats.sample_bytes as f64);
                notify(&[NotifyState::Status(&format!(
                    "{} series, {} samples, {:.2} bytes/sample",
                    stats.series,
                    stats.samples,
                    stats.bytes_per_sample()
                ))]);
            }
        }
        .instrument(info_span!("maintenance")),
    );
}

fn spawn_upkeep(
    telemetry: metrics_exporter_prometheus::PrometheusHandle,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let shutdown = shutdown.clone();
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(MAINTENANCE_PERIOD);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => telemetry.run_upkeep(),
            }
        }
    });
}

/// Pings systemd's watchdog at half its period while the runtime runs and the history is usable.
fn spawn_watchdog(
    history: &Arc<RwLock<History>>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let history = Arc::clone(history);
    let shutdown = shutdown.clone();
    tracker.spawn(
        async move {
            let mut tick = tokio::time::interval(period / 2);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if history.read().is_ok() {
                    notify(&[NotifyState::Watchdog]);
                }
            }
        }
        .instrument(info_span!("watchdog")),
    );
}

/// How often the Alertmanager file is checked for changes (as the rule files are).
const ALERTING_POLL: Duration = Duration::from_secs(2);

/// What a change of the Alertmanager file looks like: its modification time and size.
fn alerting_stamp(config: &Config) -> Option<(Option<std::time::SystemTime>, u64)> {
    let path = config.alerting.config.as_ref()?.origin.clone();
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

fn record_reload(success: bool) {
    metrics::gauge!("prismwatch_config_last_reload_successful").set(if success {
        1.0
    } else {
        0.0
    });
    if success {
        metrics::gauge!("prismwatch_config_last_reload_success_timestamp_seconds")
            .set(now_ms() as f64 / 1000.0);
    }
}

/// Tells systemd about our state; a no-op when not started by systemd.
fn notify(states: &[NotifyState<'_>]) {
    let _ = sd_notify::notify(states);
}
