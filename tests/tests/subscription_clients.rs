//! Subscriptions proven by the real clients. A node's V2Ray serves every
//! protocol it supports over every transport it supports that the formats
//! can express: vmess, vless and trojan over tcp and ws, each without and
//! with TLS (a test CA the clients trust), and shadowsocks over tcp. One user
//! has all four protocols. Then, from her subscription alone:
//! - the sing-box format passes `sing-box check`, and a sing-box client
//!   carries traffic through every endpoint;
//! - the clash-meta format passes `mihomo -t`, and mihomo carries traffic
//!   through every endpoint Clash can express (its trojan always uses TLS);
//! - every config of the v2ray-json format runs in `v2ray` and carries traffic;
//! - the base64 links, parsed back, reproduce every endpoint and credential.
//!
//! The only changes the test makes to a downloaded config are the client's
//! local side: one SOCKS listener per proxy on a free port (so each endpoint
//! is tried on its own), never the proxies themselves.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use nexpoint_tests::agent_state::live_core;
use nexpoint_tests::control_plane::expect_success;
use nexpoint_tests::links::{Protocol, ShareLink, decode_subscription};
use nexpoint_tests::net::{free_port, free_ports, wait_for_tcp};
use nexpoint_tests::node::Node;
use nexpoint_tests::paths::{mihomo_bin, sing_box_bin, v2ray_bin};
use nexpoint_tests::socks::download;
use nexpoint_tests::steps::{CONVERGE, TRANSFER_TIMEOUT, connected_node, core_traffic};
use nexpoint_tests::test_ca::{SERVER_NAME, TestCa};
use nexpoint_tests::{ChildProcess, ControlPlane, TestHttpServer, wait_until};
use reqwest::Method;
use serde_json::{Value, json};

/// One inbound of the node: what it serves and how.
#[derive(Clone, Debug)]
struct Served {
    tag: String,
    protocol: Protocol,
    network: &'static str,
    tls: bool,
    port: u16,
}

const PROTOCOLS: [(Protocol, &str); 3] = [
    (Protocol::Vmess, "vmess"),
    (Protocol::Vless, "vless"),
    (Protocol::Trojan, "trojan"),
];

fn served_inbounds() -> Vec<Served> {
    let ports = free_ports(13);
    let mut out = Vec::new();
    for (protocol, name) in PROTOCOLS {
        for network in ["tcp", "ws"] {
            for tls in [false, true] {
                out.push(Served {
                    tag: format!("{name}-{network}-{}", if tls { "tls" } else { "plain" }),
                    protocol,
                    network,
                    tls,
                    port: ports[out.len()],
                });
            }
        }
    }
    out.push(Served {
        tag: "shadowsocks-tcp-plain".into(),
        protocol: Protocol::Shadowsocks,
        network: "tcp",
        tls: false,
        port: ports[12],
    });
    out
}

fn inbound_json(s: &Served, ca: &TestCa) -> Value {
    let protocol = match s.protocol {
        Protocol::Vmess => "vmess",
        Protocol::Vless => "vless",
        Protocol::Trojan => "trojan",
        Protocol::Shadowsocks => "shadowsocks",
    };
    let settings = match s.protocol {
        Protocol::Vless => json!({"clients": [], "decryption": "none"}),
        Protocol::Shadowsocks => {
            json!({"clients": [], "method": "chacha20-ietf-poly1305", "network": "tcp,udp"})
        }
        _ => json!({"clients": []}),
    };
    let mut stream = json!({"network": s.network, "security": "none"});
    if s.network == "ws" {
        stream["wsSettings"] = json!({"path": format!("/{}", s.tag)});
    }
    if s.tls {
        stream["security"] = json!("tls");
        stream["tlsSettings"] = json!({
            "serverName": SERVER_NAME,
            "certificates": [{
                "certificateFile": ca.cert_file.display().to_string(),
                "keyFile": ca.key_file.display().to_string(),
            }],
        });
    }
    json!({
        "tag": s.tag, "protocol": protocol, "listen": "127.0.0.1", "port": s.port,
        "settings": settings, "streamSettings": stream,
    })
}

struct Fixture {
    cp: ControlPlane,
    node: Node,
    origin: TestHttpServer,
    served: Vec<Served>,
    user: Value,
    ca: TestCa,
    dir: tempfile::TempDir,
}

/// A control plane whose template is every served inbound, a connected node
/// running it, and a user with all four protocols.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(dir.path()).unwrap();
    let served = served_inbounds();
    let cp = ControlPlane::start().await.expect("control plane starts");
    let template = json!({
        "log": {"loglevel": "warning"},
        "inbounds": served.iter().map(|s| inbound_json(s, &ca)).collect::<Vec<_>>(),
        "outbounds": [{"protocol": "freedom", "tag": "DIRECT"}],
    });
    expect_success(
        cp.api(Method::PUT, "/api/core/config").json(&template),
        "PUT /api/core/config",
    )
    .await
    .unwrap();
    // Created after the template: its address becomes a host of every inbound.
    let node = connected_node(&cp, "n-formats", &v2ray_bin()).await;
    let user = cp
        .create_simple_user("sophie", &["vmess", "vless", "trojan", "shadowsocks"])
        .await
        .expect("POST /api/user");
    let origin = TestHttpServer::start().await.unwrap();
    Fixture {
        cp,
        node,
        origin,
        served,
        user,
        ca,
        dir,
    }
}

impl Fixture {
    /// What the node's core counted for the user, read from the core's own
    /// API: traffic that went around the proxy is not in it. (V2Ray's
    /// single-user shadowsocks makes a user change restart the core, on a
    /// new API port: look the port up each time.)
    async fn core_bytes(&self) -> i64 {
        wait_until(CONVERGE, "the core's counters for sophie", || async {
            let run = live_core(&self.node)?;
            core_traffic(run.api_port, "sophie").await
        })
        .await
        .unwrap()
    }

    /// The subscription in `format`, as an app fetching it gets it.
    async fn fetch(&self, format: &str) -> String {
        let url = self.user["subscription_url"].as_str().unwrap();
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            self.cp.url(url)
        };
        let response = self
            .cp
            .anonymous
            .get(format!("{url}/{format}"))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {url}/{format}: {}",
            response.status()
        );
        let headers = response.headers().clone();
        assert!(
            headers.contains_key("subscription-userinfo"),
            "{format}: {headers:?}"
        );
        response.text().await.unwrap()
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Runs a client program that trusts the test CA.
    fn client(&self, name: &str, program: &Path, args: &[&str]) -> ChildProcess {
        let ca = self.ca.ca_file.display().to_string();
        ChildProcess::spawn(
            name,
            program,
            args,
            &[("SSL_CERT_FILE", ca.as_str()), ("NO_COLOR", "1")],
        )
        .unwrap()
    }

    /// Waits for every SOCKS listener, then sends a download through each;
    /// every one must get through.
    async fn carries(&self, client: &mut ChildProcess, listeners: &[(String, u16)]) {
        for (name, port) in listeners {
            let addr: SocketAddr = ([127, 0, 0, 1], *port).into();
            if let Err(e) = wait_for_tcp(addr, CONVERGE).await {
                panic!(
                    "{}: listener for {name}: {e:#}\n{}",
                    client.name(),
                    client.tail(40)
                );
            }
        }
        let mut failed = Vec::new();
        for (name, port) in listeners {
            let addr: SocketAddr = ([127, 0, 0, 1], *port).into();
            let before = self.core_bytes().await;
            let result = wait_until(CONVERGE, &format!("traffic through {name}"), || {
                download(addr, self.origin.addr, 20_000, TRANSFER_TIMEOUT)
            })
            .await;
            // The origin is on loopback: a client that routed it around the
            // proxy would pass the download, but the core would not count it.
            let after = self.core_bytes().await;
            match result {
                Ok(()) if after - before >= 20_000 => {
                    eprintln!("{}: {name} carries traffic", client.name())
                }
                Ok(()) => failed.push(format!(
                    "{name}: the download worked but the core counted {} bytes: not proxied",
                    after - before
                )),
                Err(e) => failed.push(format!("{name}: {e:#}")),
            }
        }
        assert!(
            failed.is_empty(),
            "{} failed through {failed:#?}\n{}",
            client.name(),
            client.tail(60)
        );
    }
}

fn check_ok(name: &str, program: &Path, args: &[&str]) {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{name} refused the config ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sing_box_runs_the_sing_box_format_through_every_endpoint() {
    let f = fixture().await;
    let mut config: Value = serde_json::from_str(&f.fetch("sing-box").await).unwrap();
    let bin = sing_box_bin();
    let pristine = f.file("sing-box-as-served.json", &config.to_string());
    check_ok(
        "sing-box check",
        &bin,
        &["check", "-c", pristine.to_str().unwrap()],
    );

    let proxies: Vec<String> = config["outbounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            matches!(
                o["type"].as_str(),
                Some("vmess" | "vless" | "trojan" | "shadowsocks")
            )
        })
        .map(|o| o["tag"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(proxies.len(), f.served.len(), "{config:#}");
    let listeners: Vec<(String, u16)> = proxies.iter().map(|p| (p.clone(), free_port())).collect();
    config["inbounds"] = listeners
        .iter()
        .enumerate()
        .map(|(i, (_, port))| {
            json!({"type": "mixed", "tag": format!("test-in-{i}"), "listen": "127.0.0.1", "listen_port": port})
        })
        .collect();
    let mut rules: Vec<Value> = listeners
        .iter()
        .enumerate()
        .map(|(i, (proxy, _))| json!({"inbound": [format!("test-in-{i}")], "outbound": proxy}))
        .collect();
    if let Some(existing) = config["route"]["rules"].as_array() {
        rules.extend(existing.iter().cloned());
    }
    config["route"]["rules"] = Value::Array(rules);
    let path = f.file("sing-box-client.json", &config.to_string());
    check_ok(
        "sing-box check (with test listeners)",
        &bin,
        &["check", "-c", path.to_str().unwrap()],
    );
    let mut client = f.client("sing-box", &bin, &["run", "-c", path.to_str().unwrap()]);
    f.carries(&mut client, &listeners).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mihomo_runs_the_clash_meta_format_through_every_endpoint() {
    let f = fixture().await;
    let yaml = f.fetch("clash-meta").await;
    let bin = mihomo_bin();
    let home = f.dir.path().join("mihomo");
    std::fs::create_dir_all(&home).unwrap();
    let pristine = f.file("clash-meta-as-served.yaml", &yaml);
    check_ok(
        "mihomo -t",
        &bin,
        &[
            "-t",
            "-d",
            home.to_str().unwrap(),
            "-f",
            pristine.to_str().unwrap(),
        ],
    );

    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let proxies: Vec<String> = config["proxies"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    // Clash's trojan always speaks TLS: trojan without it cannot be written.
    let expressible = f
        .served
        .iter()
        .filter(|s| s.protocol != Protocol::Trojan || s.tls)
        .count();
    assert_eq!(proxies.len(), expressible, "{yaml}");
    let listeners: Vec<(String, u16)> = proxies.iter().map(|p| (p.clone(), free_port())).collect();
    let map = config.as_mapping_mut().unwrap();
    // The served config's own port is the app's business; the test's
    // listeners replace it so parallel tests never share a port.
    map.remove("mixed-port");
    map.remove("port");
    map.remove("socks-port");
    map.remove("external-controller");
    map.insert(
        "listeners".into(),
        serde_yaml_ng::to_value(
            listeners
                .iter()
                .enumerate()
                .map(|(i, (proxy, port))| {
                    json!({"name": format!("test-in-{i}"), "type": "socks", "listen": "127.0.0.1",
                           "port": port, "udp": false, "proxy": proxy})
                })
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    );
    let path = f.file(
        "clash-meta-client.yaml",
        &serde_yaml_ng::to_string(&config).unwrap(),
    );
    let mut client = f.client(
        "mihomo",
        &bin,
        &["-d", home.to_str().unwrap(), "-f", path.to_str().unwrap()],
    );
    f.carries(&mut client, &listeners).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn v2ray_runs_every_config_of_the_v2ray_json_format() {
    let f = fixture().await;
    let configs: Vec<Value> = serde_json::from_str(&f.fetch("v2ray-json").await).unwrap();
    assert_eq!(configs.len(), f.served.len());
    let bin = v2ray_bin();
    let mut remarks = BTreeSet::new();
    for (i, mut config) in configs.into_iter().enumerate() {
        let remark = config["remarks"].as_str().unwrap_or_default().to_owned();
        assert!(remarks.insert(remark.clone()), "remark {remark:?} twice");
        let pristine = f.file(&format!("v2ray-{i}-as-served.json"), &config.to_string());
        check_ok(
            "v2ray -test",
            &bin,
            &["-test", "-config", pristine.to_str().unwrap()],
        );
        let port = free_port();
        // Its routing sends private addresses direct, as a phone's should;
        // the test's origin is on loopback, so send the test's listener to
        // the proxy first.
        let rules = config["routing"]["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let socks_tag = config["inbounds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["protocol"] == "socks")
            .and_then(|i| i["tag"].as_str())
            .expect("a socks inbound with a tag")
            .to_owned();
        config["routing"]["rules"] = std::iter::once(
            json!({"type": "field", "inboundTag": [socks_tag], "outboundTag": "proxy"}),
        )
        .chain(rules)
        .collect();
        // The client's own listeners on free ports: SOCKS first, then any other.
        for inbound in config["inbounds"].as_array_mut().unwrap() {
            inbound["port"] = json!(if inbound["protocol"] == "socks" {
                port
            } else {
                free_port()
            });
        }
        let path = f.file(&format!("v2ray-{i}.json"), &config.to_string());
        let mut client = f.client(
            &format!("v2ray client {i}"),
            &bin,
            &["-config", path.to_str().unwrap()],
        );
        f.carries(&mut client, &[(remark, port)]).await;
        client.kill().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_base64_links_reproduce_every_endpoint_and_credential() {
    let f = fixture().await;
    let links: Vec<ShareLink> = decode_subscription(&f.fetch("v2ray").await)
        .unwrap()
        .iter()
        .map(|l| ShareLink::parse(l).unwrap())
        .collect();
    assert_eq!(links.len(), f.served.len(), "{links:#?}");
    let proxies = &f.user["proxies"];
    for s in &f.served {
        let link = links
            .iter()
            .find(|l| l.port == s.port)
            .unwrap_or_else(|| panic!("no link to port {} ({}) in {links:#?}", s.port, s.tag));
        let check = || -> Result<()> {
            ensure!(link.protocol == s.protocol, "protocol");
            ensure!(link.host == "127.0.0.1", "host {}", link.host);
            ensure!(link.network == s.network, "network {}", link.network);
            let security = if s.tls { "tls" } else { "none" };
            ensure!(link.security == security, "security {}", link.security);
            if s.tls {
                ensure!(
                    link.param("sni") == Some(SERVER_NAME),
                    "sni {:?}",
                    link.param("sni")
                );
            }
            if s.network == "ws" {
                let path = format!("/{}", s.tag);
                ensure!(
                    link.param("path") == Some(path.as_str()),
                    "path {:?}",
                    link.param("path")
                );
            }
            let secret = match s.protocol {
                Protocol::Vmess => &proxies["vmess"]["id"],
                Protocol::Vless => &proxies["vless"]["id"],
                Protocol::Trojan => &proxies["trojan"]["password"],
                Protocol::Shadowsocks => &proxies["shadowsocks"]["password"],
            };
            ensure!(
                Some(link.secret.as_str()) == secret.as_str(),
                "secret {} vs {secret}",
                link.secret
            );
            if s.protocol == Protocol::Shadowsocks {
                ensure!(
                    link.method.as_deref() == proxies["shadowsocks"]["method"].as_str(),
                    "method {:?}",
                    link.method
                );
            }
            Ok(())
        };
        check()
            .with_context(|| format!("{}: {link:#?}", s.tag))
            .unwrap();
    }
}
