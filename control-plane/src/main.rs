use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match nexpoint::cli::Cli::parse_layered() {
        Ok(parsed) => {
            parsed.cli.log_format.init("NEXPOINT_LOG");
            for warning in &parsed.warnings {
                tracing::warn!("{warning}");
            }
            parsed.cli
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(nexpoint::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(nexpoint::cli::output::exit_code(&e))
        }
    }
}
