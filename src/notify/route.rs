//! The routing tree: Alertmanager's depth-first match with `continue`, options inherited from
//! the parent, and the route key that names a route in group keys.

use std::time::Duration;

use crate::model::Labels;
use crate::notify::matcher::{self, Matcher};

/// Alertmanager's defaults for a root route that sets no timing.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// How a route groups its alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// `group_by: ['...']`: every label, so each alert is its own group.
    All,
    /// These labels (none: all of the route's alerts in one group).
    Labels(Vec<String>),
}

/// One node of the validated routing tree, with its options already inherited.
#[derive(Clone, Debug)]
pub struct Route {
    pub receiver: String,
    /// Sorted in Alertmanager's order (so the key is the same as Alertmanager's).
    pub matchers: Vec<Matcher>,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub continue_matching: bool,
    /// Not inherited, as in Alertmanager.
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<Route>,
    /// The configuration line of the route, for messages.
    pub line: usize,
    key: String,
}

/// A route's own settings before inheritance, as the configuration gives them.
#[derive(Clone, Debug, Default)]
pub struct RouteSpec {
    pub receiver: Option<String>,
    pub matchers: Vec<Matcher>,
    pub group_by: Option<GroupBy>,
    pub group_wait: Option<Duration>,
    pub group_interval: Option<Duration>,
    pub repeat_interval: Option<Duration>,
    pub continue_matching: bool,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<RouteSpec>,
    pub line: usize,
}

impl Route {
    /// Builds the tree from the root's specification, inheriting as Alertmanager's `NewRoute`.
    pub fn from_spec(spec: &RouteSpec) -> Route {
        let root = Route {
            receiver: String::new(),
            matchers: Vec::new(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            continue_matching: false,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            routes: Vec::new(),
            line: 0,
            key: String::new(),
        };
        Route::child(spec, &root, None)
    }

    fn child(spec: &RouteSpec, parent: &Route, parent_key: Option<&str>) -> Route {
        let mut matchers = spec.matchers.clone();
        matchers.sort();
        let own = matcher::display_list(&matchers);
        let key = match parent_key {
            Some(parent_key) => format!("{parent_key}/{own}"),
            None => own,
        };
        let mut route = Route {
            receiver: spec
                .receiver
                .clone()
                .unwrap_or_else(|| parent.receiver.clone()),
            matchers,
            group_by: spec
                .group_by
                .clone()
                .unwrap_or_else(|| parent.group_by.clone()),
            group_wait: spec.group_wait.unwrap_or(parent.group_wait),
            group_interval: spec.group_interval.unwrap_or(parent.group_interval),
            repeat_interval: spec.repeat_interval.unwrap_or(parent.repeat_interval),
            continue_matching: spec.continue_matching,
            mute_time_intervals: spec.mute_time_intervals.clone(),
            active_time_intervals: spec.active_time_intervals.clone(),
            routes: Vec::new(),
            line: spec.line,
            key,
        };
        route.routes = spec
            .routes
            .iter()
            .map(|child| Route::child(child, &route, Some(&route.key)))
            .collect();
        route
    }

    /// The routes an alert with these labels goes to: depth first, a matching child stops the
    /// search among its siblings unless it has `continue`, and a matching route none of whose
    /// children match is itself the answer (Alertmanager's `Route.Match`).
    pub fn matching(&self, labels: &Labels) -> Vec<&Route> {
        if !matcher::matches_all(&self.matchers, labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let matched = child.matching(labels);
            let any = !matched.is_empty();
            all.extend(matched);
            if any && !child.continue_matching {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// Alertmanager's route key: the parent's key, `/`, and this route's sorted matchers.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The labels of an alert this route groups on.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => Labels::from_pairs(names.iter().filter_map(|name| {
                labels
                    .get(name)
                    .map(|value| (name.clone(), value.to_string()))
            })),
        }
    }

    /// Every route of the tree, depth first, this one included.
    pub fn walk(&self) -> Vec<&Route> {
        let mut all = vec![self];
        for child in &self.routes {
            all.extend(child.walk());
        }
        all
    }
}

/// A label set in Alertmanager's (prometheus/common) form: `{a="b", c="d"}`.
pub fn display_labels(labels: &Labels) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::notify::config::AlertingConfig;
    use crate::notify::tool::parse_labels;

    const TREE: &str = r#"
route:
  receiver: root
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
      repeat_interval: 1h
    - matchers: ['team=~"db|cache"']
      receiver: db
      group_by: ['...']
      routes:
        - match: {service: postgres}
          group_interval: 1m
    - matchers: ['team="db"']
      receiver: never-reached
receivers: [{name: root}, {name: pager}, {name: db}, {name: never-reached}]
"#;

    fn tree() -> Route {
        AlertingConfig::parse(Path::new("t.yml"), TREE)
            .expect("valid")
            .route
    }

    /// The (receiver, key) of each route the labels reach.
    fn check(labels: &[&str], expected: &[(&str, &str)]) {
        let tree = tree();
        let args: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let labels = parse_labels(&args).expect("labels");
        let got: Vec<(&str, &str)> = tree
            .matching(&labels)
            .iter()
            .map(|r| (r.receiver.as_str(), r.key()))
            .collect();
        assert_eq!(got, expected, "{args:?}");
    }

    #[test]
    fn depth_first_with_continue_and_the_parent_as_fallback() {
        check(&["alertname=X"], &[("root", "{}")]);
        check(
            &["severity=critical"],
            &[("pager", r#"{}/{severity="critical"}"#)],
        );
        check(
            &["severity=critical", "team=db"],
            &[
                ("pager", r#"{}/{severity="critical"}"#),
                ("db", r#"{}/{team=~"db|cache"}"#),
            ],
        );
        check(
            &["team=db", "service=postgres"],
            &[("db", r#"{}/{team=~"db|cache"}/{service="postgres"}"#)],
        );
    }

    #[test]
    fn options_are_inherited_with_alertmanagers_defaults() {
        let tree = tree();
        assert_eq!(tree.group_wait, Duration::from_secs(10));
        assert_eq!(tree.group_interval, DEFAULT_GROUP_INTERVAL);
        assert_eq!(tree.repeat_interval, DEFAULT_REPEAT_INTERVAL);
        let pager = &tree.routes[0];
        assert_eq!(pager.repeat_interval, Duration::from_secs(3600));
        assert_eq!(pager.group_by, GroupBy::Labels(vec!["alertname".into()]));
        let postgres = &tree.routes[1].routes[0];
        assert_eq!(postgres.receiver, "db");
        assert_eq!(postgres.group_by, GroupBy::All);
        assert_eq!(postgres.group_wait, Duration::from_secs(10));
        assert_eq!(postgres.group_interval, Duration::from_secs(60));
        let labels = Labels::from_pairs([("alertname", "A"), ("team", "db"), ("x", "1")]);
        assert_eq!(
            display_labels(&tree.group_labels(&labels)),
            r#"{alertname="A"}"#
        );
        assert_eq!(postgres.group_labels(&labels), labels);
    }
}
