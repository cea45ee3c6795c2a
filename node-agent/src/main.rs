use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use nexpoint_node::cli::{Cli, Command, LogFormat};
use nexpoint_node::node::AGENT_VERSION;
use nexpoint_node::{enroll, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("NEXPOINT_NODE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        );
    match cli.log_format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        // Colour only on a terminal (not in journald or captured output).
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .init(),
    }

    let result = match &cli.command {
        Command::Version => {
            println!("nexpoint-node {AGENT_VERSION}");
            Ok(())
        }
        Command::Enroll(args) => enroll::enroll(args).await.map(|e| {
            println!(
                "enrolled as node {} ({}); state in {}",
                e.node_id,
                e.name,
                args.state_dir.display()
            );
        }),
        Command::Run(args) => run::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
