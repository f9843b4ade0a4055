//! The notification actor: one task that owns the alerts received from the rules, the
//! dispatcher (routing, grouping, timers), the notification log and the silences, and turns
//! each due group into outbox rows. Every change is committed to the store when it happens, so
//! a restart (or `kill -9`) resumes with the same alerts, the same log and the same queue.
//!
//! The rules send alerts the way Prometheus' notifier sends them to Alertmanager: firing
//! alerts with `endsAt = now + 4 x max(interval, 1m)`, and resolved ones (with their resolve
//! time as `endsAt`) for 15 minutes. Every alert that leaves the agent carries the external
//! labels, `instance` (the host name) included unless the configuration sets it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rusqlite::{Connection, params};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use super::alert::{Alert, AlertStore};
use super::config::{AlertingConfig, EmailConfig};
use super::dispatch::{Dispatcher, Flush, LogEntry, NotificationLog};
use super::email::{self, MailParts, Mailer, SmtpAuth, SmtpSettings};
use super::forward;
use super::inhibit::Inhibitor;
use super::message::{self, AlertData, Data, Pairs, Status};
use super::outbox::{self, Integration, NewEntry, Payload, Transports};
use super::silence::{Silence, SilenceState};
use super::webhook::{HttpAuth, WebhookSettings};
use crate::collector::now_ms;
use crate::model::Labels;
use crate::rules::Group;
use crate::rules::alert::AlertState;
use crate::rules::engine::GroupState;
use crate::store::Store;

/// Prometheus' `--rules.alert.resend-delay`: the floor of the interval in `endsAt`.
const RESEND_DELAY_MS: i64 = 60_000;
/// Resolved alerts are kept (and sent as resolved) this long, as Prometheus and Alertmanager.
const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);
/// Notification log entries older than this are dropped (Alertmanager's `--data.retention`).
const LOG_RETENTION_MS: i64 = 120 * 3600 * 1000;
/// How long one SMTP delivery may take in total.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhook timeout when the configuration sets none.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Alerts waiting for the actor; past this a batch is dropped (the rules send again at their
/// next evaluation, so nothing is lost for long).
const QUEUE: usize = 1024;

/// What the actor needs from the configuration.
#[derive(Clone, Debug, Default)]
pub struct NotifySettings {
    /// The Alertmanager configuration; `None`: alerts are evaluated but delivered nowhere
    /// (except to `alertmanagers`).
    pub config: Option<Arc<AlertingConfig>>,
    /// Alertmanagers to forward every alert to (`POST /api/v2/alerts`).
    pub alertmanagers: Vec<String>,
    /// Added to every alert that leaves the agent (`instance` already set).
    pub external_labels: Vec<(String, String)>,
    pub external_url: String,
}

/// One alert as `prismwatch alerts` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertStatus {
    pub alert: Alert,
    pub silenced_by: Vec<String>,
    pub inhibited: bool,
    /// The receivers its route leads to.
    pub receivers: Vec<String>,
}

/// What the actor publishes for readers (the API, the CLI): its alerts and configuration.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub alerts: Vec<AlertStatus>,
    pub config: Option<Arc<AlertingConfig>>,
}

/// The handle the daemon and the rules use. Cheap to clone.
#[derive(Clone)]
pub struct NotifyHandle {
    commands: mpsc::Sender<Command>,
    view: Arc<RwLock<View>>,
    /// For reading how test notifications ended.
    store: Store,
}

impl fmt::Debug for NotifyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NotifyHandle")
    }
}

enum Command {
    Alerts(Vec<(Alert, Option<f64>)>),
    Reload(NotifySettings),
    Silence(Silence, oneshot::Sender<Result<(), String>>),
    Silences(oneshot::Sender<Vec<Silence>>),
    /// Queues a test notification to a receiver (the root route's when `None`); answers with
    /// the receiver and the outbox rows.
    Test(
        Option<String>,
        oneshot::Sender<Result<(String, Vec<i64>), String>>,
    ),
}

/// How one outbox row ended (or where it stands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowOutcome {
    pub integration: String,
    pub target: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// The server's answer, or the last error.
    pub answer: String,
}

/// The answer of [`NotifyHandle::test`].
#[derive(Clone, Debug)]
pub struct TestReport {
    pub receiver: String,
    pub rows: Vec<RowOutcome>,
}

impl NotifyHandle {
    /// Sends the alerts of one group evaluation (see the module doc for what is sent).
    pub fn send_group(
        &self,
        group: &Group,
        state: &Mutex<GroupState>,
        ts: i64,
        interval: Duration,
    ) {
        let alerts = {
            let state = state.lock().unwrap_or_else(|e| e.into_inner());
            rule_alerts(group, &state, ts, interval)
        };
        if alerts.is_empty() {
            return;
        }
        if self.commands.try_send(Command::Alerts(alerts)).is_err() {
            metrics::counter!("prismwatch_notify_alert_batches_dropped_total").increment(1);
        }
    }

    /// Sends alerts as they are (a test notification, alerts from elsewhere).
    pub async fn send_alerts(&self, alerts: Vec<Alert>) {
        let batch = alerts.into_iter().map(|a| (a, None)).collect();
        let _ = self.commands.send(Command::Alerts(batch)).await;
    }

    /// Applies a new configuration (already validated).
    pub fn reload(&self, settings: NotifySettings) {
        let _ = self.commands.try_send(Command::Reload(settings));
    }

    /// Adds or replaces a silence; `Ok` once it is in the store.
    pub async fn upsert_silence(&self, silence: Silence) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Silence(silence, reply))
            .await
            .map_err(|_| "the notifier has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the notifier has stopped".to_string())?
    }

    pub async fn silences(&self) -> Vec<Silence> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Silences(reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Sends a test notification to `receiver` (the root route's when `None`) through the
    /// outbox and the real transports, and waits up to `wait` for every row to finish.
    pub async fn test(
        &self,
        receiver: Option<String>,
        wait: Duration,
    ) -> Result<TestReport, String> {
        let stopped = || "the notifier has stopped".to_string();
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Test(receiver, reply))
            .await
            .map_err(|_| stopped())?;
        let (receiver, ids) = answer.await.map_err(|_| stopped())??;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let wanted = ids.clone();
            let rows = self
                .store
                .call(move |c| outbox::outcomes(c, &wanted))
                .await
                .map_err(|e| e.to_string())?;
            let done = rows.iter().all(|r| r.state != "pending");
            if done || tokio::time::Instant::now() >= deadline {
                return Ok(TestReport { receiver, rows });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The current alerts, with whether they are silenced or inhibited.
    pub fn alerts(&self) -> Vec<AlertStatus> {
        self.view
            .read()
            .map(|v| v.alerts.clone())
            .unwrap_or_default()
    }

    /// The Alertmanager configuration in force, if any.
    pub fn config(&self) -> Option<Arc<AlertingConfig>> {
        self.view.read().ok().and_then(|v| v.config.clone())
    }
}

/// The alerts Prometheus would send for one group at `ts`: firing ones and those resolved in
/// the last 15 minutes, with `alertname` and the rule's labels (external labels are added by
/// the actor).
pub fn rule_alerts(
    group: &Group,
    state: &GroupState,
    ts: i64,
    interval: Duration,
) -> Vec<(Alert, Option<f64>)> {
    let delta = (interval.as_millis() as i64).max(RESEND_DELAY_MS);
    let mut out = Vec::new();
    for rule in &group.rules {
        let crate::rules::RuleKind::Alert { name, .. } = &rule.kind else {
            continue;
        };
        let Some(alerts) = state.rules.get(&rule.key) else {
            continue;
        };
        for alert in alerts.alerts() {
            let ends_at_ms = match (alert.state, alert.resolved_at) {
                (AlertState::Firing, _) => ts + 4 * delta,
                (AlertState::Resolved, Some(resolved)) if alert.fired_at.is_some() => resolved,
                _ => continue,
            };
            let mut pairs = alert.labels.clone();
            pairs.push(("alertname".to_string(), name.clone()));
            out.push((
                Alert {
                    labels: Labels::from_pairs(pairs),
                    annotations: Labels::from_pairs(alert.annotations.clone()),
                    starts_at_ms: alert.fired_at.unwrap_or(alert.active_at),
                    ends_at_ms,
                    generator_url: generator_path(&rule.expr),
                    updated_at_ms: ts,
                },
                Some(alert.value),
            ));
        }
    }
    out
}

/// Prometheus' generator URL path (`/graph?g0.expr=...&g0.tab=1`); the actor prefixes the
/// external URL.
fn generator_path(expr: &str) -> String {
    let mut encoded = String::with_capacity(expr.len() * 3);
    for byte in expr.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("/graph?g0.expr={encoded}&g0.tab=1")
}

/// The external labels every alert leaving the agent carries: the configured ones, plus
/// `instance` = the host name unless configured.
pub fn outgoing_labels(external_labels: &[(String, String)]) -> Vec<(String, String)> {
    let mut labels = external_labels.to_vec();
    if !labels.iter().any(|(k, _)| k == "instance") {
        labels.push(("instance".to_string(), host_name()));
    }
    labels.sort();
    labels
}

/// The host's name (uname's nodename).
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    uname.nodename().to_string_lossy().into_owned()
}

/// Starts the actor, the outbox and the forwarders. Reads the saved state first.
pub fn spawn(
    store: Store,
    settings: NotifySettings,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> NotifyHandle {
    let (commands, receiver) = mpsc::channel(QUEUE);
    let view = Arc::new(RwLock::new(View::default()));
    let wake = Arc::new(Notify::new());
    let (transports_tx, transports_rx) =
        watch::channel(Arc::new(build_transports(settings.config.as_deref())));
    tracker.spawn(
        outbox::run(
            store.clone(),
            transports_rx,
            Arc::clone(&wake),
            shutdown.clone(),
            now_ms,
        )
        .instrument(info_span!("outbox")),
    );
    let (forward_tx, forward_rx) = watch::channel(Vec::<Alert>::new());
    let forwarders = forward::spawn_all(&settings.alertmanagers, forward_rx, tracker, shutdown);
    let store_handle = store.clone();
    let actor = Actor {
        store,
        settings,
        alerts: AlertStore::new(),
        values: BTreeMap::new(),
        dispatcher: None,
        log: NotificationLog::new(),
        silences: Vec::new(),
        inhibitor: Inhibitor::default(),
        view: Arc::clone(&view),
        wake,
        transports: transports_tx,
        forward: forward_tx,
        forwarders,
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
    };
    tracker.spawn(actor.run(receiver).instrument(info_span!("notify")));
    NotifyHandle {
        commands,
        view,
        store: store_handle,
    }
}

struct Actor {
    store: Store,
    settings: NotifySettings,
    alerts: AlertStore,
    values: BTreeMap<u64, f64>,
    dispatcher: Option<Dispatcher>,
    log: NotificationLog,
    silences: Vec<Silence>,
    inhibitor: Inhibitor,
    view: Arc<RwLock<View>>,
    wake: Arc<Notify>,
    transports: watch::Sender<Arc<Transports>>,
    forward: watch::Sender<Vec<Alert>>,
    forwarders: forward::Forwarders,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Actor {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        self.restore().await;
        self.configure();
        let mut housekeeping = tokio::time::interval(Duration::from_secs(5));
        loop {
            let wait = self
                .dispatcher
                .as_ref()
                .and_then(Dispatcher::next_due)
                .map_or(Duration::from_secs(3600), |due| {
                    Duration::from_millis((due - now_ms()).clamp(0, 3_600_000) as u64)
                });
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                command = commands.recv() => match command {
                    None => break,
                    Some(command) => self.handle(command).await,
                },
                _ = tokio::time::sleep(wait) => self.flush().await,
                _ = housekeeping.tick() => self.housekeeping().await,
            }
        }
    }

    /// Reads alerts, the notification log and silences back from the store.
    async fn restore(&mut self) {
        let loaded = self
            .store
            .call(|c| Ok((load_alerts(c)?, load_log(c)?, load_silences(c)?)))
            .await;
        match loaded {
            Ok((alerts, log, silences)) => {
                let now = now_ms();
                let count = alerts.len();
                for alert in alerts {
                    self.alerts.upsert(alert, now);
                }
                for ((group_key, receiver), entry) in log {
                    self.log.insert(group_key, receiver, entry);
                }
                self.silences = silences;
                if count > 0 {
                    info!(alerts = count, "Restored the alerts and notification log.");
                }
            }
            Err(error) => error!(%error, "Cannot read the saved alerts; starting without them."),
        }
    }

    /// Builds the dispatcher from the configuration, with every known alert in it.
    fn configure(&mut self) {
        self.inhibitor = Inhibitor::default();
        self.dispatcher = self.settings.config.as_ref().map(|config| {
            self.inhibitor = Inhibitor::from_config(config);
            let mut dispatcher = Dispatcher::new(Arc::clone(config));
            dispatcher.insert(self.alerts.iter().cloned(), now_ms());
            dispatcher
        });
        self.transports
            .send_replace(Arc::new(build_transports(self.settings.config.as_deref())));
        if let Some(config) = &self.settings.config
            && !config.templates.is_empty()
        {
            warn!(
                templates = config.templates.len(),
                "The configuration names template files; prismwatch renders its built-in e-mail and webhook messages and does not read them."
            );
        }
        self.publish();
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Alerts(batch) => self.receive(batch).await,
            Command::Reload(settings) => {
                if settings.alertmanagers != self.settings.alertmanagers {
                    self.forwarders.stop();
                    self.forwarders = forward::spawn_all(
                        &settings.alertmanagers,
                        self.forward.subscribe(),
                        &self.tracker,
                        &self.shutdown,
                    );
                }
                self.settings = settings;
                self.configure();
            }
            // Refused unless saved: an acknowledged silence survives a restart.
            Command::Silence(silence, reply) => {
                let saved = silence.clone();
                let result = self.store.call(move |c| save_silence(c, &saved)).await;
                match result {
                    Ok(()) => {
                        self.silences.retain(|s| s.id != silence.id);
                        self.silences.push(silence);
                        self.publish();
                        let _ = reply.send(Ok(()));
                    }
                    Err(error) => {
                        warn!(%error, "Cannot save a silence; it was refused.");
                        let _ = reply.send(Err(error.to_string()));
                    }
                }
            }
            Command::Silences(reply) => {
                let _ = reply.send(self.silences.clone());
            }
            Command::Test(receiver, reply) => {
                let _ = reply.send(self.queue_test(receiver).await);
            }
        }
    }

    /// Queues one test notification for `receiver`, outside routing, grouping and the
    /// notification log, so it neither waits for a group nor changes what groups send.
    async fn queue_test(&mut self, receiver: Option<String>) -> Result<(String, Vec<i64>), String> {
        let config = self.settings.config.clone().ok_or_else(|| {
            "no alerting configuration: set [alerting] config_file (an Alertmanager file)"
                .to_string()
        })?;
        let receiver = receiver.unwrap_or_else(|| config.route.receiver.clone());
        if config.receiver(&receiver).is_none() {
            let names: Vec<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();
            return Err(format!(
                "no receiver `{receiver}` in {}; receivers: {}",
                config.origin.display(),
                names.join(", ")
            ));
        }
        let now = now_ms();
        let mut pairs = vec![
            (
                "alertname".to_string(),
                "PrismwatchTestNotification".to_string(),
            ),
            ("severity".to_string(), "none".to_string()),
        ];
        pairs.extend(self.settings.external_labels.iter().cloned());
        let alert = Alert {
            labels: Labels::from_pairs(pairs),
            annotations: Labels::from_pairs([
                (
                    "summary",
                    "A test notification from `prismwatch notify test`",
                ),
                (
                    "description",
                    "Nothing is wrong: this checks that notifications reach you.",
                ),
            ]),
            starts_at_ms: now,
            ends_at_ms: now + 5 * 60_000,
            generator_url: String::new(),
            updated_at_ms: now,
        };
        let group_key = format!("{{}}/test:{{at=\"{now}\"}}");
        let flush = Flush {
            group_key: group_key.clone(),
            receiver: receiver.clone(),
            group_labels: Labels::from_pairs([("alertname", "PrismwatchTestNotification")]),
            firing: vec![alert],
            resolved: Vec::new(),
            route_key: "{}/test".to_string(),
        };
        let entries = render_flush(&config, &flush, &self.values, &self.settings, now);
        if entries.is_empty() {
            return Err(format!(
                "receiver `{receiver}` has no e-mail or webhook configuration to send to"
            ));
        }
        let ids = self
            .store
            .call(move |c| {
                let transaction = c.transaction()?;
                outbox::insert(&transaction, &entries, now)?;
                let ids = outbox::ids_of_group(&transaction, &group_key)?;
                transaction.commit()?;
                Ok(ids)
            })
            .await
            .map_err(|e| e.to_string())?;
        self.wake.notify_one();
        Ok((receiver, ids))
    }

    /// Merges a batch from the rules, saves what changed, and hands it to the dispatcher.
    async fn receive(&mut self, batch: Vec<(Alert, Option<f64>)>) {
        let now = now_ms();
        let external = &self.settings.external_labels;
        let mut changed = Vec::new();
        let mut merged = Vec::with_capacity(batch.len());
        for (mut alert, value) in batch {
            if !external.is_empty() {
                let mut pairs: Vec<(String, String)> = alert
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                for (name, value) in external {
                    if alert.labels.get(name).is_none() {
                        pairs.push((name.clone(), value.clone()));
                    }
                }
                alert.labels = Labels::from_pairs(pairs);
            }
            if alert.generator_url.starts_with('/') {
                alert.generator_url = format!(
                    "{}{}",
                    self.settings.external_url.trim_end_matches('/'),
                    alert.generator_url
                );
            }
            let fingerprint = alert.fingerprint();
            let before = self.alerts.get(fingerprint).cloned();
            let after = self.alerts.upsert(alert, now).clone();
            if let Some(value) = value {
                self.values.insert(fingerprint, value);
            }
            if material_change(before.as_ref(), &after, now) {
                changed.push(after.clone());
            }
            merged.push(after);
        }
        if !changed.is_empty() {
            let result = self.store.call(move |c| save_alerts(c, &changed)).await;
            if let Err(error) = result {
                warn!(%error, "Cannot save alerts; they are saved again at their next change.");
            }
        }
        if let Some(dispatcher) = self.dispatcher.as_mut() {
            dispatcher.insert(merged, now);
        }
        self.publish();
        self.flush().await;
    }

    /// Turns every due group into outbox rows, committed with their log entry.
    async fn flush(&mut self) {
        let Some(dispatcher) = self.dispatcher.as_mut() else {
            return;
        };
        let now = now_ms();
        let firing: Vec<Alert> = self
            .alerts
            .iter()
            .filter(|a| !a.is_resolved_at(now))
            .cloned()
            .collect();
        let (inhibitor, silences) = (&self.inhibitor, &self.silences);
        let config = Arc::clone(
            &self
                .settings
                .config
                .clone()
                .unwrap_or_else(|| Arc::new(dispatcher.config().clone())),
        );
        let flushes = dispatcher.flush_due(
            now,
            &self.log,
            |a| inhibitor.mutes(&a.labels, &firing, now),
            |a| silences.iter().any(|s| s.silences(&a.labels, now)),
            &config.time_intervals,
        );
        for flush in flushes {
            let entries = render_flush(&config, &flush, &self.values, &self.settings, now);
            let entry = LogEntry {
                firing: flush.firing.iter().map(Alert::fingerprint).collect(),
                resolved: flush.resolved.iter().map(Alert::fingerprint).collect(),
                sent_at_ms: now,
            };
            let (group_key, receiver) = (flush.group_key.clone(), flush.receiver.clone());
            let saved_entry = entry.clone();
            let result = self
                .store
                .call(move |c| {
                    let transaction = c.transaction()?;
                    outbox::insert(&transaction, &entries, now)?;
                    save_log(&transaction, &group_key, &receiver, &saved_entry)?;
                    transaction.commit()
                })
                .await;
            match result {
                Ok(()) => {
                    self.log.record(&flush, now);
                    self.wake.notify_one();
                }
                // Not recorded in the log, so the group notifies again at its next interval.
                Err(error) => {
                    error!(%error, group = %flush.group_key, "Cannot queue a notification; it is retried at the group's next interval.")
                }
            }
        }
    }

    async fn housekeeping(&mut self) {
        let now = now_ms();
        let gone: Vec<u64> = self
            .alerts
            .gc(now, RESOLVED_RETENTION)
            .iter()
            .map(Alert::fingerprint)
            .collect();
        for fingerprint in &gone {
            self.values.remove(fingerprint);
        }
        self.log.gc(now - LOG_RETENTION_MS);
        let expired: Vec<String> = self
            .silences
            .iter()
            .filter(|s| s.ends_at_ms + LOG_RETENTION_MS < now)
            .map(|s| s.id.clone())
            .collect();
        self.silences.retain(|s| !expired.contains(&s.id));
        if !gone.is_empty() || !expired.is_empty() {
            let cutoff = now - LOG_RETENTION_MS;
            let result = self
                .store
                .call(move |c| {
                    let transaction = c.transaction()?;
                    for fingerprint in &gone {
                        transaction.execute(
                            "DELETE FROM notify_alerts WHERE fingerprint = ?1",
                            [format!("{fingerprint:016x}")],
                        )?;
                    }
                    for id in &expired {
                        transaction.execute("DELETE FROM notify_silences WHERE id = ?1", [id])?;
                    }
                    transaction
                        .execute("DELETE FROM notify_log WHERE sent_at_ms < ?1", [cutoff])?;
                    transaction.commit()
                })
                .await;
            if let Err(error) = result {
                warn!(%error, "Cannot remove expired alerts from the store; retrying later.");
            }
        }
        self.publish();
    }

    /// Updates the shared view, the forwarders and the gauges.
    fn publish(&self) {
        let now = now_ms();
        let firing: Vec<Alert> = self
            .alerts
            .iter()
            .filter(|a| !a.is_resolved_at(now))
            .cloned()
            .collect();
        let mut view = Vec::with_capacity(self.alerts.len());
        let (mut active, mut suppressed) = (0u64, 0u64);
        for alert in self.alerts.iter() {
            let silenced_by: Vec<String> = self
                .silences
                .iter()
                .filter(|s| s.silences(&alert.labels, now))
                .map(|s| s.id.clone())
                .collect();
            let inhibited = self.inhibitor.mutes(&alert.labels, &firing, now);
            if !alert.is_resolved_at(now) {
                if silenced_by.is_empty() && !inhibited {
                    active += 1;
                } else {
                    suppressed += 1;
                }
            }
            let mut receivers: Vec<String> = self
                .settings
                .config
                .as_ref()
                .map(|c| {
                    c.route
                        .matching(&alert.labels)
                        .iter()
                        .map(|r| r.receiver.clone())
                        .collect()
                })
                .unwrap_or_default();
            receivers.dedup();
            view.push(AlertStatus {
                alert: alert.clone(),
                silenced_by,
                inhibited,
                receivers,
            });
        }
        metrics::gauge!("alertmanager_alerts", "state" => "active").set(active as f64);
        metrics::gauge!("alertmanager_alerts", "state" => "suppressed").set(suppressed as f64);
        for state in [
            SilenceState::Active,
            SilenceState::Pending,
            SilenceState::Expired,
        ] {
            let count = self
                .silences
                .iter()
                .filter(|s| s.state(now) == state)
                .count();
            metrics::gauge!("alertmanager_silences", "state" => state.as_str()).set(count as f64);
        }
        if let Ok(mut shared) = self.view.write() {
            *shared = View {
                alerts: view,
                config: self.settings.config.clone(),
            };
        }
        self.forward
            .send_replace(self.alerts.iter().cloned().collect());
    }
}

/// Whether an update is worth a write: new, resolved or re-fired, new annotations or start,
/// or a firing alert's `endsAt` moved by more than a minute (it moves at every evaluation).
fn material_change(before: Option<&Alert>, after: &Alert, now: i64) -> bool {
    let Some(before) = before else {
        return true;
    };
    before.is_resolved_at(now) != after.is_resolved_at(now)
        || before.annotations != after.annotations
        || before.starts_at_ms != after.starts_at_ms
        || (before.ends_at_ms - after.ends_at_ms).abs() > RESEND_DELAY_MS
}

/// The outbox rows of one flush: per e-mail config one row per recipient (one message, so one
/// Message-ID), per webhook config one row.
pub fn render_flush(
    config: &AlertingConfig,
    flush: &Flush,
    values: &BTreeMap<u64, f64>,
    settings: &NotifySettings,
    now: i64,
) -> Vec<NewEntry> {
    let Some(receiver) = config.receiver(&flush.receiver) else {
        warn!(receiver = %flush.receiver, "A route names a receiver that does not exist; nothing sent.");
        return Vec::new();
    };
    let group_labels: Pairs = flush
        .group_labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let data_for = |send_resolved: bool| -> Option<Data> {
        let mut alerts: Vec<AlertData> = flush
            .firing
            .iter()
            .map(|a| alert_data(a, Status::Firing, values))
            .collect();
        if send_resolved {
            alerts.extend(
                flush
                    .resolved
                    .iter()
                    .map(|a| alert_data(a, Status::Resolved, values)),
            );
        }
        if alerts.is_empty() {
            return None;
        }
        Some(Data::new(
            &flush.receiver,
            &flush.group_key,
            group_labels.clone(),
            alerts,
            &settings.external_url,
        ))
    };
    let domain = email::message_id_domain(
        settings
            .external_labels
            .iter()
            .find(|(k, _)| k == "instance")
            .map_or("localhost", |(_, v)| v.as_str()),
    );
    let group_hash = super::alert::fingerprint(&Labels::from_pairs([
        ("group", flush.group_key.as_str()),
        ("receiver", flush.receiver.as_str()),
    ]));
    let mut entries = Vec::new();
    for (index, email_config) in receiver.email.iter().enumerate() {
        let Some(data) = data_for(email_config.send_resolved) else {
            continue;
        };
        let parts = mail_parts(
            email_config,
            &data,
            format!("{group_hash:016x}.{now}.{index}@{domain}"),
            format!("{group_hash:016x}.{index}@{domain}"),
            now,
        );
        match email::format_message(&parts) {
            Ok(raw) => {
                let raw = String::from_utf8_lossy(&raw).into_owned();
                for to in &email_config.to {
                    entries.push(NewEntry {
                        integration: Integration::Email,
                        receiver: flush.receiver.clone(),
                        config_index: index,
                        target: to.clone(),
                        group_key: flush.group_key.clone(),
                        message_id: parts.message_id.clone(),
                        payload: Payload::Email {
                            from: email_config.from.clone(),
                            raw: raw.clone(),
                        },
                    });
                }
            }
            Err(problem) => {
                metrics::counter!("alertmanager_notifications_failed_total", "integration" => "email").increment(1);
                error!(receiver = %flush.receiver, error = %problem, "Cannot build the e-mail; fix the receiver's email_configs.");
            }
        }
    }
    for (index, webhook_config) in receiver.webhook.iter().enumerate() {
        let Some(data) = data_for(webhook_config.send_resolved) else {
            continue;
        };
        let body = message::webhook_payload(&data, webhook_config.max_alerts as usize).to_string();
        entries.push(NewEntry {
            integration: Integration::Webhook,
            receiver: flush.receiver.clone(),
            config_index: index,
            target: super::webhook::redact(&webhook_config.url),
            group_key: flush.group_key.clone(),
            message_id: format!("{group_hash:016x}.{now}.{index}"),
            payload: Payload::Webhook { body },
        });
    }
    entries
}

/// A mail from an `email_configs` entry: Alertmanager's default subject unless the headers
/// set a literal one (templated headers are not rendered and fall back to the default).
pub fn mail_parts(
    config: &EmailConfig,
    data: &Data,
    message_id: String,
    thread_id: String,
    now: i64,
) -> MailParts {
    let mut subject = message::subject(data);
    let mut headers = Vec::new();
    for (name, value) in &config.headers {
        if value.contains("{{") {
            continue;
        }
        match name.to_ascii_lowercase().as_str() {
            "subject" => subject = value.clone(),
            "to" | "from" | "message-id" | "in-reply-to" | "references" | "date" => {}
            _ => headers.push((name.clone(), value.clone())),
        }
    }
    MailParts {
        from: config.from.clone(),
        to: config.to.clone(),
        subject,
        message_id,
        thread_id,
        date_ms: now,
        headers,
        text: message::text_body(data, now),
        html: message::html_body(data, now),
    }
}

fn alert_data(alert: &Alert, status: Status, values: &BTreeMap<u64, f64>) -> AlertData {
    let fingerprint = alert.fingerprint();
    let pairs = |labels: &Labels| -> Pairs {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    AlertData {
        status,
        labels: pairs(&alert.labels),
        annotations: pairs(&alert.annotations),
        starts_at_ms: alert.starts_at_ms,
        ends_at_ms: alert.ends_at_ms,
        generator_url: alert.generator_url.clone(),
        fingerprint: format!("{fingerprint:016x}"),
        value: values.get(&fingerprint).copied(),
    }
}

/// Mailers and webhook settings for every receiver of the configuration.
pub fn build_transports(config: Option<&AlertingConfig>) -> Transports {
    let mut transports = Transports::default();
    let Some(config) = config else {
        return transports;
    };
    for receiver in &config.receivers {
        for (index, email_config) in receiver.email.iter().enumerate() {
            match Mailer::new(&smtp_settings(email_config), SMTP_TIMEOUT) {
                Ok(mailer) => {
                    transports
                        .email
                        .insert((receiver.name.clone(), index), mailer);
                }
                Err(problem) => {
                    error!(receiver = %receiver.name, error = %problem, "Cannot set up the mail transport; this receiver's e-mails fail until the configuration is fixed.")
                }
            }
        }
        for (index, webhook_config) in receiver.webhook.iter().enumerate() {
            let auth = match &webhook_config.auth {
                None => HttpAuth::None,
                Some(super::config::WebhookAuth::Basic { username, password }) => HttpAuth::Basic {
                    username: username.clone(),
                    password: password.clone(),
                },
                Some(super::config::WebhookAuth::Bearer(token)) => HttpAuth::Bearer(token.clone()),
            };
            transports.webhook.insert(
                (receiver.name.clone(), index),
                WebhookSettings {
                    url: webhook_config.url.clone(),
                    auth,
                    timeout: webhook_config.timeout.unwrap_or(WEBHOOK_TIMEOUT),
                    max_alerts: webhook_config.max_alerts as usize,
                },
            );
        }
    }
    transports
}

/// The transport part of an `email_configs` entry.
pub fn smtp_settings(config: &EmailConfig) -> SmtpSettings {
    SmtpSettings {
        host: config.smarthost.0.clone(),
        port: config.smarthost.1,
        hello: Some(config.hello.clone()),
        require_tls: config.require_tls,
        auth: match (&config.auth_username, &config.auth_password) {
            (Some(username), Some(password)) => Some(SmtpAuth {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        },
        insecure_skip_verify: config.tls.insecure_skip_verify,
        ca_file: config.tls.ca_file.clone(),
        server_name: config.tls.server_name.clone(),
    }
}

// Persistence: one row per alert, log entry and silence, JSON bodies.

fn labels_json(labels: &Labels) -> serde_json::Value {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn labels_from_json(value: &serde_json::Value) -> Labels {
    Labels::from_pairs(
        value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
    )
}

fn json_error(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn save_alerts(connection: &mut Connection, alerts: &[Alert]) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare_cached(
            "INSERT INTO notify_alerts (fingerprint, body, ends_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (fingerprint) DO UPDATE SET body = excluded.body, ends_at_ms = excluded.ends_at_ms, updated_at_ms = excluded.updated_at_ms",
        )?;
        for alert in alerts {
            let body = serde_json::json!({
                "labels": labels_json(&alert.labels),
                "annotations": labels_json(&alert.annotations),
                "startsAt": alert.starts_at_ms,
                "endsAt": alert.ends_at_ms,
                "generatorURL": alert.generator_url,
            });
            statement.execute(params![
                format!("{:016x}", alert.fingerprint()),
                body.to_string(),
                alert.ends_at_ms,
                alert.updated_at_ms
            ])?;
        }
    }
    transaction.commit()
}

fn load_alerts(connection: &Connection) -> rusqlite::Result<Vec<Alert>> {
    let mut statement =
        connection.prepare("SELECT body, updated_at_ms FROM notify_alerts ORDER BY fingerprint")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
    })?;
    let mut alerts = Vec::new();
    for row in rows {
        let (body, updated_at_ms) = row?;
        let body: serde_json::Value = serde_json::from_str(&body).map_err(json_error)?;
        alerts.push(Alert {
            labels: labels_from_json(&body["labels"]),
            annotations: labels_from_json(&body["annotations"]),
            starts_at_ms: body["startsAt"].as_i64().unwrap_or(0),
            ends_at_ms: body["endsAt"].as_i64().unwrap_or(0),
            generator_url: body["generatorURL"].as_str().unwrap_or("").to_string(),
            updated_at_ms,
        });
    }
    Ok(alerts)
}

fn save_log(
    connection: &Connection,
    group_key: &str,
    receiver: &str,
    entry: &LogEntry,
) -> rusqlite::Result<()> {
    let list = |set: &BTreeSet<u64>| {
        serde_json::Value::from(set.iter().map(|f| format!("{f:016x}")).collect::<Vec<_>>())
            .to_string()
    };
    connection.execute(
        "INSERT INTO notify_log (group_key, receiver, firing, resolved, sent_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (group_key, receiver) DO UPDATE SET firing = excluded.firing, resolved = excluded.resolved, sent_at_ms = excluded.sent_at_ms",
        params![group_key, receiver, list(&entry.firing), list(&entry.resolved), entry.sent_at_ms],
    )?;
    Ok(())
}

type LogRows = Vec<((String, String), LogEntry)>;

fn load_log(connection: &Connection) -> rusqlite::Result<LogRows> {
    let mut statement = connection
        .prepare("SELECT group_key, receiver, firing, resolved, sent_at_ms FROM notify_log")?;
    let parse = |text: String| -> BTreeSet<u64> {
        serde_json::from_str::<Vec<String>>(&text)
            .unwrap_or_default()
            .iter()
            .filter_map(|f| u64::from_str_radix(f, 16).ok())
            .collect()
    };
    let rows = statement.query_map([], |row| {
        Ok((
            (row.get(0)?, row.get(1)?),
            LogEntry {
                firing: parse(row.get(2)?),
                resolved: parse(row.get(3)?),
                sent_at_ms: row.get(4)?,
            },
        ))
    })?;
    rows.collect()
}

fn save_silence(connection: &mut Connection, silence: &Silence) -> rusqlite::Result<()> {
    let body = serde_json::json!({
        "matchers": silence.matchers.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        "startsAt": silence.starts_at_ms,
        "endsAt": silence.ends_at_ms,
        "createdBy": silence.created_by,
        "comment": silence.comment,
    });
    connection.execute(
        "INSERT INTO notify_silences (id, body, ends_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, ends_at_ms = excluded.ends_at_ms, updated_at_ms = excluded.updated_at_ms",
        params![silence.id, body.to_string(), silence.ends_at_ms, silence.updated_at_ms],
    )?;
    Ok(())
}

fn load_silences(connection: &Connection) -> rusqlite::Result<Vec<Silence>> {
    let mut statement =
        connection.prepare("SELECT id, body, updated_at_ms FROM notify_silences ORDER BY id")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    let mut silences = Vec::new();
    for row in rows {
        let (id, body, updated_at_ms) = row?;
        let body: serde_json::Value = serde_json::from_str(&body).map_err(json_error)?;
        let matchers = body["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str())
            .filter_map(|m| super::matcher::parse_matcher(m).ok())
            .collect();
        silences.push(Silence {
            id,
            matchers,
            starts_at_ms: body["startsAt"].as_i64().unwrap_or(0),
            ends_at_ms: body["endsAt"].as_i64().unwrap_or(0),
            created_by: body["createdBy"].as_str().unwrap_or("").to_string(),
            comment: body["comment"].as_str().unwrap_or("").to_string(),
            updated_at_ms,
        });
    }
    Ok(silences)
}

#[cfg(test)]
mod tests;
