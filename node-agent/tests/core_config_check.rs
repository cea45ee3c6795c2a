//! TestCoreConfig against the real V2Ray: the template is rendered as an
//! apply would render it and checked by the core, and nothing the agent runs
//! or has applied changes.

mod common;

use common::*;
use nexpoint_node::node::Node;
use nexpoint_proto::agent::{ShadowsocksAccount, UserSpec, VmessAccount};
use serde_json::json;

fn template_with(inbound: serde_json::Value, routing: Option<serde_json::Value>) -> String {
    let mut template = json!({
        "log": {"loglevel": "warning"},
        "inbounds": [inbound],
        "outbounds": [{"protocol": "freedom", "tag": "direct"}],
    });
    if let Some(routing) = routing {
        template["routing"] = routing;
    }
    template.to_string()
}

#[tokio::test]
async fn checks_templates_without_touching_the_running_core() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path(), v2ray_bin()))
        .await
        .unwrap();
    let running_template = vmess_template(free_port());
    let applied = node
        .apply_snapshot(snapshot(
            4,
            &running_template,
            vec![vmess_user("1.a", UUID_A)],
        ))
        .await
        .unwrap();
    let (pid, _) = node.core_process().await.unwrap();

    // A good template, even the running one (same ports): `-test` binds nothing.
    assert_eq!(
        node.test_core_config(&running_template).await.unwrap(),
        Ok(())
    );
    assert_eq!(
        node.test_core_config(&vmess_template(free_port()))
            .await
            .unwrap(),
        Ok(())
    );

    // V2Ray's own words for what it refuses.
    let geoip = template_with(
        json!({"tag": "vm", "port": free_port(), "protocol": "vmess", "settings": {}}),
        Some(
            json!({"rules": [{"type": "field", "ip": ["geoip:private"], "outboundTag": "direct"}]}),
        ),
    );
    let refused = node.test_core_config(&geoip).await.unwrap().unwrap_err();
    assert!(
        refused.contains("failed to load geoip: private"),
        "{refused}"
    );
    assert!(
        refused.starts_with("main: failed to read config files"),
        "{refused}"
    );

    let unknown = template_with(
        json!({"tag": "x", "port": free_port(), "protocol": "nosuchproto", "settings": {}}),
        None,
    );
    let refused = node.test_core_config(&unknown).await.unwrap().unwrap_err();
    assert!(
        refused.contains("unknown config id: nosuchproto"),
        "{refused}"
    );

    let refused = node.test_core_config("[1, 2").await.unwrap().unwrap_err();
    assert!(refused.contains("not valid JSON"), "{refused}");
    let refused = node
        .test_core_config(r#"{"inbounds": {}}"#)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        refused.contains("\"inbounds\" must be an array"),
        "{refused}"
    );

    // Nothing changed: same core process, same applied state, no error shown,
    // no checked config (with credentials) left behind.
    assert_eq!(node.core_process().await.unwrap().0, pid);
    let health = node.health();
    assert_eq!(health.revision, 4);
    assert_eq!(health.digest, applied.digest);
    let core = health.core.unwrap();
    assert!(core.running);
    assert_eq!(core.last_error, "");
    assert!(!dir.path().join("core.test.json").exists());
    node.shutdown().await;
}

#[tokio::test]
async fn the_agents_users_are_part_of_the_checked_config() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path(), v2ray_bin()))
        .await
        .unwrap();
    // A shadowsocks inbound takes its (single, on V2Ray) user from the
    // agent's users. Without users it is left out, so the template passes.
    let shadowsocks = template_with(
        json!({"tag": "vm", "port": free_port(), "protocol": "shadowsocks", "settings": {"network": "tcp"}}),
        None,
    );
    assert_eq!(node.test_core_config(&shadowsocks).await.unwrap(), Ok(()));

    // Applied: a user of "vm" whose shadowsocks method V2Ray does not know
    // (unused by the vmess inbound it is served on now).
    let user = UserSpec {
        email: "1.a".into(),
        vmess: Some(VmessAccount { id: UUID_A.into() }),
        shadowsocks: Some(ShadowsocksAccount {
            password: "secret".into(),
            method: "rc4-md5".into(),
        }),
        inbound_tags: vec!["vm".into()],
        ..Default::default()
    };
    node.apply_snapshot(snapshot(1, &vmess_template(free_port()), vec![user]))
        .await
        .unwrap();
    let refused = node
        .test_core_config(&shadowsocks)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        refused.contains("unknown cipher method: rc4-md5"),
        "{refused}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_missing_core_binary_is_a_refusal_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-core");
    let node = Node::start(settings(dir.path(), missing.clone()))
        .await
        .unwrap();
    let refused = node
        .test_core_config(&vmess_template(free_port()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        refused.contains("cannot run core binary") && refused.contains("no-such-core"),
        "{refused}"
    );
    node.shutdown().await;
}
