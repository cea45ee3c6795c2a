//! Layered settings for both daemons, over their clap definitions so there
//! is one list of settings: defaults < TOML file (`--config`) < environment
//! (with `*_FILE` and systemd credentials for secrets) < flags. The file's
//! keys are the flags' names in snake case; unknown keys are reported, not
//! fatal, so a file can serve two versions during an upgrade. The example
//! file is generated from the same definitions ([`example`]). The crate also
//! holds the rest both daemons share with systemd: credentials for secrets
//! and the readiness protocol ([`sd_notify`]).

mod example;
mod file;
pub mod sd_notify;
pub mod secrets;

use std::ffi::OsString;

use clap::Parser;

pub use example::example;
pub use secrets::env_secret;

/// The command line as parsed, and what the settings file had that no
/// setting takes (to be logged once logging is set up).
pub struct Parsed<T> {
    pub cli: T,
    pub warnings: Vec<String>,
}

/// Parses the process's arguments into `T` through every layer. The
/// settings file comes from `--config FILE` or the variable `config_env`.
/// A usage error exits with clap's status 2, as `Parser::parse` does.
pub fn parse<T: Parser>(config_env: &str) -> anyhow::Result<Parsed<T>> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let mut command = T::command();
    let mut warnings = Vec::new();
    if let Some(path) = file::path(&args, config_env) {
        let table = file::read(&path)?;
        let (with_file, unknown) = file::apply(command, &table);
        command = with_file;
        warnings.extend(
            unknown
                .into_iter()
                .map(|key| format!("{}: unknown setting {key:?} ignored", path.display())),
        );
    }
    let matches = secrets::with_secret_files(command)?.get_matches_from(args);
    Ok(Parsed {
        cli: T::from_arg_matches(&matches)?,
        warnings,
    })
}
