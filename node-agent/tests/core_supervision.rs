//! The agent's state machinery against the real V2Ray core.

mod common;

use std::time::Duration;

use common::*;
use nexpoint_node::core_supervisor::CoreError;
use nexpoint_node::node::{ApplyError, Node};
use nexpoint_proto::agent::ChangeSet;
use nexpoint_proto::digest::state_digest;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[tokio::test]
async fn users_change_live_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path(), v2ray_bin()))
        .await
        .unwrap();
    let template = vmess_template(free_port());

    let applied = node
        .apply_snapshot(snapshot(1, &template, vec![vmess_user("1.a", UUID_A)]))
        .await
        .unwrap();
    let core = applied.core.unwrap();
    assert!(core.running, "{core:?}");
    assert_eq!(core.kind, "v2ray");
    assert_eq!(core.version, "4.34.0");
    assert_eq!(applied.revision, 1);
    assert_eq!(
        applied.digest,
        state_digest(&template, &[vmess_user("1.a", UUID_A)])
    );

    let (pid, api) = node.core_process().await.unwrap();
    api.uptime().await.expect("the core API answers");
    assert!(core_has_user(&api, "vm", "1.a").await);
    assert!(!core_has_user(&api, "vm", "2.b").await);

    // Add 2.b and remove 1.a through a change set.
    let changed = node
        .apply_changes(ChangeSet {
            base_revision: 1,
            revision: 2,
            upserts: vec![vmess_user("2.b", UUID_B)],
            removed_emails: vec!["1.a".into()],
        })
        .await
        .unwrap();
    assert_eq!(changed.revision, 2);
    assert!(core_has_user(&api, "vm", "2.b").await);
    assert!(!core_has_user(&api, "vm", "1.a").await);

    // A credential change and a new user through a snapshot, same template.
    node.apply_snapshot(snapshot(
        3,
        &template,
        vec![vmess_user("2.b", UUID_C), vmess_user("3.c", UUID_A)],
    ))
    .await
    .unwrap();
    assert!(core_has_user(&api, "vm", "2.b").await);
    assert!(core_has_user(&api, "vm", "3.c").await);
    assert_eq!(
        node.core_process().await.unwrap().0,
        pid,
        "no restart for user changes"
    );

    // The wrong base revision is refused and changes nothing.
    let stale = node
        .apply_changes(ChangeSet {
            base_revision: 1,
            revision: 4,
            upserts: vec![vmess_user("4.d", UUID_A)],
            removed_emails: vec![],
        })
        .await;
    assert!(matches!(
        stale,
        Err(ApplyError::RevisionMismatch { applied: 3, got: 1 })
    ));
    let status: tonic::Status = stale.unwrap_err().into();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(!core_has_user(&api, "vm", "4.d").await);
    assert_eq!(node.health().revision, 3);

    // A new template restarts the core, with every user.
    let moved = vmess_template(free_port());
    node.apply_snapshot(snapshot(
        4,
        &moved,
        vec![vmess_user("2.b", UUID_C), vmess_user("3.c", UUID_A)],
    ))
    .await
    .unwrap();
    let (new_pid, api) = node.core_process().await.unwrap();
    assert_ne!(new_pid, pid, "a template change restarts the core");
    assert!(core_has_user(&api, "vm", "2.b").await);
    assert!(core_has_user(&api, "vm", "3.c").await);

    node.shutdown().await;
    assert!(node.core_process().await.is_none());
    assert!(
        kill(Pid::from_raw(new_pid as i32), None).is_err(),
        "core process is gone"
    );
}

#[tokio::test]
async fn a_config_the_core_rejects_reports_the_cores_line_and_keeps_the_old_core() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path(), v2ray_bin()))
        .await
        .unwrap();
    let good = vmess_template(free_port());
    node.apply_snapshot(snapshot(1, &good, vec![vmess_user("1.a", UUID_A)]))
        .await
        .unwrap();
    let (pid, _) = node.core_process().await.unwrap();

    // Debian's v2ray has no geoip.dat: the core refuses this config.
    let mut bad: serde_json::Value = serde_json::from_str(&vmess_template(free_port())).unwrap();
    bad["routing"] = serde_json::json!({"rules": [
        {"type": "field", "ip": ["geoip:private"], "outboundTag": "direct"}
    ]});
    let result = node
        .apply_snapshot(snapshot(
            2,
            &bad.to_string(),
            vec![vmess_user("1.a", UUID_A)],
        ))
        .await;
    let Err(ApplyError::Core(CoreError::Rejected(line))) = &result else {
        panic!("expected a rejection, got {result:?}");
    };
    assert!(line.contains("geoip"), "the core's own line: {line}");
    let status: tonic::Status = result.unwrap_err().into();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("geoip"), "{}", status.message());

    let core = node.core_status();
    assert!(core.last_error.contains("geoip"), "{core:?}");
    assert!(core.running, "the previous core keeps running");
    assert_eq!(node.core_process().await.unwrap().0, pid);
    assert_eq!(node.health().revision, 1);

    // Not valid JSON at all.
    let status: tonic::Status = node
        .apply_snapshot(snapshot(3, "{", vec![]))
        .await
        .unwrap_err()
        .into();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    node.shutdown().await;
}

#[tokio::test]
async fn a_missing_binary_is_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-core");
    let node = Node::start(settings(dir.path(), missing.clone()))
        .await
        .unwrap();
    let before = node.core_status();
    assert!(
        before.last_error.contains("No such file or directory"),
        "{before:?}"
    );

    let result = node
        .apply_snapshot(snapshot(1, &vmess_template(free_port()), vec![]))
        .await;
    let status: tonic::Status = result.unwrap_err().into();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains(&missing.display().to_string()),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("No such file or directory"),
        "{}",
        status.message()
    );
    let core = node.core_status();
    assert!(!core.running);
    assert_eq!(core.kind, "");
    assert!(
        core.last_error.contains("No such file or directory"),
        "{core:?}"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_killed_core_is_restarted_with_its_users() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path(), v2ray_bin()))
        .await
        .unwrap();
    let template = vmess_template(free_port());
    node.apply_snapshot(snapshot(1, &template, vec![vmess_user("1.a", UUID_A)]))
        .await
        .unwrap();
    // 2.b exists only through a live change before the crash.
    node.apply_changes(ChangeSet {
        base_revision: 1,
        revision: 2,
        upserts: vec![vmess_user("2.b", UUID_B)],
        removed_emails: vec![],
    })
    .await
    .unwrap();
    let (pid, _) = node.core_process().await.unwrap();

    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let (new_pid, api) = eventually(
        "the core to be restarted",
        Duration::from_secs(20),
        || async { node.core_process().await.filter(|(p, _)| *p != pid) },
    )
    .await;
    assert_ne!(new_pid, pid);
    assert!(core_has_user(&api, "vm", "1.a").await);
    assert!(core_has_user(&api, "vm", "2.b").await);
    let core = node.core_status();
    assert!(core.running);
    assert_eq!(core.restarts, 1);
    assert!(core.last_error.contains("signal: 9"), "{core:?}");
    assert_eq!(node.health().revision, 2);
    node.shutdown().await;
}

#[tokio::test]
async fn the_applied_state_is_restored_after_an_agent_restart() {
    let dir = tempfile::tempdir().unwrap();
    let template = vmess_template(free_port());
    let users = vec![vmess_user("1.a", UUID_A), vmess_user("2.b", UUID_B)];
    {
        let node = Node::start(settings(dir.path(), v2ray_bin()))
            .await
            .unwrap();
        node.apply_snapshot(snapshot(7, &template, users.clone()))
            .await
            .unwrap();
        node.shutdown().await;
    }
    // No control plane: the agent brings the core back by itself.
    let node = Node::start(settings(dir.path(), v2ray_bin()))
        .await
        .unwrap();
    let health = node.health();
    assert_eq!(health.revision, 7);
    assert_eq!(health.digest, state_digest(&template, &users));
    assert!(health.core.unwrap().running);
    let (_, api) = node.core_process().await.unwrap();
    assert!(core_has_user(&api, "vm", "1.a").await);
    assert!(core_has_user(&api, "vm", "2.b").await);
    node.shutdown().await;
}

#[tokio::test]
async fn v2ray_shadowsocks_user_changes_restart_the_core_other_changes_do_not() {
    use nexpoint_proto::agent::ShadowsocksAccount;
    let user = |email: &str, id: &str, password: &str| {
        let mut u = vmess_user(email, id);
        u.shadowsocks = Some(ShadowsocksAccount {
            password: password.into(),
            method: "aes-128-gcm".into(),
        });
        u.inbound_tags.push("ss".into());
        u
    };
    let (vm_port, ss_port) = (free_port(), free_port());
    let mut template: serde_json::Value = serde_json::from_str(&vmess_template(vm_port)).unwrap();
    template["inbounds"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "tag": "ss", "listen": "127.0.0.1", "port": ss_port, "protocol": "shadowsocks",
            "settings": {"network": "tcp"}
        }));
    let template = template.to_string();

    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path(), v2ray_bin()))
        .await
        .unwrap();
    node.apply_snapshot(snapshot(
        1,
        &template,
        vec![user("1.a", UUID_A, "pw-a-1"), user("2.b", UUID_B, "pw-b")],
    ))
    .await
    .unwrap();
    let (pid, _) = node.core_process().await.unwrap();

    // A user that is not on the shadowsocks inbound changes live.
    node.apply_changes(ChangeSet {
        base_revision: 1,
        revision: 2,
        upserts: vec![vmess_user("3.c", UUID_C)],
        removed_emails: vec![],
    })
    .await
    .unwrap();
    assert_eq!(node.core_process().await.unwrap().0, pid);

    // The served shadowsocks user (first by email) changes its password:
    // V2Ray 4.x cannot change it live, so the core restarts with it.
    node.apply_changes(ChangeSet {
        base_revision: 2,
        revision: 3,
        upserts: vec![user("1.a", UUID_A, "pw-a-2")],
        removed_emails: vec![],
    })
    .await
    .unwrap();
    let (new_pid, api) = node.core_process().await.unwrap();
    assert_ne!(new_pid, pid);
    assert!(
        core_has_user(&api, "vm", "3.c").await,
        "live-added users survive the restart"
    );

    // The new password is served, and its traffic is 1.a's.
    let proxy = V2RayClient::shadowsocks(ss_port, "aes-128-gcm", "pw-a-2").await;
    echo_through_socks(proxy.socks_port, echo_server().await, 2_000).await;
    node.record_usage().await.unwrap().expect("an entry");
    let usage = node.collect_usage(0, 0);
    let users: Vec<_> = usage.entries.iter().flat_map(|e| e.users.iter()).collect();
    assert_eq!(users.len(), 1, "{usage:?}");
    assert_eq!((users[0].email.as_str(), users[0].uplink), ("1.a", 2_000));
    node.shutdown().await;
}
