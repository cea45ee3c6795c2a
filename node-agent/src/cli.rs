//! Command-line interface. Every flag also reads a `NEXPOINT_NODE_*`
//! environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::state_dir::DEFAULT_STATE_DIR;

#[derive(Debug, Parser)]
#[command(name = "nexpoint-node", about = "Nexpoint node agent", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll this node with a control plane using a one-time token.
    Enroll(EnrollArgs),
    /// Run the agent: supervise the core and serve the control plane.
    Run(RunArgs),
    /// Print the agent version.
    Version,
}

#[derive(Debug, Clone, Args)]
pub struct EnrollArgs {
    /// Base URL of the control plane, e.g. https://panel.example.com
    #[arg(long, env = "NEXPOINT_NODE_CONTROL_PLANE")]
    pub control_plane: String,
    /// One-time enrollment token.
    #[arg(
        long,
        env = "NEXPOINT_NODE_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub token: String,
    /// Expected SHA-256 fingerprint (hex of DER) of the control plane's CA.
    #[arg(long, env = "NEXPOINT_NODE_CA_FINGERPRINT")]
    pub ca_fingerprint: Option<String>,
    #[arg(long, env = "NEXPOINT_NODE_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Enroll again even though this state directory holds an enrollment.
    #[arg(long, env = "NEXPOINT_NODE_FORCE")]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[arg(long, env = "NEXPOINT_NODE_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Address of the mutual-TLS gRPC server.
    #[arg(long, env = "NEXPOINT_NODE_LISTEN", default_value = "0.0.0.0:62050")]
    pub listen: SocketAddr,
    /// Core binary (default: the first of xray, v2ray on PATH).
    #[arg(long, env = "NEXPOINT_NODE_CORE_BIN")]
    pub core_bin: Option<PathBuf>,
    /// How often to read the core's traffic counters, in milliseconds.
    #[arg(long, env = "NEXPOINT_NODE_USAGE_INTERVAL_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub usage_interval_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults() {
        let cli = Cli::try_parse_from(["nexpoint-node", "run", "--state-dir", "/tmp/x"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.listen, "0.0.0.0:62050".parse().unwrap());
        assert_eq!(args.usage_interval_ms, 10_000);
        assert_eq!(args.core_bin, None);
    }
}
