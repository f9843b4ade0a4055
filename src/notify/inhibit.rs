//! Inhibition: a firing alert matching a rule's source side mutes alerts matching its target
//! side that share the `equal` labels (Alertmanager's inhibit.go).

use crate::model::Labels;
use crate::notify::alert::Alert;
use crate::notify::matcher::{self, Matcher};

/// One validated inhibit rule.
#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// The inhibit rules of a configuration.
#[derive(Clone, Debug, Default)]
pub struct Inhibitor {
    pub rules: Vec<InhibitRule>,
}

impl Inhibitor {
    pub fn from_config(config: &crate::notify::config::AlertingConfig) -> Inhibitor {
        Inhibitor {
            rules: config.inhibit_rules.clone(),
        }
    }

    /// True when some firing alert inhibits an alert with these labels at `now_ms`. An alert
    /// matching both sides of a rule is not muted by another alert matching both sides, so two
    /// such alerts cannot mute each other.
    pub fn mutes(&self, labels: &Labels, firing: &[Alert], now_ms: i64) -> bool {
        self.rules.iter().any(|rule| {
            if !matcher::matches_all(&rule.target_matchers, labels) {
                return false;
            }
            let two_sided = matcher::matches_all(&rule.source_matchers, labels);
            firing.iter().any(|source| {
                !source.is_resolved_at(now_ms)
                    && matcher::matches_all(&rule.source_matchers, &source.labels)
                    && rule.equal.iter().all(|name| {
                        source.labels.get(name).unwrap_or("") == labels.get(name).unwrap_or("")
                    })
                    && !(two_sided && matcher::matches_all(&rule.target_matchers, &source.labels))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::matcher::parse_matchers;

    fn alert(labels: &[(&str, &str)], ends_at_ms: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs(labels.iter().copied()),
            annotations: Labels::from_pairs(Vec::<(String, String)>::new()),
            starts_at_ms: 0,
            ends_at_ms,
            generator_url: String::new(),
            updated_at_ms: 0,
        }
    }

    fn inhibitor(source: &str, target: &str, equal: &[&str]) -> Inhibitor {
        Inhibitor {
            rules: vec![InhibitRule {
                source_matchers: parse_matchers(source).expect("source"),
                target_matchers: parse_matchers(target).expect("target"),
                equal: equal.iter().map(|s| s.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn a_critical_alert_mutes_warnings_of_the_same_instance() {
        let rules = inhibitor("severity=critical", "severity=warning", &["instance"]);
        let critical = alert(&[("severity", "critical"), ("instance", "db1")], 0);
        let warning_same = Labels::from_pairs([("severity", "warning"), ("instance", "db1")]);
        let warning_other = Labels::from_pairs([("severity", "warning"), ("instance", "db2")]);
        assert!(rules.mutes(&warning_same, std::slice::from_ref(&critical), 10));
        assert!(!rules.mutes(&warning_other, std::slice::from_ref(&critical), 10));
        // A resolved source mutes nothing.
        let resolved = alert(&[("severity", "critical"), ("instance", "db1")], 5);
        assert!(!rules.mutes(&warning_same, &[resolved], 10));
        // Equal labels missing on both sides are equal.
        let rules = inhibitor("severity=critical", "severity=warning", &["cluster"]);
        assert!(rules.mutes(&warning_other, &[critical], 10));
    }

    #[test]
    fn alerts_matching_both_sides_do_not_mute_each_other() {
        let rules = inhibitor("alertname=Down", "alertname=Down", &[]);
        let a = alert(&[("alertname", "Down"), ("instance", "a")], 0);
        let b = Labels::from_pairs([("alertname", "Down"), ("instance", "b")]);
        assert!(!rules.mutes(&b, &[a], 10));
    }
}
