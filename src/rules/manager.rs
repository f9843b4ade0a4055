//! Runs the rule groups inside the daemon. An actor owns the loaded rules: each group runs in
//! its own task on its own interval (evaluation on the blocking pool, so a slow group delays
//! nobody else), alert state is kept in the state store (written at each transition, before
//! the notifier hears of it; see [`super::saved`]) and restored at start, and the rules are
//! reloaded on request (SIGHUP) or when a rule file changes. A reload validates the
//! new files first; if any is broken the old rules keep running.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use super::engine::{self, Context, GroupState};
use super::saved;
use super::{Group, RuleError};
use crate::collector::now_ms;
use crate::history::History;
use crate::store::Store;

/// Interval of a group that sets none (Prometheus' global default is 1m; an agent on the host
/// can afford to look more often).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// After a restart, a pending alert fires no earlier than this (Prometheus'
/// `--rules.alert.for-grace-period`, 10m).
const FOR_GRACE_PERIOD_MS: i64 = 10 * 60 * 1000;

/// How often rule files are checked for changes, and every group's state (values and
/// last-seen times, which are not transitions) saved.
const POLL_PERIOD: Duration = Duration::from_secs(2);
const SAVE_PERIOD: Duration = Duration::from_secs(10);

/// Which rules to run: the built-in defaults (unless the configuration turns them off) and the
/// files named in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub builtin: bool,
    pub files: Vec<PathBuf>,
}

impl RuleSet {
    /// The rules a configuration puts in force.
    pub fn from_config(config: &crate::config::Config) -> RuleSet {
        RuleSet {
            builtin: config.builtin_rules,
            files: config.rules.clone(),
        }
    }

    /// Loads every group: the built-in ones first, then the files' in order.
    fn load(&self) -> (Vec<Group>, Vec<RuleError>) {
        let (mut groups, mut errors) = if self.builtin {
            super::load_builtin()
        } else {
            (Vec::new(), Vec::new())
        };
        for test in super::find_rule_files(&self.files).tests {
            info!(file = %test.display(), "Skipped a rule unit test file in a rules directory; run it with `prismwatch rules test`.");
        }
        let (file_groups, file_errors) = super::load(&self.files);
        groups.extend(file_groups);
        errors.extend(file_errors);
        (groups, errors)
    }

    /// What a file change looks like: every rule file with its modification time and size.
    fn fingerprint(&self) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
        super::watched_files(&self.files)
            .into_iter()
            .map(|file| {
                let meta = std::fs::metadata(&file).ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                let len = meta.map_or(0, |m| m.len());
                (file, modified, len)
            })
            .collect()
    }
}

/// One running group and its state, as the HTTP API shows them.
#[derive(Clone)]
pub struct LoadedGroup {
    pub group: Arc<Group>,
    pub state: Arc<Mutex<GroupState>>,
    pub interval: Duration,
}

/// The running groups, shared read-only with the HTTP API.
pub type RulesView = Arc<RwLock<Vec<LoadedGroup>>>;

/// Asks the rules actor to reload.
#[derive(Clone)]
pub struct RulesHandle {
    reload: mpsc::UnboundedSender<(RuleSet, Vec<(String, String)>)>,
    pub view: RulesView,
}

impl RulesHandle {
    /// Reloads from `set` with new external labels (validated first; on any error the running
    /// rules stay).
    pub fn reload(&self, set: RuleSet, external_labels: Vec<(String, String)>) {
        let _ = self.reload.send((set, external_labels));
    }
}

/// Where the rules keep their alert state: the store, and the state directory an older
/// version's state file is migrated from.
pub struct Persistence {
    pub store: Store,
    pub state_dir: PathBuf,
}

/// Starts the rules actor.
pub fn spawn(
    set: RuleSet,
    history: Arc<RwLock<History>>,
    persistence: Persistence,
    context: Context,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> RulesHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let view: RulesView = Arc::default();
    // Before any group runs, so the first evaluation continues from the saved state.
    let now = now_ms();
    let states = saved::restore(&persistence.store, &persistence.state_dir, now)
        .into_iter()
        .map(|(key, state)| (key, Arc::new(Mutex::new(state))))
        .collect::<BTreeMap<_, _>>();
    let context = Context {
        restored_at: (!states.is_empty()).then_some(now),
        ..context
    };
    let mut actor = Actor {
        set,
        history,
        persistence,
        states,
        context: Arc::new(context),
        running: CancellationToken::new(),
        view: Arc::clone(&view),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
    };
    {
        let _span = info_span!("rules").entered();
        actor.begin();
    }
    tracker.spawn(actor.run(rx).instrument(info_span!("rules")));
    RulesHandle { reload: tx, view }
}

struct Actor {
    set: RuleSet,
    history: Arc<RwLock<History>>,
    persistence: Persistence,
    /// State by group key, including groups not (yet) loaded, so a state restored from disk
    /// reaches its group once it loads.
    states: BTreeMap<String, Arc<Mutex<GroupState>>>,
    context: Arc<Context>,
    /// Cancels the running generation of group tasks.
    running: CancellationToken,
    view: RulesView,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Actor {
    /// Loads the rules and starts their groups: done before the daemon serves, so the API
    /// lists every group from the first request.
    fn begin(&mut self) {
        let (groups, errors) = self.set.load();
        for problem in &errors {
            error!(error = %problem, "A rule file has an error; its rules are not evaluated.");
        }
        if self.context.restored_at.is_some() {
            self.restore_for_state(&groups);
        }
        self.start(groups, &BTreeSet::new());
    }

    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<(RuleSet, Vec<(String, String)>)>,
    ) {
        let mut fingerprint = self.set.fingerprint();
        let mut poll = tokio::time::interval(POLL_PERIOD);
        let mut save = tokio::time::interval(SAVE_PERIOD);
        save.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                Some((set, external_labels)) = requests.recv() => {
                    self.set = set;
                    self.context = Arc::new(Context {
                        external_labels,
                        ..(*self.context).clone()
                    });
                    self.reload("signal");
                    fingerprint = self.set.fingerprint();
                }
                _ = poll.tick() => {
                    let now = self.set.fingerprint();
                    if now != fingerprint {
                        fingerprint = now;
                        self.reload("file change");
                    }
                }
                _ = save.tick() => self.save().await,
            }
        }
        self.running.cancel();
        self.save().await;
    }

    /// Loads and validates the rule set; starts it only if every file is valid.
    fn reload(&mut self, cause: &str) {
        let (groups, errors) = self.set.load();
        if !errors.is_empty() {
            for problem in &errors {
                error!(error = %problem, cause, "Rule reload refused; the previous rules keep running.");
            }
            metrics::gauge!("prismwatch_rules_last_reload_successful").set(0.0);
            return;
        }
        let old_sources: BTreeSet<String> = self.sources();
        self.running.cancel();
        self.start(groups, &old_sources);
        metrics::gauge!("prismwatch_rules_last_reload_successful").set(1.0);
        info!(
            cause,
            groups = self.view.read().map(|v| v.len()).unwrap_or(0),
            "Rules reloaded."
        );
    }

    /// History sources of the running rules.
    fn sources(&self) -> BTreeSet<String> {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        view.iter()
            .flat_map(|loaded| {
                loaded
                    .group
                    .rules
                    .iter()
                    .map(|rule| rule.source.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Applies Prometheus' `for` restoration to the state read from disk (see
    /// [`super::alert::RuleAlerts::restore`]).
    fn restore_for_state(&self, groups: &[Group]) {
        let now = now_ms();
        for group in groups {
            let Some(state) = self.states.get(&group_key(group)) else {
                continue;
            };
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            for rule in &group.rules {
                if let super::RuleKind::Alert { hold, .. } = &rule.kind
                    && let Some(alerts) = state.rules.get_mut(&rule.key)
                {
                    alerts.restore(now, hold.as_millis() as i64, FOR_GRACE_PERIOD_MS);
                }
            }
        }
    }

    /// Starts one task per group; series of rules that are gone end now.
    fn start(&mut self, groups: Vec<Group>, old_sources: &BTreeSet<String>) {
        self.running = self.shutdown.child_token();
        let mut loaded = Vec::with_capacity(groups.len());
        for group in groups {
            let key = group_key(&group);
            let state = Arc::clone(self.states.entry(key).or_default());
            let interval = group
                .interval
                .filter(|d| !d.is_zero())
                .unwrap_or(DEFAULT_INTERVAL);
            loaded.push(LoadedGroup {
                group: Arc::new(group),
                state,
                interval,
            });
        }
        let live: BTreeSet<String> = loaded.iter().map(|l| group_key(&l.group)).collect();
        self.states.retain(|key, _| live.contains(key));
        for group in &loaded {
            let task = run_group(
                group.clone(),
                self.persistence.store.clone(),
                Arc::clone(&self.history),
                Arc::clone(&self.context),
                self.running.clone(),
            );
            let span = info_span!("rule_group", group = %group.group.name);
            self.tracker.spawn(task.instrument(span));
        }
        if let Ok(mut view) = self.view.write() {
            *view = loaded;
        }
        let now_sources = self.sources();
        let now = now_ms();
        if let Ok(mut history) = self.history.write() {
            for source in old_sources.difference(&now_sources) {
                history.retire_source(source, now);
            }
        }
    }

    /// Writes the alert state of every group not evaluating right now (those are written
    /// at their next transition or save) in one transaction, and drops groups that are gone.
    /// The groups' locks are held until the write is queued, so a transition a group task
    /// writes later is queued later and never overwritten by this older copy.
    async fn save(&self) {
        let live: Vec<String> = self.states.keys().cloned().collect();
        let queued = {
            let guards: Vec<_> = self
                .states
                .iter()
                .filter_map(|(key, state)| match state.try_lock() {
                    Ok(guard) => Some((key, guard)),
                    Err(std::sync::TryLockError::Poisoned(e)) => Some((key, e.into_inner())),
                    Err(std::sync::TryLockError::WouldBlock) => None,
                })
                .collect();
            let rows = guards
                .iter()
                .map(|(key, state)| saved::row(key, state))
                .collect::<Result<Vec<_>, _>>();
            let now = now_ms();
            match rows {
                Ok(rows) => self
                    .persistence
                    .store
                    .submit(move |c| saved::write_live(c, &rows, &live, now))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        };
        let result = match queued {
            Ok(answer) => match answer.await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err("the state store is closed".to_string()),
            },
            Err(problem) => Err(problem),
        };
        if let Err(problem) = result {
            warn!(error = %problem, "Cannot save the alert state; it is saved again at the next transition.");
        }
    }
}

/// A group's identity across reloads and restarts: its file and name, as Prometheus' `rule_group`.
pub fn group_key(group: &Group) -> String {
    format!("{};{}", group.file.display(), group.name)
}

/// Evaluates one group on its interval until cancelled.
async fn run_group(
    loaded: LoadedGroup,
    store: Store,
    history: Arc<RwLock<History>>,
    context: Arc<Context>,
    cancel: CancellationToken,
) {
    let label = group_key(&loaded.group);
    let notify = context.notify.clone();
    let interval_ms = loaded.interval.as_millis() as i64;
    metrics::gauge!("prismwatch_rule_group_interval_seconds", "rule_group" => label.clone())
        .set(loaded.interval.as_secs_f64());
    metrics::gauge!("prismwatch_rule_group_rules", "rule_group" => label.clone())
        .set(loaded.group.rules.len() as f64);
    let mut tick = tokio::time::interval(loaded.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut previous: Option<i64> = None;
    let mut last_errors: BTreeMap<String, String> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let ts = now_ms();
        if let Some(previous) = previous {
            let missed = (ts - previous) / interval_ms - 1;
            if missed > 0 {
                metrics::counter!("prismwatch_rule_group_iterations_missed_total", "rule_group" => label.clone())
                    .increment(missed as u64);
            }
        }
        previous = Some(ts);
        let started = Instant::now();
        let (group, state, source, context, store, key) = (
            Arc::clone(&loaded.group),
            Arc::clone(&loaded.state),
            Arc::clone(&history),
            Arc::clone(&context),
            store.clone(),
            label.clone(),
        );
        let outcomes = tokio::task::spawn_blocking(move || {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            let before = state.clone();
            let outcomes = engine::evaluate_group(&*source, &group, ts, &mut state, &context);
            // Durable before the notifier hears of it (the lock is held until it is).
            if state.transitioned_from(&before) {
                let written = saved::row(&key, &state)
                    .map_err(|e| e.to_string())
                    .and_then(|row| {
                        store
                            .call_blocking(move |c| saved::write(c, &[row], ts))
                            .map_err(|e| e.to_string())
                    });
                if let Err(problem) = written {
                    warn!(group = %key, error = %problem, "Cannot save an alert transition; a restart before the next save may repeat or miss its notification.");
                }
            }
            outcomes
        })
        .await;
        let elapsed = started.elapsed().as_secs_f64();
        metrics::counter!("prismwatch_rule_group_iterations_total", "rule_group" => label.clone())
            .increment(1);
        metrics::gauge!("prismwatch_rule_group_last_duration_seconds", "rule_group" => label.clone())
            .set(elapsed);
        metrics::histogram!("prismwatch_rule_group_duration_seconds", "rule_group" => label.clone())
            .record(elapsed);
        metrics::gauge!("prismwatch_rule_group_last_evaluation_timestamp_seconds", "rule_group" => label.clone())
            .set(ts as f64 / 1000.0);
        let Ok(outcomes) = outcomes else {
            error!("A rule group evaluation panicked; it runs again at the next interval.");
            continue;
        };
        if let Some(notify) = &notify {
            notify.send_group(&loaded.group, &loaded.state, ts, loaded.interval);
        }
        for outcome in outcomes {
            match outcome.error {
                Some(message) => {
                    metrics::counter!("prismwatch_rule_evaluation_failures_total", "rule_group" => label.clone())
                        .increment(1);
                    // One log line when a rule starts failing or fails differently, not one per interval.
                    if last_errors.get(&outcome.name) != Some(&message) {
                        warn!(rule = %outcome.name, error = %message, "Rule evaluation failed.");
                        last_errors.insert(outcome.name, message);
                    }
                }
                None => {
                    if last_errors.remove(&outcome.name).is_some() {
                        info!(rule = %outcome.name, "Rule evaluates again.");
                    }
                }
            }
        }
    }
}
