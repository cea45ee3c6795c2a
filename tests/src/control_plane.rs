//! The control plane under test: `nexpoint serve` on a temporary data dir, an
//! authenticated REST client, and the Marzban-compatible calls the tests use.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::links::{ShareLink, decode_subscription};
use crate::net::free_ports;
use crate::paths::nexpoint_bin;
use crate::process::{ChildProcess, Stream};

pub const ADMIN_USERNAME: &str = "e2e-admin";

/// How long `nexpoint serve` may take to print its readiness line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The inbounds the control plane assigns to nodes, on free loopback ports.
#[derive(Clone, Debug)]
pub struct CoreTemplate {
    pub vmess_port: u16,
    pub vless_port: u16,
    pub trojan_port: u16,
    pub shadowsocks_port: u16,
}

impl CoreTemplate {
    pub fn with_free_ports() -> Self {
        let p = free_ports(4);
        Self {
            vmess_port: p[0],
            vless_port: p[1],
            trojan_port: p[2],
            shadowsocks_port: p[3],
        }
    }

    /// Xray-format JSON: inbounds without clients, like Marzban's `xray_config.json`.
    pub fn json(&self) -> Value {
        json!({
            "log": {"loglevel": "warning"},
            "inbounds": [
                {
                    "tag": "VMESS_TCP", "protocol": "vmess", "listen": "127.0.0.1",
                    "port": self.vmess_port,
                    "settings": {"clients": []},
                    "streamSettings": {"network": "tcp", "security": "none"},
                },
                {
                    "tag": "VLESS_TCP", "protocol": "vless", "listen": "127.0.0.1",
                    "port": self.vless_port,
                    "settings": {"clients": [], "decryption": "none"},
                    "streamSettings": {"network": "tcp", "security": "none"},
                },
                {
                    "tag": "TROJAN_TCP", "protocol": "trojan", "listen": "127.0.0.1",
                    "port": self.trojan_port,
                    "settings": {"clients": []},
                    "streamSettings": {"network": "tcp", "security": "none"},
                },
                {
                    "tag": "SS_TCP", "protocol": "shadowsocks", "listen": "127.0.0.1",
                    "port": self.shadowsocks_port,
                    "settings": {"clients": [], "method": "chacha20-ietf-poly1305", "network": "tcp,udp"},
                },
            ],
            "outbounds": [
                {"protocol": "freedom", "tag": "DIRECT"},
                {"protocol": "blackhole", "tag": "BLOCK"},
            ],
            "routing": {"rules": []},
        })
    }

    pub fn port_of(&self, tag: &str) -> Option<u16> {
        match tag {
            "VMESS_TCP" => Some(self.vmess_port),
            "VLESS_TCP" => Some(self.vless_port),
            "TROJAN_TCP" => Some(self.trojan_port),
            "SS_TCP" => Some(self.shadowsocks_port),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ControlPlaneOptions {
    /// `--database-url`; `None` = the embedded SQLite in the data dir.
    pub database_url: Option<String>,
    /// `--node-sync-interval-ms` (default 250 for quick tests).
    pub node_sync_interval_ms: Option<u64>,
    /// Changes the generated core config template before the control plane reads it.
    pub edit_core_config: Option<fn(&mut Value)>,
    /// More `serve` flags (notification destinations, job intervals), kept
    /// across restarts.
    pub extra_args: Vec<String>,
    /// More environment variables for `serve`, kept across restarts.
    pub extra_env: Vec<(String, String)>,
}

/// A node as created by `POST /api/node`, with what enrollment needs.
#[derive(Clone, Debug)]
pub struct CreatedNode {
    pub id: i64,
    pub name: String,
    pub enrollment_token: String,
    pub ca_fingerprint: String,
    pub enrollment_command: String,
    pub json: Value,
}

pub struct ControlPlane {
    pub process: ChildProcess,
    /// `http://127.0.0.1:PORT`, from the readiness line.
    pub base_url: String,
    pub admin_password: String,
    pub token: String,
    /// Sends the admin's bearer token.
    pub http: reqwest::Client,
    /// Sends no credentials.
    pub anonymous: reqwest::Client,
    pub core: CoreTemplate,
    pub dir: TempDir,
    /// What it was started with, for restarts.
    pub options: ControlPlaneOptions,
}

fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
}

impl ControlPlane {
    pub async fn start() -> Result<Self> {
        Self::start_with(ControlPlaneOptions::default()).await
    }

    pub async fn start_with(opts: ControlPlaneOptions) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("nexpoint-cp").tempdir()?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir)?;
        let core = CoreTemplate::with_free_ports();
        let core_config = dir.path().join("core-config.json");
        let mut template = core.json();
        if let Some(edit) = opts.edit_core_config {
            edit(&mut template);
        }
        std::fs::write(&core_config, serde_json::to_vec_pretty(&template)?)?;
        let admin_password = format!("pw-{}", uuid::Uuid::new_v4().simple());

        let mut args: Vec<String> = vec![
            "serve".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--core-config".into(),
            core_config.display().to_string(),
            "--node-sync-interval-ms".into(),
            opts.node_sync_interval_ms.unwrap_or(250).to_string(),
        ];
        if let Some(url) = &opts.database_url {
            args.push("--database-url".into());
            args.push(url.clone());
        }
        args.extend(opts.extra_args.iter().cloned());
        let mut env = vec![
            ("NEXPOINT_SUDO_USERNAME", ADMIN_USERNAME),
            ("NEXPOINT_SUDO_PASSWORD", admin_password.as_str()),
            ("NO_COLOR", "1"),
        ];
        env.extend(opts.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut process = ChildProcess::spawn("nexpoint", nexpoint_bin(), &args, &env)?;
        let line = process
            .wait_for_line(Some(Stream::Stdout), STARTUP_TIMEOUT, |l| {
                l.starts_with("listening on ")
            })
            .await
            .context("`nexpoint serve` readiness line `listening on http://127.0.0.1:PORT`")?;
        let base_url = line["listening on ".len()..]
            .trim()
            .trim_end_matches('/')
            .to_string();
        if !base_url.starts_with("http://127.0.0.1:") {
            bail!("readiness line {line:?} does not name http://127.0.0.1:PORT");
        }

        let anonymous = client_builder().build()?;
        let token = login(&anonymous, &base_url, ADMIN_USERNAME, &admin_password)
            .await
            .context("logging in as the sudo admin from NEXPOINT_SUDO_USERNAME/PASSWORD")?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
        let http = client_builder().default_headers(headers).build()?;
        Ok(Self {
            process,
            base_url,
            admin_password,
            token,
            http,
            anonymous,
            core,
            dir,
            options: opts,
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// An absolute URL for `path` (`/api/...`), or `path` itself if it is absolute.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base_url, path)
        }
    }

    /// An authenticated request.
    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub async fn create_user(&self, body: &Value) -> Result<Value> {
        expect_success(
            self.api(Method::POST, "/api/user").json(body),
            "POST /api/user",
        )
        .await
    }

    /// A user with the given protocols, on every inbound of those protocols.
    pub async fn create_simple_user(&self, username: &str, protocols: &[&str]) -> Result<Value> {
        let proxies: serde_json::Map<String, Value> = protocols
            .iter()
            .map(|p| (p.to_string(), json!({})))
            .collect();
        self.create_user(&json!({
            "username": username,
            "proxies": proxies,
            "data_limit": 0,
            "expire": null,
            "status": "active",
        }))
        .await
    }

    pub async fn get_user(&self, username: &str) -> Result<Value> {
        expect_success(
            self.api(Method::GET, &format!("/api/user/{username}")),
            "GET /api/user/{username}",
        )
        .await
    }

    pub async fn delete_user(&self, username: &str) -> Result<()> {
        expect_success(
            self.api(Method::DELETE, &format!("/api/user/{username}")),
            "DELETE /api/user/{username}",
        )
        .await?;
        Ok(())
    }

    pub async fn nodes(&self) -> Result<Vec<Value>> {
        let v = expect_success(self.api(Method::GET, "/api/nodes"), "GET /api/nodes").await?;
        match v {
            Value::Array(nodes) => Ok(nodes),
            other => bail!("GET /api/nodes is not a JSON array: {other}"),
        }
    }

    pub async fn node(&self, id: i64) -> Result<Value> {
        self.nodes()
            .await?
            .into_iter()
            .find(|n| n["id"].as_i64() == Some(id))
            .with_context(|| format!("node {id} missing from GET /api/nodes"))
    }

    /// `POST /api/node` for an agent that will listen on 127.0.0.1:`agent_port`.
    pub async fn create_node(&self, name: &str, agent_port: u16) -> Result<CreatedNode> {
        let json = expect_success(
            self.api(Method::POST, "/api/node").json(&json!({
                "name": name,
                "address": "127.0.0.1",
                "port": agent_port,
                "api_port": agent_port,
            })),
            "POST /api/node",
        )
        .await?;
        let id = json["id"]
            .as_i64()
            .with_context(|| format!("POST /api/node answered no integer `id`: {json}"))?;
        let enrollment_token = json["enrollment_token"]
            .as_str()
            .with_context(|| format!("POST /api/node answered no `enrollment_token`: {json}"))?
            .to_string();
        let enrollment_command = json["enrollment_command"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let ca_fingerprint = match json["ca_fingerprint"].as_str() {
            Some(fp) if !fp.is_empty() => fp.to_string(),
            _ => match flag_value(&enrollment_command, "--ca-fingerprint") {
                Some(fp) => fp,
                None => self.ca_fingerprint_from_settings().await.with_context(|| {
                    format!(
                        "no CA fingerprint: neither `ca_fingerprint` nor `--ca-fingerprint` in \
                         enrollment_command {enrollment_command:?}, nor GET /api/node/settings"
                    )
                })?,
            },
        };
        Ok(CreatedNode {
            id,
            name: name.to_string(),
            enrollment_token,
            ca_fingerprint,
            enrollment_command,
            json,
        })
    }

    async fn ca_fingerprint_from_settings(&self) -> Result<String> {
        let settings = expect_success(
            self.api(Method::GET, "/api/node/settings"),
            "GET /api/node/settings",
        )
        .await?;
        let pem = settings["certificate"]
            .as_str()
            .context("no `certificate` in /api/node/settings")?;
        Ok(nexpoint_certs::fingerprint_pem(pem)?)
    }

    /// The raw body of a subscription URL (relative or absolute).
    pub async fn fetch_subscription(&self, subscription_url: &str) -> Result<String> {
        let url = if subscription_url.starts_with('/') {
            self.url(subscription_url)
        } else {
            subscription_url.to_string()
        };
        let resp = self
            .anonymous
            .get(&url)
            .header(reqwest::header::USER_AGENT, "nexpoint-e2e")
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body = resp.text().await?;
        if !status.is_success() {
            bail!("GET {url} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Whose subscription a URL (relative or absolute) opens: the username
    /// `GET /sub/{token}/info` answers with. Tokens carry the second they
    /// were issued, so two URLs of one user may differ in text.
    pub async fn subscription_owner(&self, subscription_url: &str) -> Result<String> {
        let token = subscription_url
            .rsplit_once("/sub/")
            .with_context(|| format!("not a subscription URL: {subscription_url}"))?
            .1;
        let info: Value = serde_json::from_str(
            &self
                .fetch_subscription(&format!("/sub/{token}/info"))
                .await?,
        )?;
        info["username"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no username in {info}"))
    }

    /// The share links of `user` (a user JSON), through its subscription URL.
    pub async fn subscription_links(&self, user: &Value) -> Result<Vec<ShareLink>> {
        let url = user["subscription_url"]
            .as_str()
            .with_context(|| format!("no subscription_url in {user}"))?;
        let body = self.fetch_subscription(url).await?;
        decode_subscription(&body)?
            .iter()
            .map(|l| ShareLink::parse(l))
            .collect()
    }

    /// Stops the daemon gracefully (SIGTERM), SIGKILL after 10 s.
    pub async fn stop(&mut self) -> Result<std::process::ExitStatus> {
        self.process.terminate(Duration::from_secs(10)).await
    }
}

/// `POST /api/admin/token` (OAuth2 password form).
pub async fn login(
    client: &reqwest::Client,
    base_url: &str,
    username: &str,
    password: &str,
) -> Result<String> {
    let v = expect_success(
        client
            .post(format!("{base_url}/api/admin/token"))
            .form(&[("username", username), ("password", password)]),
        "POST /api/admin/token",
    )
    .await?;
    Ok(v["access_token"]
        .as_str()
        .with_context(|| format!("no access_token in {v}"))?
        .to_string())
}

/// Sends a request; returns the status and the body as JSON (a JSON string
/// holding the text when the body is not JSON).
pub async fn send(req: RequestBuilder) -> Result<(StatusCode, Value)> {
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, body))
}

/// Sends a request and requires a 2xx answer.
pub async fn expect_success(req: RequestBuilder, what: &str) -> Result<Value> {
    let (status, body) = send(req).await.with_context(|| what.to_string())?;
    if !status.is_success() {
        bail!("{what} answered {status}: {body}");
    }
    Ok(body)
}

/// The value after `flag` in a shell command line (`--flag V`, `--flag=V`, quotes stripped).
pub fn flag_value(command: &str, flag: &str) -> Option<String> {
    let mut words = command.split_whitespace();
    while let Some(w) = words.next() {
        let unquote = |s: &str| s.trim_matches(|c| c == '\'' || c == '"').to_string();
        if w == flag {
            return words.next().map(unquote);
        }
        if let Some(v) = w.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(unquote(v));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::flag_value;

    #[test]
    fn flags_from_enrollment_command() {
        let cmd =
            "nexpoint-node enroll --control-plane http://x:1 --token 'abc' --ca-fingerprint=ff00";
        assert_eq!(flag_value(cmd, "--token").as_deref(), Some("abc"));
        assert_eq!(flag_value(cmd, "--ca-fingerprint").as_deref(), Some("ff00"));
        assert_eq!(flag_value(cmd, "--state-dir"), None);
    }
}
