//! Secrets from files: a setting whose environment variable is hidden
//! (`hide_env_values`) can also come from the file named by `<VAR>_FILE`, or
//! from the systemd credential `nexpoint_<name>` (`<name>` is the variable
//! without `NEXPOINT_`, in kebab case: `metrics-token`). Order: flag >
//! variable > `_FILE` > credential > default. An empty file counts as unset.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Command;

/// The secret `var` from the environment, its `_FILE` or a credential.
pub fn env_secret(var: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Some(value)),
        _ => from_files(var),
    }
}

/// `cmd` with the secrets found in files as defaults of their arguments,
/// in every subcommand.
pub fn with_secret_files(mut cmd: Command) -> anyhow::Result<Command> {
    let mut found = Vec::new();
    for arg in cmd.get_arguments() {
        let Some(var) = arg.get_env().and_then(|v| v.to_str()) else {
            continue;
        };
        if !arg.is_hide_env_values_set() || std::env::var_os(var).is_some() {
            continue;
        }
        if let Some(value) = from_files(var)? {
            found.push((arg.get_id().clone(), value));
        }
    }
    for (id, value) in found {
        // Parsed once per process; clap keeps defaults as 'static strings.
        let value: &'static str = Box::leak(value.into_boxed_str());
        // A secret found in a file satisfies a required argument.
        cmd = cmd.mut_arg(id, |a| a.default_value(value).required(false));
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub = cmd
            .find_subcommand_mut(&name)
            .expect("listed just above")
            .clone();
        let sub = with_secret_files(sub)?;
        cmd = cmd.mut_subcommand(name, |_| sub);
    }
    Ok(cmd)
}

fn from_files(var: &str) -> anyhow::Result<Option<String>> {
    if let Some(path) = std::env::var_os(format!("{var}_FILE")) {
        return read_secret(Path::new(&path)).with_context(|| format!("{var}_FILE"));
    }
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Ok(None);
    };
    let path = PathBuf::from(dir).join(credential_name(var));
    if !path.exists() {
        return Ok(None);
    }
    read_secret(&path).with_context(|| format!("systemd credential for {var}"))
}

/// `NEXPOINT_METRICS_TOKEN` -> `nexpoint_metrics-token`: the name
/// `LoadCredential=nexpoint:DIR` gives the file `DIR/metrics-token`.
fn credential_name(var: &str) -> String {
    let name = var.strip_prefix("NEXPOINT_").unwrap_or(var);
    format!("nexpoint_{}", name.to_ascii_lowercase().replace('_', "-"))
}

fn read_secret(path: &Path) -> anyhow::Result<Option<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading secret file {}", path.display()))?;
    // Editors and `echo` add a final newline that is never part of a secret.
    let value = text.trim_end_matches(['\n', '\r']);
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_follow_the_variable() {
        assert_eq!(
            credential_name("NEXPOINT_METRICS_TOKEN"),
            "nexpoint_metrics-token"
        );
        assert_eq!(
            credential_name("NEXPOINT_DATABASE_URL"),
            "nexpoint_database-url"
        );
    }

    #[test]
    fn secret_files_lose_their_final_newline_and_empty_is_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read_secret(&path).unwrap().as_deref(), Some("s3cret"));
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(read_secret(&path).unwrap(), None);
        assert!(read_secret(&dir.path().join("missing")).is_err());
    }
}
