//! The Nexpoint control plane: REST API, subscriptions, node reconciliation.

pub mod api;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod domain;
pub mod host_stats;
pub mod jobs;
pub mod local_node;
pub mod metrics;
pub mod nodes;
pub mod notify;
pub mod pki;
pub mod serve;
pub mod store;
pub mod subscription;
pub mod time_fmt;
