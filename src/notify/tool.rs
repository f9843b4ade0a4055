//! `prismwatch notify check FILE` and `prismwatch notify routes FILE label=value ...`: the
//! answers of `amtool check-config` and `amtool config routes test` from our own code.

use std::path::Path;
use std::process::ExitCode;

use crate::model::Labels;
use crate::notify::config::AlertingConfig;
use crate::notify::matcher::{self, MatchOp};

/// Validates an Alertmanager file; prints a summary or every error.
pub fn check(file: &Path) -> ExitCode {
    match AlertingConfig::load(file) {
        Ok(config) => {
            println!("{}: valid", file.display());
            println!("{}", summary(&config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.0.len(), file.display());
            ExitCode::FAILURE
        }
    }
}

/// What a valid file holds, in a line.
pub fn summary(config: &AlertingConfig) -> String {
    let (email, webhook) = config
        .receivers
        .iter()
        .fold((0, 0), |(e, w), r| (e + r.email.len(), w + r.webhook.len()));
    format!(
        "  {} routes, {} receivers ({email} email, {webhook} webhook), {} inhibit rules, {} time intervals, {} templates",
        config.route.walk().len(),
        config.receivers.len(),
        config.inhibit_rules.len(),
        config.time_intervals.len(),
        config.templates.len()
    )
}

/// Prints the receivers a label set reaches, comma-separated in routing order, as amtool does.
/// With `verify`, fails unless they are exactly those receivers.
pub fn routes(file: &Path, labels: &[String], verify: Option<&str>) -> ExitCode {
    let config = match AlertingConfig::load(file) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let labels = match parse_labels(labels) {
        Ok(labels) => labels,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(crate::cli::EXIT_USAGE);
        }
    };
    let receivers = receivers_for(&config, &labels);
    println!("{receivers}");
    match verify {
        Some(expected) if expected != receivers => {
            eprintln!("WARNING: Expected receivers did not match resolved receivers.");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

/// The receivers of the matching routes, joined by commas.
pub fn receivers_for(config: &AlertingConfig, labels: &Labels) -> String {
    config
        .route
        .matching(labels)
        .iter()
        .map(|route| route.receiver.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// `name=value` arguments (values may be quoted), as amtool reads them.
pub fn parse_labels(args: &[String]) -> Result<Labels, String> {
    let mut pairs = Vec::with_capacity(args.len());
    for arg in args {
        let m = matcher::parse_matcher(arg)?;
        if m.op != MatchOp::Equal {
            return Err(format!(
                "labels must be specified as key=value pairs, not `{arg}`"
            ));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}
