//! The end-to-end test harness: the real `nexpoint` and `nexpoint-node` binaries,
//! a real proxy core (V2Ray 4.34) and a real proxy client (sing-box), all on
//! loopback, each test in its own temporary directories with its own ports.
//!
//! Readiness is always observed, never assumed: a process is ready when it
//! prints its readiness line ([`process::ChildProcess::wait_for_line`]), a
//! listener when a TCP connect succeeds, a remote state when a bounded poll
//! ([`net::wait_until`]) sees it. No fixed sleeps.

pub mod agent_state;
pub mod control_plane;
pub mod control_plane_restart;
pub mod core_stats;
pub mod core_users;
pub mod echo;
pub mod http_server;
pub mod links;
pub mod net;
pub mod node;
pub mod paths;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod receivers;
pub mod sing_box;
pub mod socks;
pub mod steps;
pub mod test_ca;
pub mod v2ray;

pub use control_plane::{ControlPlane, ControlPlaneOptions, CoreTemplate};
pub use http_server::TestHttpServer;
pub use links::{Protocol, ShareLink};
pub use net::{free_port, wait_for_tcp, wait_until};
pub use node::Node;
pub use process::ChildProcess;
pub use sing_box::SingBoxClient;
