//! The example settings file, generated from the clap definitions: every
//! setting with its help, its variable and its default, commented out.

use std::fmt::Write;

use clap::{Arg, ArgAction, Command};

/// Every setting of `command` (and of `root`'s global flags), as TOML
/// comments under `header`.
pub fn example(root: &Command, command: &Command, header: &str) -> String {
    let mut out = String::new();
    comment(&mut out, header);
    let globals = root.get_arguments().filter(|a| a.is_global_set());
    for arg in globals.chain(command.get_arguments()) {
        let id = arg.get_id().as_str();
        if arg.is_positional() || arg.is_hide_set() || ["help", "version", "config"].contains(&id) {
            continue;
        }
        out.push('\n');
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        comment(&mut out, &help);
        if let Some(env) = arg.get_env() {
            let env = env.to_string_lossy();
            if arg.is_hide_env_values_set() {
                let _ = writeln!(out, "# env: {env} (a secret: prefer {env}_FILE)");
            } else {
                let _ = writeln!(out, "# env: {env}");
            }
        }
        let _ = writeln!(out, "#{id} = {}", value(arg));
    }
    out
}

fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{}", format!("# {line}").trim_end());
    }
}

fn value(arg: &Arg) -> String {
    let list = arg.get_value_delimiter().is_some() || matches!(arg.get_action(), ArgAction::Append);
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| literal(&v.to_string_lossy()))
        .collect();
    match (list, defaults.as_slice()) {
        (true, _) => format!("[{}]", defaults.join(", ")),
        (false, [one]) => one.clone(),
        (false, _) if matches!(arg.get_action(), ArgAction::SetTrue) => "false".into(),
        (false, _) => "\"\"".into(),
    }
}

/// Numbers and booleans bare, everything else a TOML string.
fn literal(v: &str) -> String {
    if v == "true" || v == "false" || v.parse::<i64>().is_ok() {
        return v.to_owned();
    }
    let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_lists_settings_with_help_env_and_defaults() {
        let root = Command::new("t").arg(
            Arg::new("log")
                .long("log")
                .global(true)
                .default_value("text"),
        );
        let serve = Command::new("serve")
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .help("Where to listen.")
                    .env("T_LISTEN")
                    .default_value("127.0.0.1:1"),
            )
            .arg(Arg::new("n").long("n").default_value("5"))
            .arg(Arg::new("ids").long("ids").value_delimiter(','))
            .arg(
                Arg::new("token")
                    .long("token")
                    .env("T_TOKEN")
                    .hide_env_values(true),
            );
        let text = example(&root, &serve, "Header");
        assert_eq!(
            text,
            "# Header\n\n#log = \"text\"\n\n# Where to listen.\n# env: T_LISTEN\n\
             #listen = \"127.0.0.1:1\"\n\n#n = 5\n\n#ids = []\n\n\
             # env: T_TOKEN (a secret: prefer T_TOKEN_FILE)\n#token = \"\"\n"
        );
        // What it shows parses as TOML once uncommented.
        let uncommented: String = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix('#')
                    .filter(|l| !l.starts_with(' ') && !l.is_empty())
            })
            .map(|l| format!("{l}\n"))
            .collect();
        uncommented.parse::<toml::Table>().unwrap();
    }
}
