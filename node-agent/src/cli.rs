//! Command-line interface. Every flag also reads a `NEXPOINT_NODE_*`
//! environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::state_dir::DEFAULT_STATE_DIR;

#[derive(Debug, Parser)]
#[command(name = "nexpoint-node", about = "Nexpoint node agent", version)]
pub struct Cli {
    /// Log lines as text for people or JSON (one object a line) for collectors.
    #[arg(long, global = true, env = "NEXPOINT_NODE_LOG_FORMAT", value_enum,
          default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll this node: online with a one-time token, or offline with a bundle.
    Enroll(EnrollArgs),
    /// Run the agent: supervise the core and serve the control plane.
    Run(RunArgs),
    /// Print the agent version.
    Version,
}

/// Two ways to enroll: online with `--control-plane` and `--token`, or
/// offline with a bundle the control plane made (`nexpoint node bundle`).
#[derive(Debug, Clone, Args)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .multiple(true)
        .args(["control_plane", "token", "bundle", "bundle_file"])
))]
pub struct EnrollArgs {
    /// Base URL of the control plane, e.g. https://panel.example.com
    #[arg(
        long,
        env = "NEXPOINT_NODE_CONTROL_PLANE",
        value_name = "URL",
        requires = "token",
        conflicts_with_all = ["bundle", "bundle_file"]
    )]
    pub control_plane: Option<String>,
    /// One-time enrollment token.
    #[arg(
        long,
        env = "NEXPOINT_NODE_TOKEN",
        hide_env_values = true,
        allow_hyphen_values = true,
        requires = "control_plane",
        conflicts_with_all = ["bundle", "bundle_file"]
    )]
    pub token: Option<String>,
    /// Offline enrollment bundle (`nexpoint-bundle-v1:...`) instead of
    /// --control-plane/--token. It holds the node's key: prefer --bundle-file.
    #[arg(
        long,
        env = "NEXPOINT_NODE_BUNDLE",
        value_name = "BUNDLE",
        hide_env_values = true,
        conflicts_with = "bundle_file"
    )]
    pub bundle: Option<String>,
    /// File holding the offline enrollment bundle; `-` reads standard input.
    #[arg(long, env = "NEXPOINT_NODE_BUNDLE_FILE", value_name = "PATH")]
    pub bundle_file: Option<PathBuf>,
    /// Expected SHA-256 fingerprint (hex of DER) of the control plane's CA.
    #[arg(long, env = "NEXPOINT_NODE_CA_FINGERPRINT")]
    pub ca_fingerprint: Option<String>,
    #[arg(long, env = "NEXPOINT_NODE_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Enroll again even though this state directory holds an enrollment.
    #[arg(long, env = "NEXPOINT_NODE_FORCE")]
    pub force: bool,
}

/// Where the enrollment comes from, as chosen on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollSource {
    Token {
        control_plane: String,
        token: String,
    },
    Bundle(String),
    BundleFile(PathBuf),
}

impl EnrollArgs {
    /// Clap guarantees exactly one complete source.
    pub fn source(&self) -> EnrollSource {
        match (
            &self.control_plane,
            &self.token,
            &self.bundle,
            &self.bundle_file,
        ) {
            (_, _, Some(bundle), _) => EnrollSource::Bundle(bundle.clone()),
            (_, _, _, Some(path)) => EnrollSource::BundleFile(path.clone()),
            (control_plane, token, None, None) => EnrollSource::Token {
                control_plane: control_plane.clone().unwrap_or_default(),
                token: token.clone().unwrap_or_default(),
            },
        }
    }
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
    /// Plain-HTTP address of Prometheus `/metrics`; keep it on loopback or a
    /// private network (it needs no credentials).
    #[arg(
        long,
        env = "NEXPOINT_NODE_METRICS_LISTEN",
        default_value = "127.0.0.1:62051"
    )]
    pub metrics_listen: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    fn enroll(args: &[&str]) -> Result<EnrollArgs, clap::Error> {
        let argv = ["nexpoint-node", "enroll", "--state-dir", "/tmp/x"];
        let cli = Cli::try_parse_from(argv.iter().chain(args))?;
        let Command::Enroll(args) = cli.command else {
            panic!("not enroll")
        };
        Ok(args)
    }

    #[test]
    fn enroll_sources() {
        assert_eq!(
            enroll(&["--control-plane", "https://cp", "--token", "-t"])
                .unwrap()
                .source(),
            EnrollSource::Token {
                control_plane: "https://cp".into(),
                token: "-t".into()
            }
        );
        assert_eq!(
            enroll(&["--bundle", "nexpoint-bundle-v1:x"])
                .unwrap()
                .source(),
            EnrollSource::Bundle("nexpoint-bundle-v1:x".into())
        );
        assert_eq!(
            enroll(&["--bundle-file", "-", "--force"]).unwrap().source(),
            EnrollSource::BundleFile("-".into())
        );
    }

    #[test]
    fn enroll_sources_are_exclusive_and_complete() {
        let refused = |args: &[&str], expected: &str| {
            let message = enroll(args).unwrap_err().to_string();
            assert!(message.contains(expected), "{args:?}: {message}");
        };
        refused(&[], "--control-plane");
        refused(&["--control-plane", "https://cp"], "--token");
        refused(&["--token", "t"], "--control-plane");
        refused(
            &[
                "--control-plane",
                "https://cp",
                "--token",
                "t",
                "--bundle",
                "b",
            ],
            "cannot be used with",
        );
        refused(&["--bundle", "b", "--token", "t"], "cannot be used with");
        refused(
            &["--bundle", "b", "--bundle-file", "f"],
            "cannot be used with",
        );
        refused(
            &["--bundle-file", "f", "--control-plane", "https://cp"],
            "cannot be used with",
        );
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
