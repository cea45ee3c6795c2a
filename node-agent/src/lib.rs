//! The Nexpoint node agent: supervises the local proxy core (Xray or V2Ray
//! 4.x), makes it match the desired state the control plane sends, journals
//! usage, and serves the control plane over mutual TLS.

pub mod agent_service;
pub mod applied_state;
pub mod atomic_file;
pub mod certificate_rotation;
pub mod check;
pub mod cli;
pub mod core_api;
pub mod core_config;
pub mod core_kind;
pub mod core_logs;
pub mod core_process;
pub mod core_supervisor;
pub mod encoded_users;
pub mod enroll;
pub mod enroll_bundle;
pub mod grpc_timer;
pub mod inbound_users;
pub mod metrics;
pub mod node;
pub mod node_identity;
pub mod orphan_core;
pub mod rendered_config;
pub mod run;
pub mod snapshot_route;
pub mod state_dir;
pub mod tls_incoming;
pub mod usage_journal;
pub mod wire;
