//! Notifications: alerts from the rules become e-mails, webhooks and forwarded alerts.

pub mod email;
pub mod message;
pub mod webhook;
