//! The command line: flags for the everyday settings (they override the file), and subcommands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, LogFormat, Overrides};

/// Exit code for a command-line usage error (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit code when the daemon cannot start because of its configuration (sysexits EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// The command line. Without a subcommand it runs the daemon, which takes the daemon options;
/// each subcommand takes only the options it uses.
#[derive(Debug, Parser)]
#[command(
    name = "prismwatch",
    version,
    about = "Host observability agent: collects host metrics, keeps a bounded history, serves /metrics.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub daemon: DaemonArgs,
}

/// The daemon's options: each overrides its key of the configuration file.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Configuration file (TOML). Without it the embedded defaults are used.
    #[arg(long, value_name = "FILE", env = "PRISMWATCH_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address to serve on, e.g. 127.0.0.1:9777 (overrides web.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,

    /// Directory for durable state (overrides state_dir).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Rule file or directory; repeatable (added to the file's rules and the built-in ones).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// Host collection interval, e.g. 1s or 15s (overrides host.interval).
    #[arg(long, value_name = "DURATION")]
    pub host_interval: Option<String>,

    /// Log level or filter, e.g. debug or prismwatch=debug,info (RUST_LOG wins).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// PostgreSQL server to watch, as a DSN or env:NAME / file:PATH; repeatable.
    #[arg(long = "postgres", value_name = "DSN")]
    pub postgres: Vec<String>,

    /// PgBouncer admin console to watch, as a DSN or env:NAME / file:PATH; repeatable.
    #[arg(long = "pgbouncer", value_name = "DSN")]
    pub pgbouncer: Vec<String>,

    /// Redis server to watch, as a URL or env:NAME / file:PATH; repeatable.
    #[arg(long = "redis", value_name = "URL")]
    pub redis: Vec<String>,

    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Alertmanager configuration file for notifications (overrides alerting.config_file).
    #[arg(long, value_name = "FILE")]
    pub alerting_config: Option<PathBuf>,
}

/// How a subcommand finds a running daemon.
#[derive(Debug, clap::Args)]
pub struct DaemonAddress {
    /// The daemon's address, e.g. http://127.0.0.1:9777. Default: web.listen of the
    /// configuration (--config, else the embedded default).
    #[arg(long)]
    pub url: Option<String>,
    /// The daemon's configuration file: where it listens and its bearer token.
    #[arg(long, value_name = "FILE", env = "PRISMWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Bearer token when the daemon requires one (default: web.bearer_token of the
    /// configuration).
    #[arg(long, env = "PRISMWATCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file without starting, and list the rule files in force;
    /// exits non-zero on any error.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
        /// Check this Alertmanager file instead of the one `[alerting] config_file` names.
        #[arg(long, value_name = "FILE")]
        alerting_config: Option<PathBuf>,
    },
    /// List a running daemon's active alerts, silenced and inhibited ones included.
    Alerts {
        #[command(flatten)]
        daemon: DaemonAddress,
        /// Print the API's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Notifications: Alertmanager configuration files and routing.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Prometheus rule files: validation and unit tests.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Evaluate a PromQL expression on a running daemon (its /api/v1/query over the local
    /// history) and print the result.
    Query {
        /// The expression, e.g. 'rate(node_cpu_seconds_total{mode="idle"}[5m])'.
        expr: String,
        /// The daemon's address, e.g. http://127.0.0.1:9777. Default: web.listen of the
        /// configuration (--config, else the embedded default).
        #[arg(long)]
        url: Option<String>,
        /// The daemon's configuration file: where it listens and its bearer token.
        #[arg(long, value_name = "FILE", env = "PRISMWATCH_CONFIG")]
        config: Option<PathBuf>,
        /// Evaluation time (unix seconds or RFC 3339); now when omitted.
        #[arg(long)]
        time: Option<String>,
        /// A range query over the last DURATION (e.g. 1h) instead of an instant query.
        #[arg(long, value_name = "DURATION")]
        range: Option<String>,
        /// Step of a range query.
        #[arg(long, default_value = "15s")]
        step: String,
        /// Bearer token when the daemon requires one (default: web.bearer_token of the
        /// configuration).
        #[arg(long, env = "PRISMWATCH_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Print this month's AI spend per model and label, the forecast and a daily chart, from
    /// the state directory (works while the daemon runs or not).
    Spend {
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Report as of this time (unix seconds or RFC 3339) instead of now: the month, the
        /// completed days and the forecast are those of that moment.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// The daemon's configuration file (prices, budgets, state directory).
        #[arg(long, value_name = "FILE", env = "PRISMWATCH_CONFIG")]
        config: Option<PathBuf>,
        /// The daemon's state directory (overrides state_dir of the configuration).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Validate an Alertmanager configuration file as `amtool check-config` does, reporting
    /// every error with its line.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the receivers a label set is routed to, as `amtool config routes test`.
    Routes {
        /// The Alertmanager configuration file.
        file: PathBuf,
        /// Labels as name=value.
        labels: Vec<String>,
        /// Fail unless the label set reaches exactly these receivers (comma-separated).
        #[arg(long, value_name = "RECEIVERS")]
        verify_receivers: Option<String>,
    },
    /// Send a test notification through a running daemon's outbox and transports, and print
    /// what each server answered; exits non-zero unless every one accepted it.
    Test {
        /// The receiver to send to (default: the root route's).
        #[arg(long)]
        receiver: Option<String>,
        #[command(flatten)]
        daemon: DaemonAddress,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files (or directories of them): every expression parsed, every template
    /// checked; reports every error and exits non-zero on any.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run rule unit tests written in promtool's test file format (`promtool test rules`);
    /// exits non-zero when any test fails.
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

impl DaemonArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            state_dir: self.state_dir.clone(),
            rules: self.rules.clone(),
            log_level: self.log_level.clone(),
            log_format: self.log_format,
            host_interval: self.host_interval.clone(),
            postgres: self.postgres.clone(),
            pgbouncer: self.pgbouncer.clone(),
            redis: self.redis.clone(),
            alerting_config: self.alerting_config.clone(),
        }
    }
}

/// Parses the command line and runs what it asks for.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &cli.command {
        Some(Command::CheckConfig {
            file,
            alerting_config,
        }) => check_config(file, alerting_config.clone()),
        Some(Command::Spend {
            json,
            at,
            config,
            state_dir,
        }) => spend(
            config.as_deref(),
            state_dir.as_deref(),
            *json,
            at.as_deref(),
        ),
        Some(Command::Query {
            expr,
            url,
            config,
            time,
            range,
            step,
            token,
        }) => query(
            expr,
            url.as_deref(),
            config.as_deref(),
            time.as_deref(),
            range.as_deref(),
            step,
            token.as_deref(),
        ),
        Some(Command::Rules {
            command: RulesCommand::Check { files },
        }) => rules_check(files),
        Some(Command::Alerts { daemon, json }) => alerts(daemon, *json),
        Some(Command::Notify {
            command: NotifyCommand::Test { receiver, daemon },
        }) => notify_test(receiver.as_deref(), daemon),
        Some(Command::Notify {
            command: NotifyCommand::Check { files },
        }) => {
            let codes: Vec<ExitCode> = files
                .iter()
                .map(|f| crate::notify::tool::check(f))
                .collect();
            codes
                .into_iter()
                .find(|code| *code != ExitCode::SUCCESS)
                .unwrap_or(ExitCode::SUCCESS)
        }
        Some(Command::Notify {
            command:
                NotifyCommand::Routes {
                    file,
                    labels,
                    verify_receivers,
                },
        }) => crate::notify::tool::routes(file, labels, verify_receivers.as_deref()),
        Some(Command::Rules {
            command: RulesCommand::Test { files },
        }) => rules_test(files),
        None => run_daemon(&cli.daemon),
    }
}

fn check_config(file: &std::path::Path, alerting_config: Option<PathBuf>) -> ExitCode {
    let overrides = Overrides {
        alerting_config,
        ..Overrides::default()
    };
    match config::load(Some(file), &overrides) {
        Ok(config) => {
            println!(
                "{}: valid (listen {}, host collector {}, history {} / {} series, {} PostgreSQL, {} PgBouncer, {} Redis targets)",
                file.display(),
                config.web.listen,
                if config.host.enabled {
                    format!("every {}", humantime::format_duration(config.host.interval))
                } else {
                    "disabled".to_string()
                },
                humantime::format_duration(config.history.retention),
                config.history.max_series,
                config.targets.postgres.len(),
                config.targets.pgbouncer.len(),
                config.targets.redis.len()
            );
            print!("{}", rules_in_force(&config));
            if let Some(alerting) = &config.alerting.config {
                println!(
                    "{}: valid\n{}",
                    alerting.origin.display(),
                    crate::notify::tool::summary(alerting)
                );
            }
            ExitCode::SUCCESS
        }
        // Secrets the daemon reads from its service environment or credentials are not
        // visible from a shell: the file is valid, and the daemon checks them at start.
        Err(errors) if errors.0.iter().all(|e| e.secret_unavailable) => {
            for error in &errors.0 {
                eprintln!("warning: {error}");
            }
            println!(
                "{}: valid, except that {} secret(s) cannot be read here; the daemon reads them at start and refuses to start without them (set them in the service's environment or credentials)",
                file.display(),
                errors.0.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.0.len(), file.display());
            ExitCode::FAILURE
        }
    }
}

/// The rule files a configuration runs, one a line, for `check-config`.
fn rules_in_force(config: &config::Config) -> String {
    let mut out = String::from("rules in force:\n");
    if config.builtin_rules {
        for (name, text) in crate::rules::BUILTIN {
            let groups =
                crate::rules::load_text(std::path::Path::new(name), text).unwrap_or_default();
            out.push_str(&format!("  {name}: {}\n", rule_count(&groups)));
        }
    } else {
        out.push_str("  built-in rules: off (builtin_rules = false)\n");
    }
    let files = crate::rules::find_rule_files(&config.rules);
    for file in &files.rules {
        // The configuration is valid, so every file loads.
        let groups = crate::rules::load_file(file).unwrap_or_default();
        out.push_str(&format!("  {}: {}\n", file.display(), rule_count(&groups)));
    }
    for test in &files.tests {
        out.push_str(&format!(
            "  {}: a rule unit test file, skipped (run it with `prismwatch rules test`)\n",
            test.display()
        ));
    }
    out
}

/// "3 rules in 1 group".
fn rule_count(groups: &[crate::rules::Group]) -> String {
    let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
    format!(
        "{} in {}",
        counted(rules, "rule", "rules"),
        counted(groups.len(), "group", "groups")
    )
}

/// A count with its noun in the right number.
pub fn counted(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn rules_check(paths: &[PathBuf]) -> ExitCode {
    let found = crate::rules::find_rule_files(paths);
    for test in &found.tests {
        println!(
            "{}: a rule unit test file, skipped (run it with `prismwatch rules test`)",
            test.display()
        );
    }
    let files = found.rules;
    let mut failed = 0;
    for file in &files {
        match crate::rules::load_file(file) {
            Ok(groups) => println!("{}: {}", file.display(), rule_count(&groups)),
            Err(errors) => {
                failed += 1;
                for error in errors {
                    eprintln!("{error}");
                }
            }
        }
    }
    if files.is_empty() {
        eprintln!(
            "no rule files found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::FAILURE;
    }
    if failed > 0 {
        eprintln!("{failed} of {} files have errors", files.len());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Where a running daemon listens and the token it wants: the configuration says, a flag wins.
fn find_daemon(
    url: Option<&str>,
    config_path: Option<&std::path::Path>,
    token: Option<&str>,
) -> Result<(String, Option<String>), ExitCode> {
    let endpoint = if url.is_some() && (token.is_some() || config_path.is_none()) {
        None
    } else {
        match config::daemon_endpoint(config_path) {
            Ok(endpoint) => Some(endpoint),
            Err(errors) => {
                eprintln!("{errors}");
                return Err(ExitCode::from(EXIT_CONFIG));
            }
        }
    };
    let url = url
        .map(str::to_string)
        .or_else(|| endpoint.as_ref().map(|e| e.url.clone()))
        .unwrap_or_default();
    let token = token
        .map(str::to_string)
        .or_else(|| endpoint.and_then(|e| e.token.map(|t| t.expose().to_string())));
    Ok((url, token))
}

/// Calls a running daemon once, on a runtime of its own; prints the error and gives the exit
/// code when it fails.
fn call_daemon(
    daemon: &DaemonAddress,
    method: hyper::Method,
    target: &str,
    timeout: std::time::Duration,
) -> Result<(u16, serde_json::Value), ExitCode> {
    let (url, token) = find_daemon(
        daemon.url.as_deref(),
        daemon.config.as_deref(),
        daemon.token.as_deref(),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| {
            eprintln!("cannot start the async runtime: {error}");
            ExitCode::FAILURE
        })?;
    runtime
        .block_on(crate::query_client::call(
            &url,
            method,
            target,
            token.as_deref(),
            timeout,
        ))
        .map_err(|message| {
            eprintln!("{message}");
            ExitCode::FAILURE
        })
}

/// `prismwatch alerts`: the daemon's `/api/v2/alerts`, one alert a line.
fn alerts(daemon: &DaemonAddress, json: bool) -> ExitCode {
    let (status, answer) = match call_daemon(
        daemon,
        hyper::Method::GET,
        "/api/v2/alerts",
        std::time::Duration::from_secs(30),
    ) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if status != 200 {
        eprintln!("the daemon answered {status}: {answer}");
        return ExitCode::FAILURE;
    }
    if json {
        println!("{answer}");
        return ExitCode::SUCCESS;
    }
    print!("{}", alerts_table(&answer));
    ExitCode::SUCCESS
}

/// The alerts as a table a person reads: name, state, since when, the other labels, summary.
fn alerts_table(answer: &serde_json::Value) -> String {
    let alerts = answer.as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        return "no active alerts\n".to_string();
    }
    let mut out = format!(
        "{:<32} {:<28} {:<20} LABELS / SUMMARY\n",
        "ALERT", "STATE", "SINCE"
    );
    for alert in &alerts {
        let labels = alert["labels"].as_object().cloned().unwrap_or_default();
        let name = labels
            .get("alertname")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        let others: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        let silenced: Vec<&str> = alert["status"]["silencedBy"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        let state = match (alert["status"]["state"].as_str(), silenced.is_empty()) {
            (Some("suppressed"), false) => format!("silenced ({})", silenced.join(",")),
            (Some("suppressed"), true) => "inhibited".to_string(),
            (state, _) => state.unwrap_or("?").to_string(),
        };
        let since = alert["startsAt"].as_str().unwrap_or("?");
        let since = since.split('.').next().unwrap_or(since);
        out.push_str(&format!(
            "{name:<32} {state:<28} {since:<20} {}\n",
            others.join(", ")
        ));
        if let Some(summary) = alert["annotations"]["summary"].as_str() {
            out.push_str(&format!("{:<83}{summary}\n", ""));
        }
    }
    out
}

/// `prismwatch notify test`: a test notification through the daemon, with the answers.
fn notify_test(receiver: Option<&str>, daemon: &DaemonAddress) -> ExitCode {
    let target = match receiver {
        Some(name) => format!("/api/v1/notify/test?receiver={}", percent_encode(name)),
        None => "/api/v1/notify/test".to_string(),
    };
    eprintln!("sending a test notification (waiting up to 30 s for the servers' answers)...");
    let (status, answer) = match call_daemon(
        daemon,
        hyper::Method::POST,
        &target,
        std::time::Duration::from_secs(40),
    ) {
        Ok(found) => found,
        Err(code) => return code,
    };
    if status != 200 {
        eprintln!(
            "the daemon refused: {}",
            answer.as_str().unwrap_or(&answer.to_string())
        );
        return ExitCode::FAILURE;
    }
    let mut all_delivered = true;
    println!("receiver {}", answer["receiver"].as_str().unwrap_or("?"));
    for row in answer["results"].as_array().into_iter().flatten() {
        let state = row["state"].as_str().unwrap_or("?");
        all_delivered &= state == "delivered";
        let state = if state == "pending" {
            "not yet delivered (retrying)"
        } else {
            state
        };
        println!(
            "  {} {}: {state}: {}",
            row["integration"].as_str().unwrap_or("?"),
            row["target"].as_str().unwrap_or("?"),
            row["answer"].as_str().unwrap_or("")
        );
    }
    if all_delivered {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Percent-encodes a query parameter value.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query(
    expr: &str,
    url: Option<&str>,
    config_path: Option<&std::path::Path>,
    time: Option<&str>,
    range: Option<&str>,
    step: &str,
    token: Option<&str>,
) -> ExitCode {
    let (url, token) = match find_daemon(url, config_path, token) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let now = crate::collector::now_ms();
    let (start, end) = match range.map(crate::rules::duration::parse) {
        None => (String::new(), String::new()),
        Some(Ok(width)) => (
            format!("{:.3}", (now - width.as_millis() as i64) as f64 / 1000.0),
            format!("{:.3}", now as f64 / 1000.0),
        ),
        Some(Err(message)) => {
            eprintln!("--range: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let request = crate::query_client::QueryRequest {
        url: &url,
        expr,
        time,
        range: range.map(|_| (start.as_str(), end.as_str(), step)),
        token: token.as_deref(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::query_client::run(&request)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn rules_test(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    for file in files {
        println!("Unit Testing:  {}", file.display());
        let started = tokio::time::Instant::now();
        match crate::rules::unit_test::run_file(file) {
            Ok(failures) if failures.is_empty() => {
                println!("  SUCCESS ({:.0?})", started.elapsed());
            }
            Ok(failures) | Err(failures) => {
                failed += 1;
                println!("  FAILED:");
                for failure in failures {
                    println!("    {failure}");
                }
            }
        }
        println!();
    }
    if failed > 0 {
        eprintln!("{failed} of {} test files failed", files.len());
        ExitCode::FAILURE
    } else {
        println!("all {} test files passed", files.len());
        ExitCode::SUCCESS
    }
}

fn spend(
    config_path: Option<&std::path::Path>,
    state_dir: Option<&std::path::Path>,
    json: bool,
    at: Option<&str>,
) -> ExitCode {
    let now_ms = match at.map(crate::http::query::parse_time).transpose() {
        Ok(at) => at.unwrap_or_else(crate::collector::now_ms),
        Err(error) => {
            eprintln!("--at: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let overrides = Overrides {
        state_dir: state_dir.map(std::path::Path::to_path_buf),
        ..Overrides::default()
    };
    let config = match config::load(config_path, &overrides) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let path = config.state_dir.join(crate::spend::STATE_FILE);
    if !path.exists() {
        eprintln!(
            "no spend recorded yet: {} does not exist (pass the daemon's --state-dir)",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    // Without --config the budgets are those the daemon recorded in the state directory.
    let saved_budgets = config_path.is_none();
    let tracker =
        match crate::spend::SpendTracker::read(config.ai, &config.state_dir, saved_budgets) {
            Ok(tracker) => tracker,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::FAILURE;
            }
        };
    let Some(report) = tracker.report(now_ms) else {
        return ExitCode::FAILURE;
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", crate::spend::render::render_text(&report));
    }
    ExitCode::SUCCESS
}

fn run_daemon(cli: &DaemonArgs) -> ExitCode {
    let overrides = cli.overrides();
    let config = match config::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "prismwatch did not start: fix the configuration (check it with `prismwatch check-config FILE`)."
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    crate::logging::init(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Collection and scrapes are light; two workers keep the footprint small.
        .worker_threads(2)
        .max_blocking_threads(16)
        // PromQL parsing and evaluation recurse; expressions are bounded (rules::MAX_NESTING,
        // MAX_OPERATORS) and 16 MiB covers the bound with room to spare. Only touched pages
        // become resident.
        .thread_stack_size(16 << 20)
        .thread_name("prismwatch")
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(crate::daemon::run(cli.config.clone(), overrides, config));
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "prismwatch stopped.");
            ExitCode::FAILURE
        }
    }
}
