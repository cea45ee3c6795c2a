use std::io::IsTerminal;
use std::process::ExitCode;

use nexpoint_node::check;
use nexpoint_node::cli::{Cli, Command, ConfigCommand, LogFormat, config_example};
use nexpoint_node::node::AGENT_VERSION;
use nexpoint_node::{enroll, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = match Cli::parse_layered() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = parsed.cli;
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

    for warning in &parsed.warnings {
        tracing::warn!("{warning}");
    }

    let result = match &cli.command {
        Command::Config(ConfigCommand::Example) => {
            print!("{}", config_example());
            Ok(())
        }
        Command::Check(args) => {
            let findings = check::check(args).await;
            for f in &findings {
                println!("{} {}", if f.ok { "ok:   " } else { "error:" }, f.message);
            }
            return if findings.iter().all(|f| f.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
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
