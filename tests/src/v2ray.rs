//! V2Ray run directly by the harness (not through the agent), to test the
//! harness's own pieces against the real core.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::net::wait_for_tcp;
use crate::paths::v2ray_bin;
use crate::process::ChildProcess;

/// A server config for V2Ray 4.34: the given inbounds (with their clients),
/// per-user stats, and the stats API on a dokodemo-door inbound at `api_port`.
pub fn server_config(inbounds: Vec<Value>, api_port: u16) -> Value {
    let mut all = vec![json!({
        "tag": "api-in",
        "listen": "127.0.0.1",
        "port": api_port,
        "protocol": "dokodemo-door",
        "settings": {"address": "127.0.0.1"},
    })];
    all.extend(inbounds);
    json!({
        "log": {"loglevel": "warning"},
        "api": {"tag": "api", "services": ["HandlerService", "StatsService"]},
        "stats": {},
        "policy": {
            "levels": {"0": {"statsUserUplink": true, "statsUserDownlink": true}},
            "system": {"statsInboundUplink": true, "statsInboundDownlink": true},
        },
        "inbounds": all,
        "outbounds": [{"protocol": "freedom", "tag": "direct"}],
        "routing": {"rules": [{"type": "field", "inboundTag": ["api-in"], "outboundTag": "api"}]},
    })
}

pub struct V2rayServer {
    pub process: ChildProcess,
    _dir: TempDir,
}

impl V2rayServer {
    /// Validates the config with `v2ray -test`, runs it, and waits until each
    /// of `ports` accepts TCP connections.
    pub async fn start(config: &Value, ports: &[u16]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("nexpoint-v2ray")
            .tempdir()?;
        let path = dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(config)?)?;
        let config_arg = path.as_os_str();

        let mut test = ChildProcess::spawn(
            "v2ray -test",
            v2ray_bin(),
            [
                Path::new("-test").as_os_str(),
                "-config".as_ref(),
                config_arg,
            ],
            &[],
        )?;
        let status = test.wait_exit(Duration::from_secs(30)).await?;
        ensure!(
            status.success(),
            "v2ray -test failed:\n{}",
            test.output_text()
        );

        let mut process =
            ChildProcess::spawn("v2ray", v2ray_bin(), ["-config".as_ref(), config_arg], &[])?;
        for port in ports {
            if let Err(e) =
                wait_for_tcp(([127, 0, 0, 1], *port).into(), Duration::from_secs(15)).await
            {
                let status = process.try_status();
                anyhow::bail!(
                    "v2ray ({status:?}) not listening: {e:#}\n{}",
                    process.tail(40)
                );
            }
        }
        Ok(Self { process, _dir: dir })
    }
}
