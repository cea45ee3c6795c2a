//! Starting a stopped control plane again on its own data dir, as an
//! operator brings a panel back after an outage.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::control_plane::{ADMIN_USERNAME, ControlPlane, STARTUP_TIMEOUT, login};
use crate::paths::nexpoint_bin;
use crate::process::{ChildProcess, Stream};

/// Runs `nexpoint serve` again on `cp`'s data dir, database, core config and
/// extra flags (`--node-sync-interval-ms node_sync_interval_ms`), stopping it first if it
/// still runs. Its HTTP port is a new one: `cp.base_url`, its token and its
/// clients are replaced.
pub async fn restart_control_plane(
    cp: &mut ControlPlane,
    node_sync_interval_ms: u64,
) -> Result<()> {
    if cp.process.try_status().is_none() {
        cp.stop().await?;
    }
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--data-dir".into(),
        cp.data_dir().display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--core-config".into(),
        cp.dir.path().join("core-config.json").display().to_string(),
        "--node-sync-interval-ms".into(),
        node_sync_interval_ms.to_string(),
    ];
    if let Some(url) = &cp.options.database_url {
        args.push("--database-url".into());
        args.push(url.clone());
    }
    args.extend(cp.options.extra_args.iter().cloned());
    let mut env = vec![
        ("NEXPOINT_SUDO_USERNAME", ADMIN_USERNAME),
        ("NEXPOINT_SUDO_PASSWORD", cp.admin_password.as_str()),
        ("NO_COLOR", "1"),
    ];
    env.extend(
        cp.options
            .extra_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut process = ChildProcess::spawn("nexpoint (restarted)", nexpoint_bin(), &args, &env)?;
    let line = process
        .wait_for_line(Some(Stream::Stdout), STARTUP_TIMEOUT, |l| {
            l.starts_with("listening on ")
        })
        .await
        .context("restarted `nexpoint serve` readiness line")?;
    let base_url = line["listening on ".len()..]
        .trim()
        .trim_end_matches('/')
        .to_string();
    if !base_url.starts_with("http://127.0.0.1:") {
        bail!("readiness line {line:?} does not name http://127.0.0.1:PORT");
    }
    let anonymous = client_builder().build()?;
    let token = login(&anonymous, &base_url, ADMIN_USERNAME, &cp.admin_password)
        .await
        .context("logging in to the restarted control plane")?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    cp.http = client_builder().default_headers(headers).build()?;
    cp.anonymous = anonymous;
    cp.token = token;
    cp.base_url = base_url;
    cp.process = process;
    Ok(())
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
}
