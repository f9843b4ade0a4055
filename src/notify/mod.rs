//! Notifications with Alertmanager's semantics: its configuration file read unchanged, its
//! routing tree, grouping, inhibition, silences, time intervals and notification log.
//!
//! The modules here are pure: they take time as a parameter and do no IO, so the same code
//! answers `prismwatch notify routes` and drives the daemon's dispatcher.

pub mod alert;
pub mod config;
pub mod dispatch;
pub mod inhibit;
pub mod matcher;
pub mod route;
pub mod silence;
pub mod time_interval;
pub mod tool;

// Delivery: IO at the edges (store, transports, the actor).
pub mod actor;
pub mod email;
pub mod forward;
pub mod message;
pub mod outbox;
pub mod webhook;
