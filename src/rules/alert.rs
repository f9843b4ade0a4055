//! The alert life cycle of one alerting rule: inactive -> pending -> firing -> resolved, with
//! `for` and `keep_firing_for`, one alert per label set, as Prometheus' `AlertingRule.Eval`
//! (rules/alerting.go). Pure: the evaluation time and the expression's result come in; the
//! state serialises so a restart does not start `for` over or resolve and re-fire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How long a resolved alert is kept (and reported as resolved), as Prometheus does.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertState {
    Pending,
    Firing,
    /// Resolved (Prometheus' "inactive" with a resolved time).
    Resolved,
}

/// One alert: a label set of the rule's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: Vec<(String, String)>,
    pub state: AlertState,
    /// Saved as a number, or `"+Inf"`/`"-Inf"`/`"NaN"` (JSON has no such numbers).
    #[serde(with = "crate::state_file::float")]
    pub value: f64,
    /// When the expression first returned this label set (ms since the epoch). A restart never
    /// moves it: it is what `activeAt` and `ALERTS_FOR_STATE` report.
    pub active_at: i64,
    /// When `for` started counting, if not at `active_at`: a restart that postponed firing (see
    /// [`RuleAlerts::restore`]) sets it, so the downtime does not count without rewriting when
    /// the alert became active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_from: Option<i64>,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// Since when the expression stopped returning it while `keep_firing_for` holds it.
    pub keep_firing_since: Option<i64>,
    pub last_seen: i64,
    /// Annotations rendered at the last evaluation that returned this alert.
    #[serde(default)]
    pub annotations: Vec<(String, String)>,
}

/// Label pairs of a series, sorted.
pub type LabelPairs = Vec<(String, String)>;

/// The labels of an `ALERTS` sample (with `alertstate`), of its `ALERTS_FOR_STATE` sample, and
/// the time the alert became active in seconds (the value of `ALERTS_FOR_STATE`).
pub type AlertSeries = (LabelPairs, LabelPairs, f64);

/// Every alert of one rule. Saved as a list (JSON maps need string keys).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<Alert>", into = "Vec<Alert>")]
pub struct RuleAlerts {
    alerts: BTreeMap<Vec<(String, String)>, Alert>,
}

impl From<Vec<Alert>> for RuleAlerts {
    fn from(alerts: Vec<Alert>) -> RuleAlerts {
        RuleAlerts {
            alerts: alerts.into_iter().map(|a| (a.labels.clone(), a)).collect(),
        }
    }
}

impl From<RuleAlerts> for Vec<Alert> {
    fn from(rule: RuleAlerts) -> Vec<Alert> {
        rule.alerts.into_values().collect()
    }
}

impl RuleAlerts {
    /// Applies one evaluation at `now`: `results` are the label sets (rule labels applied,
    /// `__name__` removed, sorted) and values the expression returned.
    pub fn evaluate(
        &mut self,
        now: i64,
        results: Vec<(Vec<(String, String)>, f64)>,
        hold_ms: i64,
        keep_firing_for_ms: i64,
    ) {
        self.evaluate_holding(now, results, hold_ms, keep_firing_for_ms, false);
    }

    /// As [`RuleAlerts::evaluate`]; with `hold_missing`, alerts the expression did not return
    /// are left as they are instead of resolving. The daemon holds them while the history
    /// refills after a restart, so a firing alert does not resolve and fire again.
    pub fn evaluate_holding(
        &mut self,
        now: i64,
        results: Vec<(Vec<(String, String)>, f64)>,
        hold_ms: i64,
        keep_firing_for_ms: i64,
        hold_missing: bool,
    ) {
        let mut seen = std::collections::BTreeSet::new();
        for (labels, value) in results {
            seen.insert(labels.clone());
            match self.alerts.get_mut(&labels) {
                Some(alert) if alert.state != AlertState::Resolved => {
                    alert.value = value;
                    alert.last_seen = now;
                    alert.keep_firing_since = None;
                }
                _ => {
                    // New, or active again after resolving: a new alert, as in Prometheus.
                    self.alerts.insert(
                        labels.clone(),
                        Alert {
                            labels,
                            state: AlertState::Pending,
                            value,
                            active_at: now,
                            hold_from: None,
                            fired_at: None,
                            resolved_at: None,
                            keep_firing_since: None,
                            last_seen: now,
                            annotations: Vec::new(),
                        },
                    );
                }
            }
        }
        self.alerts.retain(|labels, alert| {
            if seen.contains(labels) || hold_missing {
                return true;
            }
            match alert.state {
                // A pending alert whose condition cleared never fired: forget it.
                AlertState::Pending => false,
                AlertState::Firing => {
                    let since = *alert.keep_firing_since.get_or_insert(now);
                    if keep_firing_for_ms > 0 && now - since < keep_firing_for_ms {
                        return true;
                    }
                    alert.state = AlertState::Resolved;
                    alert.resolved_at = Some(now);
                    alert.keep_firing_since = None;
                    true
                }
                AlertState::Resolved => alert
                    .resolved_at
                    .is_some_and(|at| now - at < RESOLVED_RETENTION_MS),
            }
        });
        for alert in self.alerts.values_mut() {
            if alert.state == AlertState::Pending
                && alert.last_seen == now
                && now - alert.hold_from.unwrap_or(alert.active_at) >= hold_ms
            {
                alert.state = AlertState::Firing;
                alert.fired_at = Some(now);
            }
        }
    }

    /// Adjusts restored pending alerts after a restart at `now`, as Prometheus'
    /// `RestoreForState`: the time the daemon was down (since the alert was last seen) does not
    /// count towards `for`, and an alert that was about to fire gets at least `grace_ms` after
    /// the restart before it does. Rules whose `for` is within the grace period, and alerts
    /// that were already firing, are left as they were.
    pub fn restore(&mut self, now: i64, hold_ms: i64, grace_ms: i64) {
        if hold_ms <= grace_ms {
            return;
        }
        for alert in self.alerts.values_mut() {
            if alert.state != AlertState::Pending {
                continue;
            }
            let down_at = alert.last_seen;
            let counted_from = alert.hold_from.unwrap_or(alert.active_at);
            let remaining = hold_ms - (down_at - counted_from);
            if remaining <= 0 {
                continue;
            }
            alert.hold_from = Some(if remaining < grace_ms {
                now + grace_ms - hold_ms
            } else {
                counted_from + (now - down_at)
            });
        }
    }

    /// Sets the annotations rendered for an alert at this evaluation.
    pub fn annotate(&mut self, labels: &[(String, String)], annotations: Vec<(String, String)>) {
        if let Some(alert) = self.alerts.get_mut(labels) {
            alert.annotations = annotations;
        }
    }

    /// Alerts in label order, resolved ones included until their retention ends.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// The `ALERTS` and `ALERTS_FOR_STATE` samples Prometheus writes for active alerts:
    /// (labels of ALERTS with alertstate, labels of ALERTS_FOR_STATE, active_at in seconds).
    pub fn series(&self, alertname: &str) -> Vec<AlertSeries> {
        self.alerts
            .values()
            .filter(|a| a.state != AlertState::Resolved)
            .map(|alert| {
                let mut for_state = alert.labels.clone();
                for_state.push(("alertname".to_string(), alertname.to_string()));
                for_state.sort();
                let mut alerts = for_state.clone();
                let state = if alert.state == AlertState::Firing {
                    "firing"
                } else {
                    "pending"
                };
                alerts.push(("alertstate".to_string(), state.to_string()));
                alerts.sort();
                (alerts, for_state, alert.active_at as f64 / 1000.0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    fn labels(instance: &str) -> Vec<(String, String)> {
        vec![("instance".to_string(), instance.to_string())]
    }

    fn states(rule: &RuleAlerts) -> Vec<(String, AlertState)> {
        rule.alerts()
            .map(|a| (a.labels[0].1.clone(), a.state))
            .collect()
    }

    #[test]
    fn pending_becomes_firing_after_for_and_resolves_when_cleared() {
        let mut rule = RuleAlerts::default();
        rule.evaluate(0, vec![(labels("a"), 1.0)], 5 * MINUTE, 0);
        assert_eq!(states(&rule), vec![("a".into(), AlertState::Pending)]);
        rule.evaluate(4 * MINUTE, vec![(labels("a"), 1.0)], 5 * MINUTE, 0);
        assert_eq!(states(&rule), vec![("a".into(), AlertState::Pending)]);
        rule.evaluate(5 * MINUTE, vec![(labels("a"), 2.0)], 5 * MINUTE, 0);
        assert_eq!(states(&rule), vec![("a".into(), AlertState::Firing)]);
        assert_eq!(
            rule.series("HighLoad")[0]
                .0
                .iter()
                .find(|(k, _)| k == "alertstate")
                .map(|(_, v)| v.as_str()),
            Some("firing")
        );
        rule.evaluate(6 * MINUTE, vec![], 5 * MINUTE, 0);
        assert_eq!(states(&rule), vec![("a".into(), AlertState::Resolved)]);
        assert!(rule.series("HighLoad").is_empty());
        // Kept as resolved for 15 minutes, then forgotten.
        rule.evaluate(6 * MINUTE + RESOLVED_RETENTION_MS, vec![], 5 * MINUTE, 0);
        assert!(states(&rule).is_empty());
    }

    #[test]
    fn a_pending_alert_that_clears_is_forgotten_and_for_zero_fires_at_once() {
        let mut rule = RuleAlerts::default();
        rule.evaluate(0, vec![(labels("a"), 1.0)], 5 * MINUTE, 0);
        rule.evaluate(MINUTE, vec![], 5 * MINUTE, 0);
        assert!(states(&rule).is_empty());
        rule.evaluate(2 * MINUTE, vec![(labels("b"), 1.0)], 0, 0);
        assert_eq!(states(&rule), vec![("b".into(), AlertState::Firing)]);
    }

    #[test]
    fn holding_keeps_missing_alerts_as_they_are() {
        let mut rule = RuleAlerts::default();
        rule.evaluate(0, vec![(labels("a"), 1.0), (labels("b"), 1.0)], 0, 0);
        rule.evaluate_holding(MINUTE, vec![], 0, 0, true);
        assert_eq!(
            states(&rule),
            vec![
                ("a".into(), AlertState::Firing),
                ("b".into(), AlertState::Firing)
            ]
        );
        rule.evaluate(2 * MINUTE, vec![(labels("a"), 1.0)], 0, 0);
        assert_eq!(
            states(&rule),
            vec![
                ("a".into(), AlertState::Firing),
                ("b".into(), AlertState::Resolved)
            ]
        );
    }

    #[test]
    fn restoring_does_not_count_the_downtime_towards_for() {
        let hour = 60 * MINUTE;
        let grace = 10 * MINUTE;
        let mut rule = RuleAlerts::default();
        // Pending for 20 of its 60 minutes when the daemon stopped; back 2 hours later.
        rule.evaluate(0, vec![(labels("a"), 1.0)], hour, 0);
        rule.evaluate(20 * MINUTE, vec![(labels("a"), 1.0)], hour, 0);
        let mut restored = rule.clone();
        restored.restore(140 * MINUTE, hour, grace);
        let hold_from = restored.alerts().next().and_then(|a| a.hold_from);
        assert_eq!(hold_from, Some(120 * MINUTE), "40 minutes still to go");
        let firing_at = |mut rule: RuleAlerts, from: i64| {
            (from..from + 2 * hour)
                .step_by(MINUTE as usize)
                .find(|now| {
                    rule.evaluate(*now, vec![(labels("a"), 1.0)], hour, 0);
                    states(&rule) == vec![("a".into(), AlertState::Firing)]
                })
        };
        assert_eq!(
            firing_at(restored.clone(), 140 * MINUTE),
            Some(180 * MINUTE)
        );
        // A second restart counts from the postponed start, not from `active_at` again.
        let mut again = restored.clone();
        again.evaluate(150 * MINUTE, vec![(labels("a"), 1.0)], hour, 0);
        again.restore(160 * MINUTE, hour, grace);
        assert_eq!(
            again.alerts().next().and_then(|a| a.hold_from),
            Some(130 * MINUTE)
        );
        // 55 of 60 minutes pending: it fires no earlier than the grace period after restart.
        rule.evaluate(55 * MINUTE, vec![(labels("a"), 1.0)], hour, 0);
        let mut restored = rule.clone();
        restored.restore(140 * MINUTE, hour, grace);
        let hold_from = restored.alerts().next().and_then(|a| a.hold_from);
        assert_eq!(hold_from, Some(140 * MINUTE + grace - hour));
        assert_eq!(firing_at(restored, 140 * MINUTE), Some(150 * MINUTE));
    }

    /// `activeAt` is when the alert became active; a restart postpones firing without moving it.
    #[test]
    fn restoring_never_moves_active_at() {
        let hour = 60 * MINUTE;
        let mut rule = RuleAlerts::default();
        rule.evaluate(0, vec![(labels("a"), 1.0)], hour, 0);
        rule.evaluate(20 * MINUTE, vec![(labels("a"), 1.0)], hour, 0);
        rule.restore(20 * MINUTE + 5_000, hour, 10 * MINUTE);
        assert_eq!(rule.alerts().next().map(|a| a.active_at), Some(0));
        assert_eq!(rule.series("A")[0].2, 0.0, "ALERTS_FOR_STATE keeps it too");
        let grace = 10 * MINUTE;
        // A short `for` is left alone.
        let mut short = RuleAlerts::default();
        short.evaluate(0, vec![(labels("a"), 1.0)], 5 * MINUTE, 0);
        let before = short.clone();
        short.restore(60 * MINUTE, 5 * MINUTE, grace);
        assert_eq!(short, before);
    }

    #[test]
    fn keep_firing_for_holds_a_cleared_alert() {
        let mut rule = RuleAlerts::default();
        rule.evaluate(0, vec![(labels("a"), 1.0)], 0, 10 * MINUTE);
        rule.evaluate(MINUTE, vec![], 0, 10 * MINUTE);
        rule.evaluate(10 * MINUTE, vec![], 0, 10 * MINUTE);
        assert_eq!(states(&rule), vec![("a".into(), AlertState::Firing)]);
        rule.evaluate(11 * MINUTE, vec![], 0, 10 * MINUTE);
        assert_eq!(states(&rule), vec![("a".into(), AlertState::Resolved)]);
    }

    #[test]
    fn state_survives_serialisation_so_for_does_not_start_over() -> Result<(), String> {
        let mut rule = RuleAlerts::default();
        rule.evaluate(0, vec![(labels("a"), 1.0)], 10 * MINUTE, 0);
        let saved = serde_json::to_string(&rule).map_err(|e| e.to_string())?;
        let mut restored: RuleAlerts = serde_json::from_str(&saved).map_err(|e| e.to_string())?;
        restored.evaluate(10 * MINUTE, vec![(labels("a"), 1.0)], 10 * MINUTE, 0);
        assert_eq!(states(&restored), vec![("a".into(), AlertState::Firing)]);
        assert_eq!(restored.alerts().next().map(|a| a.active_at), Some(0));
        Ok(())
    }
}
