//! What a node agent keeps in its state dir, read from the outside: the
//! record of the core it runs (`core-run.json`) and the usage journal's
//! baseline (`usage-journal.json`). Plus a core launcher that moves the
//! template's inbound ports, so two nodes of one control plane can run on
//! one host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use serde::Deserialize;

use crate::node::Node;

/// `core-run.json`: the core the agent started last.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct CoreRunRecord {
    pub pid: u32,
    pub instance: String,
    pub api_port: u16,
}

/// The agent's record of its running core (fails while there is none).
pub fn core_run(node: &Node) -> Result<CoreRunRecord> {
    let path = node.state_dir.path().join("core-run.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// The agent's current core, checked to be a live process running the core
/// binary: its record and the core's command line.
pub fn live_core(node: &Node) -> Result<CoreRunRecord> {
    let record = core_run(node)?;
    ensure!(
        is_alive(record.pid),
        "the core pid {} of core-run.json is not running",
        record.pid
    );
    let cmdline = cmdline(record.pid)?;
    ensure!(
        cmdline.contains("-config") || cmdline.contains("run"),
        "pid {} is not a core: {cmdline:?}",
        record.pid
    );
    Ok(record)
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "PID (COMM) STATE ...": COMM may contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// `/proc/PID/cmdline` with spaces between the arguments.
pub fn cmdline(pid: u32) -> Result<String> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline"))
        .with_context(|| format!("reading /proc/{pid}/cmdline"))?;
    Ok(bytes
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" "))
}

#[derive(Deserialize)]
struct JournalFile {
    baseline: Baseline,
}

/// The usage journal's baseline: the counters of one core run as the agent
/// last journaled them.
#[derive(Clone, Debug, Deserialize)]
pub struct Baseline {
    pub core_run: String,
    pub counters: BTreeMap<String, i64>,
}

/// The baseline of the agent's usage journal (`usage-journal.json`).
pub fn journal_baseline(node: &Node) -> Result<Baseline> {
    let path = node.state_dir.path().join("usage-journal.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: JournalFile =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    Ok(file.baseline)
}

/// Writes an executable `core` script into `dir` that runs `core_bin` with
/// the given arguments after moving, in the config file it is given
/// (`-config FILE`, `-c FILE`), every inbound port `from` to `to`.
///
/// Every node of a control plane serves the same inbounds on the same
/// ports; on one test host a second node's core needs ports of its own, as
/// a port forward in front of a real second host would give it. The script
/// `exec`s the core, so the pid the agent records is the core's.
pub fn port_moving_core(dir: &Path, core_bin: &Path, moves: &[(u16, u16)]) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let mut seds = String::new();
    for (from, to) in moves {
        // The agent writes pretty JSON: `"port": N` then `,` or a line end.
        seds.push_str(&format!(
            " -e 's/\"port\": {from}\\([,}}]\\|$\\)/\"port\": {to}\\1/'"
        ));
    }
    let script = format!(
        r#"#!/bin/sh
# A node's core whose inbounds listen on ports of their own (see agent_state.rs).
prev=
for arg in "$@"; do
  case "$prev" in
    -config|-c|--config) sed -i{seds} "$arg" || exit 97 ;;
  esac
  prev=$arg
done
exec '{core}' "$@"
"#,
        core = core_bin.display()
    );
    let path = dir.join("core");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_moving_core_rewrites_only_the_given_ports() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("core.json");
        std::fs::write(
            &config,
            "{\n  \"inbounds\": [\n    {\n      \"port\": 20001,\n      \"tag\": \"A\"\n    },\n    {\n      \"tag\": \"B\",\n      \"port\": 20002\n    },\n    {\"port\": 200011}\n  ]\n}\n",
        )
        .unwrap();
        let core = port_moving_core(
            dir.path(),
            Path::new("/bin/true"),
            &[(20001, 30001), (20002, 30002)],
        )
        .unwrap();
        let status = std::process::Command::new(&core)
            .arg("-config")
            .arg(&config)
            .status()
            .unwrap();
        assert!(status.success());
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains("\"port\": 30001,"), "{text}");
        assert!(text.contains("\"port\": 30002\n"), "{text}");
        assert!(text.contains("\"port\": 200011}"), "{text}");
        assert!(
            !text.contains("20001,") && !text.contains("20002\n"),
            "{text}"
        );
    }
}
