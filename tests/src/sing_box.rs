//! sing-box as the subscriber's client: a SOCKS inbound on loopback and one
//! proxy outbound built from a share link (sing-box 1.14 schema).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::links::{Protocol, ShareLink};
use crate::net::{POLL_INTERVAL, free_port};
use crate::paths::sing_box_bin;
use crate::process::ChildProcess;

fn non_empty(v: Option<&str>) -> Option<String> {
    v.filter(|s| !s.is_empty()).map(String::from)
}

fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The sing-box outbound (tag `proxy`) for a share link.
pub fn outbound(link: &ShareLink) -> Result<Value> {
    let mut out = json!({
        "tag": "proxy",
        "server": link.host,
        "server_port": link.port,
    });
    let o = out.as_object_mut().unwrap();
    match link.protocol {
        Protocol::Vmess => {
            o.insert("type".into(), "vmess".into());
            o.insert("uuid".into(), link.secret.clone().into());
            o.insert(
                "security".into(),
                link.method.clone().unwrap_or_else(|| "auto".into()).into(),
            );
            o.insert("alter_id".into(), link.alter_id.into());
        }
        Protocol::Vless => {
            o.insert("type".into(), "vless".into());
            o.insert("uuid".into(), link.secret.clone().into());
            if let Some(flow) = non_empty(link.param("flow")) {
                o.insert("flow".into(), flow.into());
            }
        }
        Protocol::Trojan => {
            o.insert("type".into(), "trojan".into());
            o.insert("password".into(), link.secret.clone().into());
        }
        Protocol::Shadowsocks => {
            o.insert("type".into(), "shadowsocks".into());
            o.insert(
                "method".into(),
                link.method
                    .clone()
                    .context("ss link without method")?
                    .into(),
            );
            o.insert("password".into(), link.secret.clone().into());
        }
    }

    match link.security.as_str() {
        "none" => {}
        "tls" | "reality" => {
            let sni = non_empty(link.param("sni"))
                .or_else(|| non_empty(link.param("host")))
                .unwrap_or_else(|| link.host.clone());
            let mut tls = json!({"enabled": true, "server_name": sni});
            let insecure = matches!(link.param("allowInsecure"), Some("1" | "true"));
            if insecure {
                tls["insecure"] = true.into();
            }
            if let Some(alpn) = link.param("alpn") {
                tls["alpn"] = comma_list(alpn).into();
            }
            // The PyPI sing-box build has no uTLS: a fingerprint is only
            // emitted where it is required (REALITY).
            let fp = non_empty(link.param("fp"));
            if link.security == "reality" {
                tls["reality"] = json!({
                    "enabled": true,
                    "public_key": link.param("pbk").context("reality link without pbk")?,
                    "short_id": link.param("sid").unwrap_or_default(),
                });
                tls["utls"] =
                    json!({"enabled": true, "fingerprint": fp.unwrap_or_else(|| "chrome".into())});
            }
            o.insert("tls".into(), tls);
        }
        other => bail!("unsupported security {other:?}"),
    }

    // vmess JSON calls the header type `type`; URLs call it `headerType`.
    let header_type = match link.protocol {
        Protocol::Vmess => link.param("type"),
        _ => link.param("headerType"),
    };
    let host = non_empty(link.param("host"));
    let path = non_empty(link.param("path"));
    let transport = match link.network.as_str() {
        "tcp" | "raw" => {
            ensure!(
                matches!(header_type, None | Some("none")),
                "sing-box has no tcp header obfuscation ({header_type:?})"
            );
            None
        }
        "ws" => {
            let mut t = json!({"type": "ws"});
            if let Some(p) = path {
                t["path"] = p.into();
            }
            if let Some(h) = host {
                t["headers"] = json!({"Host": h});
            }
            Some(t)
        }
        "httpupgrade" => {
            let mut t = json!({"type": "httpupgrade"});
            if let Some(p) = path {
                t["path"] = p.into();
            }
            if let Some(h) = host {
                t["host"] = h.into();
            }
            Some(t)
        }
        "grpc" => {
            let service = match link.protocol {
                Protocol::Vmess => link.param("path"),
                _ => link.param("serviceName"),
            };
            Some(json!({"type": "grpc", "service_name": service.unwrap_or_default()}))
        }
        "http" | "h2" => {
            let mut t = json!({"type": "http"});
            if let Some(h) = host {
                t["host"] = comma_list(&h).into();
            }
            if let Some(p) = path {
                t["path"] = p.into();
            }
            Some(t)
        }
        other => bail!("sing-box has no {other:?} transport"),
    };
    if let Some(t) = transport {
        o.insert("transport".into(), t);
    }
    Ok(out)
}

/// A complete client config: SOCKS on 127.0.0.1:`socks_port`, everything to the proxy.
pub fn client_config(link: &ShareLink, socks_port: u16) -> Result<Value> {
    Ok(json!({
        "log": {"level": "warn", "timestamp": true},
        "inbounds": [{
            "type": "socks",
            "tag": "socks-in",
            "listen": "127.0.0.1",
            "listen_port": socks_port,
        }],
        "outbounds": [outbound(link)?],
        "route": {"final": "proxy"},
    }))
}

/// `sing-box check -c FILE`: Ok when sing-box accepts the config.
pub async fn check(config_path: &Path) -> Result<()> {
    let mut p = ChildProcess::spawn(
        "sing-box check",
        sing_box_bin(),
        ["check", "-c"].iter().map(Path::new).chain([config_path]),
        &[],
    )?;
    let status = p.wait_exit(Duration::from_secs(30)).await?;
    ensure!(
        status.success(),
        "sing-box check rejected {}: {status}\n{}",
        config_path.display(),
        p.output_text()
    );
    Ok(())
}

/// A running sing-box client.
pub struct SingBoxClient {
    pub process: ChildProcess,
    pub socks: SocketAddr,
    pub config_path: PathBuf,
    _dir: TempDir,
}

impl SingBoxClient {
    /// Writes the config for `link`, checks it, runs it, and waits until its
    /// SOCKS inbound accepts connections.
    pub async fn start(link: &ShareLink) -> Result<Self> {
        let socks_port = free_port();
        let config = client_config(link, socks_port)?;
        let dir = tempfile::Builder::new()
            .prefix("nexpoint-sing-box")
            .tempdir()?;
        let config_path = dir.path().join("client.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
        check(&config_path).await?;
        let mut process = ChildProcess::spawn(
            "sing-box",
            sing_box_bin(),
            ["run", "-c"]
                .iter()
                .map(Path::new)
                .chain([config_path.as_path()]),
            &[],
        )?;
        let socks: SocketAddr = ([127, 0, 0, 1], socks_port).into();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = process.try_status() {
                bail!(
                    "sing-box exited ({status}) before listening:\n{}",
                    process.tail(40)
                );
            }
            if tokio::net::TcpStream::connect(socks).await.is_ok() {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "sing-box did not listen on {socks} within 15s:\n{}",
                process.tail(40)
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Ok(Self {
            process,
            socks,
            config_path,
            _dir: dir,
        })
    }
}
