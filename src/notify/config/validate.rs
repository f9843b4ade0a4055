//! Alertmanager's validation rules over the line-keeping tree. Alertmanager stops at its first
//! error; this collects them all, each with its line, the key, and the receiver or route named.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::yaml::{Node, Value};
use super::{
    AlertingConfig, ConfigError, ConfigErrors, EmailConfig, Global, Receiver, Secret, TlsOptions,
    WebhookAuth, WebhookConfig,
};
use crate::notify::inhibit::InhibitRule;
use crate::notify::matcher::{self, MatchOp, Matcher};
use crate::notify::route::{GroupBy, Route, RouteSpec};
use crate::notify::time_interval::{self, NamedTimeIntervals, TimeInterval};

/// Receiver integrations Alertmanager knows that prismwatch does not deliver.
const UNSUPPORTED_INTEGRATIONS: [&str; 16] = [
    "discord_configs",
    "incidentio_configs",
    "jira_configs",
    "mattermost_configs",
    "msteams_configs",
    "msteamsv2_configs",
    "opsgenie_configs",
    "pagerduty_configs",
    "pushover_configs",
    "rocketchat_configs",
    "slack_configs",
    "sns_configs",
    "telegram_configs",
    "victorops_configs",
    "webex_configs",
    "wechat_configs",
];

const UNSUPPORTED_HINT: &str = "prismwatch delivers email_configs and webhook_configs only: send to this service through a webhook_configs entry (its incoming-webhook URL or a bridge), or forward the alerts to an Alertmanager with `[alerting] alertmanagers` in the prismwatch TOML and route them there";

/// Global keys of integrations we do not deliver: valid Alertmanager, read and ignored (a
/// receiver that would use them is refused on its own).
const IGNORED_GLOBALS: [&str; 22] = [
    "slack_api_url",
    "slack_api_url_file",
    "pagerduty_url",
    "opsgenie_api_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_corp_id",
    "victorops_api_url",
    "victorops_api_key",
    "victorops_api_key_file",
    "telegram_api_url",
    "webex_api_url",
    "jira_api_url",
    "rocketchat_api_url",
    "rocketchat_token",
    "rocketchat_token_file",
    "rocketchat_token_id",
    "rocketchat_token_id_file",
    "smtp_auth_secret",
    "smtp_auth_secret_file",
];

pub(super) fn validate(path: &Path, text: &str) -> Result<AlertingConfig, ConfigErrors> {
    let mut check = Check {
        origin: path.display().to_string(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        errors: Vec::new(),
    };
    let root = match Node::parse(text) {
        Ok(root) => root,
        Err(message) => {
            return Err(ConfigErrors(vec![ConfigError {
                secret_unavailable: false,
                origin: check.origin.clone(),
                position: yaml_error_line(&message).map(|line| (line, 1)),
                key: None,
                message: format!("not valid YAML: {message}"),
                hint: Some(
                    "fix the YAML syntax; `amtool check-config FILE` reads the same file".into(),
                ),
            }]));
        }
    };
    let config = check.config(&root, text);
    if check.errors.is_empty() {
        Ok(config)
    } else {
        check
            .errors
            .sort_by_key(|e| e.position.map_or(0, |(line, _)| line));
        Err(ConfigErrors(check.errors))
    }
}

/// serde-saphyr's messages carry `line N`; the number, when present.
fn yaml_error_line(message: &str) -> Option<usize> {
    let at = message.find("line ")?;
    let digits: String = message[at + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

struct Check {
    origin: String,
    base: std::path::PathBuf,
    errors: Vec<ConfigError>,
}

/// A mapping's keys, checked against the allowed ones.
struct Fields<'a> {
    entries: &'a [(String, usize, Node)],
    line: usize,
}

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(key, _, node)| key == name && !node.is_null())
            .map(|(_, _, node)| node)
    }
}

impl Check {
    fn error(&mut self, line: usize, key: &str, message: impl Into<String>, hint: &str) {
        self.errors.push(ConfigError {
            secret_unavailable: false,
            origin: self.origin.clone(),
            position: (line > 0).then_some((line, 1)),
            key: (!key.is_empty()).then(|| key.to_string()),
            message: message.into(),
            hint: (!hint.is_empty()).then(|| hint.to_string()),
        });
    }

    /// The mapping at `node`, reporting keys outside `allowed` (as Alertmanager's strict
    /// parsing does). A null node is an empty mapping.
    fn fields<'a>(&mut self, node: &'a Node, key: &str, allowed: &[&str]) -> Option<Fields<'a>> {
        match &node.value {
            Value::Map(entries) => {
                for (name, line, _) in entries {
                    if !allowed.contains(&name.as_str()) {
                        self.error(
                            *line,
                            &join(key, name),
                            format!("unknown key `{name}`"),
                            "remove it or fix its spelling (Alertmanager refuses unknown keys too)",
                        );
                    }
                }
                Some(Fields {
                    entries,
                    line: node.line,
                })
            }
            Value::Null => Some(Fields {
                entries: &[],
                line: node.line,
            }),
            _ => {
                self.error(node.line, key, "expected a mapping of keys to values", "");
                None
            }
        }
    }

    fn string(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            Value::Scalar(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => Some(String::new()),
            _ => {
                self.error(node.line, key, "expected a single value", "");
                None
            }
        }
    }

    fn opt_string(&mut self, fields: &Fields, name: &str, key: &str) -> Option<String> {
        let node = fields.get(name)?;
        self.string(node, &join(key, name))
            .filter(|s| !s.is_empty())
    }

    fn boolean(&mut self, fields: &Fields, name: &str, key: &str) -> Option<bool> {
        let node = fields.get(name)?;
        let key = join(key, name);
        match &node.value {
            Value::Bool(b) => Some(*b),
            // YAML 1.1 booleans, which Alertmanager's YAML library reads as booleans.
            Value::Scalar(s) => match s.as_str() {
                "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => Some(true),
                "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n" | "N" => Some(false),
                _ => {
                    self.error(node.line, &key, format!("`{s}` is not true or false"), "");
                    None
                }
            },
            _ => {
                self.error(node.line, &key, "expected true or false", "");
                None
            }
        }
    }

    fn strings(&mut self, fields: &Fields, name: &str, key: &str) -> Vec<(String, usize)> {
        let Some(node) = fields.get(name) else {
            return Vec::new();
        };
        let key = join(key, name);
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    self.string(item, &format!("{key}[{i}]"))
                        .map(|s| (s, item.line))
                })
                .collect(),
            _ => {
                self.error(node.line, &key, "expected a list", "");
                Vec::new()
            }
        }
    }

    fn list<'a>(&mut self, fields: &Fields<'a>, name: &str, key: &str) -> &'a [Node] {
        let Some(node) = fields.get(name) else {
            return &[];
        };
        match &node.value {
            Value::Seq(items) => items,
            _ => {
                self.error(node.line, &join(key, name), "expected a list", "");
                &[]
            }
        }
    }

    fn duration(&mut self, fields: &Fields, name: &str, key: &str) -> Option<Duration> {
        let node = fields.get(name)?;
        let key = join(key, name);
        let text = self.string(node, &key)?;
        match crate::rules::duration::parse(&text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(node.line, &key, message, "");
                None
            }
        }
    }

    /// A value and its `_file` form, at most one of them; the file is read now.
    fn secret(&mut self, fields: &Fields, name: &str, key: &str) -> Option<Secret> {
        let file_name = format!("{name}_file");
        let inline = self.opt_string(fields, name, key);
        let file = self.opt_string(fields, &file_name, key);
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.error(
                    fields.line,
                    key,
                    format!("at most one of {name} & {file_name} must be configured"),
                    "",
                );
                None
            }
            (Some(value), None) => Some(Secret::new(value)),
            (None, Some(file)) => {
                let path = self.base.join(&file);
                match std::fs::read_to_string(&path) {
                    Ok(text) => Some(Secret::new(text.trim_end_matches(['\n', '\r']))),
                    Err(e) => {
                        self.error(
                            fields.line,
                            &join(key, &file_name),
                            format!("cannot read {}: {e}", path.display()),
                            "",
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    fn config(&mut self, root: &Node, text: &str) -> AlertingConfig {
        let allowed = [
            "global",
            "route",
            "inhibit_rules",
            "receivers",
            "templates",
            "mute_time_intervals",
            "time_intervals",
        ];
        let empty = AlertingConfig {
            origin: self.origin.clone().into(),
            original: text.to_string(),
            global: Global::default(),
            route: Route::from_spec(&RouteSpec::default()),
            receivers: Vec::new(),
            inhibit_rules: Vec::new(),
            time_intervals: NamedTimeIntervals::new(),
            templates: Vec::new(),
        };
        let Some(top) = self.fields(root, "", &allowed) else {
            return empty;
        };
        let (global, global_http) = match top.get("global") {
            Some(node) => self.global(node),
            None => (Global::default(), None),
        };
        let receivers: Vec<Receiver> = self
            .list(&top, "receivers", "")
            .iter()
            .enumerate()
            .filter_map(|(i, node)| self.receiver(node, i, &global, global_http.as_ref()))
            .collect();
        let mut names = BTreeSet::new();
        for (i, receiver) in receivers.iter().enumerate() {
            if !names.insert(receiver.name.clone()) {
                let line = self
                    .list(&top, "receivers", "")
                    .get(i)
                    .map_or(0, |n| n.line);
                self.error(
                    line,
                    &format!("receivers[{i}]"),
                    format!("notification config name {:?} is not unique", receiver.name),
                    "give each receiver its own name",
                );
            }
        }
        let mut time_intervals = NamedTimeIntervals::new();
        for section in ["mute_time_intervals", "time_intervals"] {
            for (i, node) in self.list(&top, section, "").iter().enumerate() {
                let key = format!("{section}[{i}]");
                if let Some((name, entries)) = self.named_time_interval(node, &key) {
                    match time_intervals.entry(name) {
                        std::collections::btree_map::Entry::Occupied(taken) => {
                            let what = if section == "time_intervals" {
                                "time interval"
                            } else {
                                "mute time interval"
                            };
                            let message = format!("{what} {:?} is not unique", taken.key());
                            self.error(node.line, &key, message, "");
                        }
                        std::collections::btree_map::Entry::Vacant(free) => {
                            free.insert(entries);
                        }
                    }
                }
            }
        }
        let route = match top.get("route") {
            None => {
                self.error(
                    0,
                    "route",
                    "no routes provided",
                    "add a `route:` with a default `receiver`",
                );
                empty.route.clone()
            }
            Some(node) => {
                let spec = self.route(node, "route", true).unwrap_or_default();
                let route = Route::from_spec(&spec);
                self.check_references(&route, &names, &time_intervals);
                route
            }
        };
        let inhibit_rules = self
            .list(&top, "inhibit_rules", "")
            .iter()
            .enumerate()
            .filter_map(|(i, node)| self.inhibit_rule(node, &format!("inhibit_rules[{i}]")))
            .collect();
        let templates = self
            .strings(&top, "templates", "")
            .into_iter()
            .map(|(glob, _)| {
                if Path::new(&glob).is_absolute() {
                    glob
                } else {
                    self.base.join(glob).display().to_string()
                }
            })
            .collect();
        AlertingConfig {
            global,
            route,
            receivers,
            inhibit_rules,
            time_intervals,
            templates,
            ..empty
        }
    }

    fn global(&mut self, node: &Node) -> (Global, Option<HttpConfig>) {
        let mut allowed = vec![
            "resolve_timeout",
            "http_config",
            "smtp_from",
            "smtp_hello",
            "smtp_smarthost",
            "smtp_auth_username",
            "smtp_auth_password",
            "smtp_auth_password_file",
            "smtp_auth_identity",
            "smtp_require_tls",
            "smtp_tls_config",
        ];
        allowed.extend(IGNORED_GLOBALS);
        let mut global = Global::default();
        let Some(fields) = self.fields(node, "global", &allowed) else {
            return (global, None);
        };
        let key = "global";
        if let Some(timeout) = self.duration(&fields, "resolve_timeout", key) {
            global.resolve_timeout = timeout;
        }
        global.smtp_from = self.opt_string(&fields, "smtp_from", key);
        if let Some(hello) = self.opt_string(&fields, "smtp_hello", key) {
            global.smtp_hello = hello;
        }
        global.smtp_smarthost = fields
            .get("smtp_smarthost")
            .and_then(|n| self.host_port(n, "global.smtp_smarthost"));
        global.smtp_auth_username = self.opt_string(&fields, "smtp_auth_username", key);
        global.smtp_auth_password = self.secret(&fields, "smtp_auth_password", key);
        global.smtp_auth_identity = self.opt_string(&fields, "smtp_auth_identity", key);
        if let Some(require) = self.boolean(&fields, "smtp_require_tls", key) {
            global.smtp_require_tls = require;
        }
        let tls = fields
            .get("smtp_tls_config")
            .map(|n| self.tls(n, "global.smtp_tls_config"))
            .unwrap_or_default();
        global.smtp_tls = tls;
        let http = fields
            .get("http_config")
            .map(|n| self.http_config(n, "global.http_config"));
        (global, http)
    }

    fn host_port(&mut self, node: &Node, key: &str) -> Option<(String, u16)> {
        let text = self.string(node, key)?;
        if text.is_empty() {
            return None;
        }
        let parsed = text.rsplit_once(':').and_then(|(host, port)| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            (!host.contains(':') || text.starts_with('['))
                .then_some(())
                .and(
                    port.parse::<u16>()
                        .ok()
                        .map(|port| (host.to_string(), port)),
                )
        });
        if parsed.is_none() {
            self.error(
                node.line,
                key,
                format!("address {text:?}: expected host:port"),
                "write it as smtp.example.com:587",
            );
        }
        parsed
    }

    fn tls(&mut self, node: &Node, key: &str) -> TlsOptions {
        let allowed = [
            "ca",
            "ca_file",
            "cert",
            "cert_file",
            "key",
            "key_file",
            "server_name",
            "insecure_skip_verify",
            "min_version",
            "max_version",
        ];
        let Some(fields) = self.fields(node, key, &allowed) else {
            return TlsOptions::default();
        };
        for unsupported in ["ca", "cert", "key", "cert_file", "key_file", "max_version"] {
            if fields.get(unsupported).is_some() {
                self.error(
                    fields.line,
                    &join(key, unsupported),
                    format!("`{unsupported}` is not supported by prismwatch"),
                    "use ca_file, server_name and insecure_skip_verify",
                );
            }
        }
        TlsOptions {
            insecure_skip_verify: self
                .boolean(&fields, "insecure_skip_verify", key)
                .unwrap_or(false),
            ca_file: self
                .opt_string(&fields, "ca_file", key)
                .map(|f| self.base.join(f)),
            server_name: self.opt_string(&fields, "server_name", key),
        }
    }

    fn http_config(&mut self, node: &Node, key: &str) -> HttpConfig {
        let allowed = [
            "basic_auth",
            "authorization",
            "bearer_token",
            "bearer_token_file",
            "tls_config",
            "follow_redirects",
            "enable_http2",
            "proxy_url",
            "oauth2",
        ];
        let mut http = HttpConfig::default();
        let Some(fields) = self.fields(node, key, &allowed) else {
            return http;
        };
        for unsupported in ["proxy_url", "oauth2"] {
            if fields.get(unsupported).is_some() {
                self.error(
                    fields.line,
                    &join(key, unsupported),
                    format!("`{unsupported}` is not supported by prismwatch"),
                    "use basic_auth, authorization or bearer_token",
                );
            }
        }
        let _ = self.boolean(&fields, "follow_redirects", key);
        let _ = self.boolean(&fields, "enable_http2", key);
        let mut auths = Vec::new();
        if let Some(basic) = fields.get("basic_auth") {
            let key = join(key, "basic_auth");
            if let Some(b) = self.fields(basic, &key, &["username", "password", "password_file"]) {
                let username = self.opt_string(&b, "username", &key).unwrap_or_default();
                let password = self
                    .secret(&b, "password", &key)
                    .unwrap_or_else(|| Secret::new(""));
                auths.push(WebhookAuth::Basic { username, password });
            }
        }
        if let Some(authorization) = fields.get("authorization") {
            let key = join(key, "authorization");
            if let Some(a) = self.fields(
                authorization,
                &key,
                &["type", "credentials", "credentials_file"],
            ) {
                let kind = self
                    .opt_string(&a, "type", &key)
                    .unwrap_or_else(|| "Bearer".into());
                if !kind.eq_ignore_ascii_case("bearer") {
                    self.error(
                        a.line,
                        &key,
                        format!("authorization type {kind:?} is not supported"),
                        "use Bearer or basic_auth",
                    );
                }
                if let Some(credentials) = self.secret(&a, "credentials", &key) {
                    auths.push(WebhookAuth::Bearer(credentials));
                }
            }
        }
        if let Some(token) = self.secret(&fields, "bearer_token", key) {
            auths.push(WebhookAuth::Bearer(token));
        }
        if auths.len() > 1 {
            self.error(
                fields.line,
                key,
                "at most one of basic_auth, authorization and bearer_token must be configured",
                "",
            );
        }
        http.auth = auths.into_iter().next();
        http.tls = fields
            .get("tls_config")
            .map(|n| self.tls(n, &join(key, "tls_config")))
            .unwrap_or_default();
        http
    }

    fn receiver(
        &mut self,
        node: &Node,
        index: usize,
        global: &Global,
        global_http: Option<&HttpConfig>,
    ) -> Option<Receiver> {
        let key = format!("receivers[{index}]");
        let mut allowed = vec!["name", "email_configs", "webhook_configs"];
        allowed.extend(UNSUPPORTED_INTEGRATIONS);
        let fields = self.fields(node, &key, &allowed)?;
        let name = self.opt_string(&fields, "name", &key).unwrap_or_default();
        if name.is_empty() {
            self.error(
                node.line,
                &key,
                "missing name in receiver",
                "give the receiver a `name`",
            );
        }
        let key = format!("receivers[{index}] ({name:?})");
        for (integration, line, value) in fields.entries {
            if UNSUPPORTED_INTEGRATIONS.contains(&integration.as_str()) && !value.is_null() {
                self.error(
                    *line,
                    &join(&key, integration),
                    format!(
                        "receiver {name:?} uses {integration}, which prismwatch does not deliver"
                    ),
                    UNSUPPORTED_HINT,
                );
            }
        }
        let email = self
            .list(&fields, "email_configs", &key)
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.email(n, &format!("{key}.email_configs[{i}]"), global))
            .collect();
        let webhook = self
            .list(&fields, "webhook_configs", &key)
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                self.webhook(n, &format!("{key}.webhook_configs[{i}]"), global_http)
            })
            .collect();
        Some(Receiver {
            name,
            email,
            webhook,
        })
    }

    fn email(&mut self, node: &Node, key: &str, global: &Global) -> Option<EmailConfig> {
        let allowed = [
            "send_resolved",
            "to",
            "from",
            "hello",
            "smarthost",
            "auth_username",
            "auth_password",
            "auth_password_file",
            "auth_secret",
            "auth_secret_file",
            "auth_identity",
            "headers",
            "html",
            "text",
            "require_tls",
            "tls_config",
        ];
        let fields = self.fields(node, key, &allowed)?;
        let to = self.opt_string(&fields, "to", key).unwrap_or_default();
        if to.is_empty() {
            self.error(
                node.line,
                key,
                "missing to address in email config",
                "set `to: oncall@example.com`",
            );
        }
        let smarthost = match fields
            .get("smarthost")
            .and_then(|n| self.host_port(n, &join(key, "smarthost")))
        {
            Some(host) => Some(host),
            None if fields.get("smarthost").is_some() => None,
            None => {
                if global.smtp_smarthost.is_none() {
                    self.error(
                        node.line,
                        key,
                        "no global SMTP smarthost set",
                        "set `smarthost` here or `global.smtp_smarthost`",
                    );
                }
                global.smtp_smarthost.clone()
            }
        };
        let from = self
            .opt_string(&fields, "from", key)
            .or_else(|| global.smtp_from.clone());
        if from.is_none() {
            self.error(
                node.line,
                key,
                "no global SMTP from set",
                "set `from` here or `global.smtp_from`",
            );
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(node) = fields.get("headers") {
            let headers_key = join(key, "headers");
            if let Value::Map(entries) = &node.value {
                for (name, line, value) in entries {
                    let canonical = canonical_header(name);
                    if headers.iter().any(|(n, _)| *n == canonical) {
                        self.error(
                            *line,
                            &headers_key,
                            format!("duplicate header {canonical:?} in email config"),
                            "",
                        );
                    } else if let Some(value) = self.string(value, &join(&headers_key, name)) {
                        headers.push((canonical, value));
                    }
                }
            } else {
                self.error(
                    node.line,
                    &headers_key,
                    "expected a mapping of header names to values",
                    "",
                );
            }
            headers.sort();
        }
        let password = self.secret(&fields, "auth_password", key);
        let tls = match fields.get("tls_config") {
            Some(n) => self.tls(n, &join(key, "tls_config")),
            None => global.smtp_tls.clone(),
        };
        let mut auth_password = password;
        if auth_password.is_none() && fields.get("auth_password_file").is_none() {
            auth_password = global.smtp_auth_password.clone();
        }
        Some(EmailConfig {
            to: to
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
            from: from.unwrap_or_default(),
            smarthost: smarthost.unwrap_or_default(),
            hello: self
                .opt_string(&fields, "hello", key)
                .unwrap_or_else(|| global.smtp_hello.clone()),
            auth_username: self
                .opt_string(&fields, "auth_username", key)
                .or_else(|| global.smtp_auth_username.clone()),
            auth_password,
            auth_identity: self
                .opt_string(&fields, "auth_identity", key)
                .or_else(|| global.smtp_auth_identity.clone()),
            require_tls: self
                .boolean(&fields, "require_tls", key)
                .unwrap_or(global.smtp_require_tls),
            tls,
            headers,
            html: self.opt_string(&fields, "html", key),
            text: self.opt_string(&fields, "text", key),
            send_resolved: self.boolean(&fields, "send_resolved", key).unwrap_or(false),
        })
    }

    fn webhook(
        &mut self,
        node: &Node,
        key: &str,
        global_http: Option<&HttpConfig>,
    ) -> Option<WebhookConfig> {
        let allowed = [
            "send_resolved",
            "url",
            "url_file",
            "http_config",
            "max_alerts",
            "timeout",
        ];
        let fields = self.fields(node, key, &allowed)?;
        let url = self.opt_string(&fields, "url", key);
        let url_file = self.opt_string(&fields, "url_file", key);
        let url = match (url, url_file) {
            (Some(_), Some(_)) => {
                self.error(
                    node.line,
                    key,
                    "at most one of url & url_file must be configured",
                    "",
                );
                None
            }
            (None, None) => {
                self.error(
                    node.line,
                    key,
                    "one of url or url_file must be configured",
                    "",
                );
                None
            }
            (Some(url), None) => Some(url),
            (None, Some(file)) => match std::fs::read_to_string(self.base.join(&file)) {
                Ok(text) => Some(text.trim().to_string()),
                Err(e) => {
                    self.error(
                        node.line,
                        &join(key, "url_file"),
                        format!("cannot read {file}: {e}"),
                        "",
                    );
                    None
                }
            },
        };
        if let Some(url) = &url
            && let Err(message) = check_url(url)
        {
            let line = fields.get("url").map_or(node.line, |n| n.line);
            self.error(
                line,
                &join(key, "url"),
                message,
                "write an http:// or https:// URL with a host",
            );
        }
        let max_alerts = match fields.get("max_alerts") {
            None => 0,
            Some(n) => match self
                .string(n, &join(key, "max_alerts"))
                .map(|s| s.parse::<u64>())
            {
                Some(Ok(v)) => v,
                _ => {
                    self.error(
                        n.line,
                        &join(key, "max_alerts"),
                        "max_alerts must be a whole number",
                        "",
                    );
                    0
                }
            },
        };
        let http = match fields.get("http_config") {
            Some(n) => self.http_config(n, &join(key, "http_config")),
            None => global_http.cloned().unwrap_or_default(),
        };
        Some(WebhookConfig {
            url: url.unwrap_or_default(),
            send_resolved: self.boolean(&fields, "send_resolved", key).unwrap_or(true),
            max_alerts,
            timeout: self.duration(&fields, "timeout", key),
            auth: http.auth,
            tls: http.tls,
        })
    }

    /// One route and its children. The root must name a receiver and have no matchers and no
    /// time intervals.
    fn route(&mut self, node: &Node, key: &str, is_root: bool) -> Option<RouteSpec> {
        let allowed = [
            "receiver",
            "group_by",
            "match",
            "match_re",
            "matchers",
            "mute_time_intervals",
            "active_time_intervals",
            "continue",
            "routes",
            "group_wait",
            "group_interval",
            "repeat_interval",
        ];
        let fields = self.fields(node, key, &allowed)?;
        let mut spec = RouteSpec {
            line: node.line,
            receiver: self.opt_string(&fields, "receiver", key),
            continue_matching: self.boolean(&fields, "continue", key).unwrap_or(false),
            group_wait: self.duration(&fields, "group_wait", key),
            group_interval: self.duration(&fields, "group_interval", key),
            repeat_interval: self.duration(&fields, "repeat_interval", key),
            ..RouteSpec::default()
        };
        for (name, value) in [
            ("group_interval", spec.group_interval),
            ("repeat_interval", spec.repeat_interval),
        ] {
            if value == Some(Duration::ZERO) {
                let line = fields.get(name).map_or(node.line, |n| n.line);
                self.error(line, &join(key, name), format!("{name} cannot be zero"), "");
            }
        }
        spec.matchers = self.route_matchers(&fields, key, ["match", "match_re", "matchers"]);
        if fields.get("group_by").is_some() {
            let labels = self.strings(&fields, "group_by", key);
            let all = labels.iter().any(|(l, _)| l == "...");
            let mut names: Vec<String> = Vec::new();
            for (label, line) in &labels {
                if label == "..." {
                    continue;
                }
                if !is_label_name(label) {
                    self.error(
                        *line,
                        &join(key, "group_by"),
                        format!("invalid label name {label:?} in group_by list"),
                        "",
                    );
                } else if names.contains(label) {
                    self.error(
                        *line,
                        &join(key, "group_by"),
                        format!("duplicated label {label:?} in group_by"),
                        "",
                    );
                } else {
                    names.push(label.clone());
                }
            }
            if all && !names.is_empty() {
                self.error(
                    fields.get("group_by").map_or(0, |n| n.line),
                    &join(key, "group_by"),
                    "cannot have wildcard group_by (`...`) and other labels at the same time",
                    "",
                );
            }
            spec.group_by = Some(if all {
                GroupBy::All
            } else {
                GroupBy::Labels(names)
            });
        }
        spec.mute_time_intervals = self
            .strings(&fields, "mute_time_intervals", key)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        spec.active_time_intervals = self
            .strings(&fields, "active_time_intervals", key)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        if is_root {
            let line = node.line;
            if spec.receiver.is_none() {
                self.error(
                    line,
                    key,
                    "root route must specify a default receiver",
                    "add `receiver: NAME` to the top-level route",
                );
            }
            if !spec.matchers.is_empty()
                || ["match", "match_re", "matchers"]
                    .iter()
                    .any(|k| fields.get(k).is_some())
            {
                self.error(
                    line,
                    key,
                    "root route must not have any matchers",
                    "move the matchers to a child route under `routes:`",
                );
            }
            if !spec.mute_time_intervals.is_empty() {
                self.error(
                    line,
                    key,
                    "root route must not have any mute time intervals",
                    "",
                );
            }
            if !spec.active_time_intervals.is_empty() {
                self.error(
                    line,
                    key,
                    "root route must not have any active time intervals",
                    "",
                );
            }
        }
        spec.routes = self
            .list(&fields, "routes", key)
            .iter()
            .enumerate()
            .filter_map(|(i, child)| self.route(child, &format!("{key}.routes[{i}]"), false))
            .collect();
        Some(spec)
    }

    /// Matchers from the older `match`/`match_re` maps and the `matchers` list.
    fn route_matchers(&mut self, fields: &Fields, key: &str, names: [&str; 3]) -> Vec<Matcher> {
        let mut out = Vec::new();
        for (name, op) in [(names[0], MatchOp::Equal), (names[1], MatchOp::Regexp)] {
            let Some(node) = fields.get(name) else {
                continue;
            };
            let map_key = join(key, name);
            let Value::Map(entries) = &node.value else {
                self.error(
                    node.line,
                    &map_key,
                    "expected a mapping of label names to values",
                    "",
                );
                continue;
            };
            for (label, line, value) in entries {
                if !is_label_name(label) {
                    self.error(*line, &map_key, format!("invalid label name {label:?}"), "");
                    continue;
                }
                let Some(value) = self.string(value, &join(&map_key, label)) else {
                    continue;
                };
                match Matcher::new(label, op, &value) {
                    Ok(m) => out.push(m),
                    Err(message) => self.error(*line, &join(&map_key, label), message, ""),
                }
            }
        }
        for (line_text, line) in self.strings(fields, names[2], key) {
            match matcher::parse_matchers(&line_text) {
                Ok(ms) => out.extend(ms),
                Err(message) => self.error(line, &join(key, names[2]), message, "write matchers as name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\""),
            }
        }
        out.sort();
        out
    }

    fn inhibit_rule(&mut self, node: &Node, key: &str) -> Option<InhibitRule> {
        let allowed = [
            "name",
            "source_match",
            "source_match_re",
            "source_matchers",
            "target_match",
            "target_match_re",
            "target_matchers",
            "equal",
        ];
        let fields = self.fields(node, key, &allowed)?;
        let source_matchers = self.route_matchers(
            &fields,
            key,
            ["source_match", "source_match_re", "source_matchers"],
        );
        let target_matchers = self.route_matchers(
            &fields,
            key,
            ["target_match", "target_match_re", "target_matchers"],
        );
        let mut equal = Vec::new();
        for (label, line) in self.strings(&fields, "equal", key) {
            if is_label_name(&label) {
                equal.push(label);
            } else {
                self.error(
                    line,
                    &join(key, "equal"),
                    format!("invalid label name {label:?} in equal list"),
                    "",
                );
            }
        }
        Some(InhibitRule {
            source_matchers,
            target_matchers,
            equal,
        })
    }

    fn named_time_interval(
        &mut self,
        node: &Node,
        key: &str,
    ) -> Option<(String, Vec<TimeInterval>)> {
        let fields = self.fields(node, key, &["name", "time_intervals"])?;
        let name = self.opt_string(&fields, "name", key);
        if name.is_none() {
            self.error(node.line, key, "missing name in time interval", "");
        }
        let entries = self
            .list(&fields, "time_intervals", key)
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.time_interval(n, &format!("{key}.time_intervals[{i}]")))
            .collect();
        Some((name?, entries))
    }

    fn time_interval(&mut self, node: &Node, key: &str) -> Option<TimeInterval> {
        let allowed = [
            "times",
            "weekdays",
            "days_of_month",
            "months",
            "years",
            "location",
        ];
        let fields = self.fields(node, key, &allowed)?;
        let mut interval = TimeInterval::default();
        for (i, time) in self.list(&fields, "times", key).iter().enumerate() {
            let time_key = format!("{key}.times[{i}]");
            let Some(t) = self.fields(time, &time_key, &["start_time", "end_time"]) else {
                continue;
            };
            let start = self
                .opt_string(&t, "start_time", &time_key)
                .unwrap_or_default();
            let end = self
                .opt_string(&t, "end_time", &time_key)
                .unwrap_or_default();
            match time_interval::parse_time_range(&start, &end) {
                Ok(range) => interval.times.push(range),
                Err(message) => self.error(time.line, &time_key, message, ""),
            }
        }
        fn ranges<T>(
            check: &mut Check,
            fields: &Fields,
            name: &str,
            key: &str,
            parse: fn(&str) -> Result<T, String>,
        ) -> Vec<T> {
            check
                .strings(fields, name, key)
                .into_iter()
                .filter_map(|(text, line)| match parse(&text) {
                    Ok(range) => Some(range),
                    Err(message) => {
                        check.error(line, &join(key, name), message, "");
                        None
                    }
                })
                .collect()
        }
        interval.weekdays = ranges(
            self,
            &fields,
            "weekdays",
            key,
            time_interval::parse_weekday_range,
        );
        interval.days_of_month = ranges(
            self,
            &fields,
            "days_of_month",
            key,
            time_interval::parse_day_of_month_range,
        );
        interval.months = ranges(
            self,
            &fields,
            "months",
            key,
            time_interval::parse_month_range,
        );
        interval.years = ranges(self, &fields, "years", key, time_interval::parse_year_range);
        if let Some(location) = self.opt_string(&fields, "location", key) {
            match time_interval::parse_location(&location) {
                Ok(zone) => interval.location = Some(zone),
                Err(message) => {
                    let line = fields.get("location").map_or(node.line, |n| n.line);
                    self.error(
                        line,
                        &join(key, "location"),
                        message,
                        "use an IANA name such as Europe/Berlin",
                    );
                }
            }
        }
        Some(interval)
    }

    /// Receivers and time intervals named by routes must exist.
    fn check_references(
        &mut self,
        route: &Route,
        receivers: &BTreeSet<String>,
        intervals: &NamedTimeIntervals,
    ) {
        for node in route.walk() {
            if !receivers.contains(&node.receiver) && !node.receiver.is_empty() {
                self.error(
                    node.line,
                    "route",
                    format!(
                        "undefined receiver {:?} used in route {}",
                        node.receiver,
                        node.key()
                    ),
                    "define the receiver under `receivers:` or fix the name",
                );
            }
            for name in node
                .mute_time_intervals
                .iter()
                .chain(&node.active_time_intervals)
            {
                if !intervals.contains_key(name) {
                    self.error(
                        node.line,
                        "route",
                        format!(
                            "undefined time interval {name:?} used in route {}",
                            node.key()
                        ),
                        "define it under `time_intervals:`",
                    );
                }
            }
        }
    }
}

/// The webhook authentication and TLS of an `http_config`.
#[derive(Clone, Debug, Default)]
struct HttpConfig {
    auth: Option<WebhookAuth>,
    tls: TlsOptions,
}

fn join(key: &str, name: &str) -> String {
    if key.is_empty() {
        name.to_string()
    } else {
        format!("{key}.{name}")
    }
}

/// Prometheus' label name rule (Alertmanager's `model.LabelNameRE`).
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-priority` becomes `X-Priority`.
fn canonical_header(name: &str) -> String {
    if name.contains(|c: char| c == ' ' || !c.is_ascii()) {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// Alertmanager's URL rule: http or https, with a host.
fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("unsupported scheme \"\" for URL {url:?}"));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("unsupported scheme {scheme:?} for URL"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() {
        return Err("missing host for URL".to_string());
    }
    Ok(())
}
