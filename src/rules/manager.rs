//! Runs the rule groups inside the daemon. An actor owns the loaded rules: each group runs in
//! its own task on its own interval (evaluation on the blocking pool, so a slow group delays
//! nobody else), alert state is saved in the state directory and restored at start, and the
//! rules are reloaded on request (SIGHUP) or when a rule file changes. A reload validates the
//! new files first; if any is broken the old rules keep running.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, error, info, info_span, warn};

use super::engine::{self, Context, GroupState};
use super::{Group, RuleError};
use crate::collector::now_ms;
use crate::history::History;

/// Interval of a group that sets none (Prometheus' global default is 1m; an agent on the host
/// can afford to look more often).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// After a restart, a pending alert fires no earlier than this (Prometheus'
/// `--rules.alert.for-grace-period`, 10m).
const FOR_GRACE_PERIOD_MS: i64 = 10 * 60 * 1000;

/// Alert state of every group, in the state directory.
pub const STATE_FILE: &str = "rules-state.json";

/// How often rule files are checked for changes, and state saved.
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

/// Starts the rules actor.
pub fn spawn(
    set: RuleSet,
    history: Arc<RwLock<History>>,
    state_dir: &Path,
    context: Context,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> RulesHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let view: RulesView = Arc::default();
    let state_path = state_dir.join(STATE_FILE);
    let (saved, save_blocked) = load_state(&state_path);
    let context = Arc::new(Context {
        restored_at: (!saved.is_empty()).then(now_ms),
        ..context
    });
    let actor = Actor {
        set,
        history,
        state_path,
        save_blocked,
        states: saved,
        context,
        running: CancellationToken::new(),
        view: Arc::clone(&view),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
    };
    tracker.spawn(actor.run(rx).instrument(info_span!("rules")));
    RulesHandle { reload: tx, view }
}

struct Actor {
    set: RuleSet,
    history: Arc<RwLock<History>>,
    state_path: PathBuf,
    /// Set when the saved state could not be read nor moved aside: it is never written over.
    save_blocked: bool,
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
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<(RuleSet, Vec<(String, String)>)>,
    ) {
        let (groups, errors) = self.set.load();
        for problem in &errors {
            error!(error = %problem, "A rule file has an error; its rules are not evaluated.");
        }
        if self.context.restored_at.is_some() {
            self.restore_for_state(&groups);
        }
        self.start(groups, &BTreeSet::new());
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
                _ = save.tick() => self.save(),
            }
        }
        self.running.cancel();
        self.save();
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

    /// Writes every group's alert state durably (see `state_file::write_durable`), unless the
    /// file on disk could not be read and must be kept.
    fn save(&self) {
        if self.save_blocked {
            return;
        }
        let snapshot: BTreeMap<&String, GroupState> = self
            .states
            .iter()
            .map(|(key, state)| (key, state.lock().unwrap_or_else(|e| e.into_inner()).clone()))
            .collect();
        let result = serde_json::to_vec(&snapshot)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::state_file::write_durable(&self.state_path, &bytes));
        if let Err(problem) = result {
            warn!(path = %self.state_path.display(), error = %problem, "Cannot save the alert state; alerts would restart their `for` after a restart.");
        }
    }
}

/// A group's identity across reloads and restarts: its file and name, as Prometheus' `rule_group`.
pub fn group_key(group: &Group) -> String {
    format!("{};{}", group.file.display(), group.name)
}

/// The saved state, and whether saving must stay off because an unreadable file could not be
/// moved aside (it is then left untouched for a person to look at).
fn load_state(path: &Path) -> (BTreeMap<String, Arc<Mutex<GroupState>>>, bool) {
    use crate::state_file::Loaded;
    match crate::state_file::load_json::<BTreeMap<String, GroupState>>(path) {
        Loaded::Missing => (BTreeMap::new(), false),
        Loaded::Read(states) => (
            states
                .into_iter()
                .map(|(key, state)| (key, Arc::new(Mutex::new(state))))
                .collect(),
            false,
        ),
        Loaded::SetAside { error, kept_as } => {
            error!(path = %path.display(), kept_as = %kept_as.display(), %error, "The saved alert state is unreadable; it was moved aside and alerts start with no state.");
            (BTreeMap::new(), false)
        }
        Loaded::Stuck { error } => {
            error!(path = %path.display(), %error, "The saved alert state is unreadable and cannot be moved aside; it is left as it is and alert state is not saved until it is fixed or removed.");
            (BTreeMap::new(), true)
        }
    }
}

/// Evaluates one group on its interval until cancelled.
async fn run_group(
    loaded: LoadedGroup,
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
        let (group, state, store, context) = (
            Arc::clone(&loaded.group),
            Arc::clone(&loaded.state),
            Arc::clone(&history),
            Arc::clone(&context),
        );
        let outcomes = tokio::task::spawn_blocking(move || {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            engine::evaluate_group(&*store, &group, ts, &mut state, &context)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::alert::{Alert, AlertState, RuleAlerts};

    fn state_with_value(value: f64) -> BTreeMap<String, GroupState> {
        let alert = Alert {
            labels: vec![("alertname".into(), "X".into())],
            state: AlertState::Firing,
            value,
            active_at: 1_000,
            fired_at: Some(2_000),
            resolved_at: None,
            keep_firing_since: None,
            last_seen: 3_000,
            hold_from: None,
            annotations: Vec::new(),
        };
        let group = GroupState {
            rules: [("r".to_string(), RuleAlerts::from(vec![alert]))].into(),
        };
        [("file;group".to_string(), group)].into()
    }

    #[test]
    fn an_infinite_alert_value_survives_a_save_and_a_load() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(STATE_FILE);
        for value in [f64::INFINITY, f64::NEG_INFINITY, 2.5] {
            let saved = state_with_value(value);
            let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
            crate::state_file::write_durable(&path, &bytes)?;
            let (loaded, blocked) = load_state(&path);
            assert!(!blocked);
            let loaded: BTreeMap<String, GroupState> = loaded
                .into_iter()
                .map(|(k, v)| (k, v.lock().map(|s| s.clone()).unwrap_or_default()))
                .collect();
            assert_eq!(loaded, saved);
        }
        Ok(())
    }

    #[test]
    fn unreadable_alert_state_is_set_aside_each_time_under_its_own_name() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(STATE_FILE);
        for (n, text) in ["{ first", "{ second"].iter().enumerate() {
            std::fs::write(&path, text)?;
            let (loaded, blocked) = load_state(&path);
            assert!(loaded.is_empty() && !blocked);
            let kept = dir
                .path()
                .join(format!("{STATE_FILE}.unreadable-{}", n + 1));
            assert_eq!(std::fs::read_to_string(kept)?, *text);
        }
        assert!(!path.exists());
        Ok(())
    }
}
