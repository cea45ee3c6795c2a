//! The TOML settings file: each key becomes the default of the argument of
//! that name, so the environment and flags still win over it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Command;
use toml::{Table, Value};

/// `--config FILE` (or `--config=FILE`) on the command line, else `env`.
pub fn path(args: &[OsString], env: &str) -> Option<PathBuf> {
    let mut args = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(|p| PathBuf::from(p.as_ref()));
        }
        if let Some(p) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os(env).map(PathBuf::from)
}

pub fn read(path: &Path) -> anyhow::Result<Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading settings file {}", path.display()))?;
    text.parse::<Table>()
        .with_context(|| format!("settings file {}", path.display()))
}

/// `command` with the file's values as defaults (in every subcommand that
/// has the setting), and the keys that no subcommand has.
pub fn apply(command: Command, table: &Table) -> (Command, Vec<String>) {
    let mut unknown = Vec::new();
    let mut command = command;
    for (key, value) in table {
        let values = match scalars(value) {
            Some(v) if key != "config" => v,
            _ => {
                unknown.push(key.clone());
                continue;
            }
        };
        let (with_value, found) = set_default(command, key, &values);
        command = with_value;
        if !found {
            unknown.push(key.clone());
        }
    }
    (command, unknown)
}

/// A scalar or an array of scalars, as clap reads them; None for tables.
fn scalars(value: &Value) -> Option<Vec<String>> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Datetime(d) => Some(d.to_string()),
        Value::Array(_) | Value::Table(_) => None,
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        v => one(v).map(|s| vec![s]),
    }
}

fn set_default(mut command: Command, key: &str, values: &[String]) -> (Command, bool) {
    let mut found = false;
    if command.get_arguments().any(|a| a.get_id() == key) {
        // Parsed once per process; clap keeps defaults as 'static strings.
        let values: Vec<&'static str> = values
            .iter()
            .map(|v| &*Box::leak(v.clone().into_boxed_str()))
            .collect();
        command = command.mut_arg(key, |a| a.default_values(values).required(false));
        found = true;
    }
    let names: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub = command
            .find_subcommand_mut(&name)
            .expect("listed just above")
            .clone();
        let (sub, in_sub) = set_default(sub, key, values);
        found |= in_sub;
        command = command.mut_subcommand(name, |_| sub);
    }
    (command, found)
}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction};

    use super::*;

    fn command() -> Command {
        Command::new("t").subcommand(
            Command::new("serve")
                .arg(Arg::new("listen").long("listen").default_value("a"))
                .arg(
                    Arg::new("ids")
                        .long("ids")
                        .value_delimiter(',')
                        .action(ArgAction::Append),
                )
                .arg(Arg::new("port").long("port").required(true)),
        )
    }

    #[test]
    fn file_values_are_defaults_below_flags_and_unknown_keys_are_reported() {
        let table: Table = "listen = \"b\"\nids = [1, 2]\nport = 7\nnope = 1\n[section]\nx = 1\n"
            .parse()
            .unwrap();
        let (cmd, unknown) = apply(command(), &table);
        assert_eq!(unknown, ["nope", "section"]);
        let m = cmd.clone().get_matches_from(["t", "serve"]);
        let serve = m.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<String>("listen").unwrap(), "b");
        assert_eq!(serve.get_one::<String>("port").unwrap(), "7");
        let ids: Vec<_> = serve.get_many::<String>("ids").unwrap().collect();
        assert_eq!(ids, ["1", "2"]);
        let m = cmd.get_matches_from(["t", "serve", "--listen", "c"]);
        let serve = m.subcommand_matches("serve").unwrap();
        assert_eq!(serve.get_one::<String>("listen").unwrap(), "c");
    }

    #[test]
    fn the_file_comes_from_the_flag_first() {
        let args: Vec<OsString> = ["x", "serve", "--config=/a.toml"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(path(&args, "UNSET_IN_TESTS_X"), Some("/a.toml".into()));
        let args: Vec<OsString> = ["x", "--config", "/b.toml", "--", "--config", "/c"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(path(&args, "UNSET_IN_TESTS_X"), Some("/b.toml".into()));
    }
}
