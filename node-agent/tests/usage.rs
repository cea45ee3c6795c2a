//! Usage journaling from real traffic through the real V2Ray core.

mod common;

use std::time::Duration;

use common::*;
use nexpoint_node::node::Node;

/// Sum of (uplink, downlink) of `email` over the entries after `after`.
fn totals(node: &Node, after: u64, email: &str) -> (i64, i64) {
    node.collect_usage(after, 1000)
        .entries
        .iter()
        .flat_map(|e| e.users.iter())
        .filter(|u| u.email == email)
        .fold((0, 0), |(up, down), u| (up + u.uplink, down + u.downlink))
}

#[tokio::test]
async fn real_traffic_is_journaled_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(settings(dir.path(), v2ray_bin()))
        .await
        .unwrap();
    let vm_port = free_port();
    let template = vmess_template(vm_port);
    node.apply_snapshot(snapshot(
        1,
        &template,
        vec![vmess_user("1.a", UUID_A), vmess_user("2.b", UUID_B)],
    ))
    .await
    .unwrap();
    let client = V2RayClient::start(vm_port, UUID_A).await;
    let echo = echo_server().await;

    echo_through_socks(client.socks_port, echo, 10_000).await;
    let first = node.record_usage().await.unwrap().expect("an entry");
    assert_eq!(first, 1);
    assert_eq!(totals(&node, 0, "1.a"), (10_000, 10_000));
    assert_eq!(
        totals(&node, 0, "2.b"),
        (0, 0),
        "idle users are not journaled"
    );

    // Nothing moved: no entry, the sequence stays.
    assert_eq!(node.record_usage().await.unwrap(), None);
    assert_eq!(node.health().last_sequence, 1);

    // Acknowledged entries are dropped; the sequence never goes back.
    node.ack_usage(1).unwrap();
    let page = node.collect_usage(0, 0);
    assert!(page.entries.is_empty());
    assert_eq!(page.last_sequence, 1);

    // Traffic right before a restart the agent makes itself is read first.
    echo_through_socks(client.socks_port, echo, 5_000).await;
    let mut changed: serde_json::Value = serde_json::from_str(&template).unwrap();
    changed["log"]["loglevel"] = "error".into();
    node.apply_snapshot(snapshot(
        2,
        &changed.to_string(),
        vec![vmess_user("1.a", UUID_A)],
    ))
    .await
    .unwrap();
    assert_eq!(totals(&node, 1, "1.a"), (5_000, 5_000));

    // The new core counts from zero; nothing is counted twice.
    let client_ready = || async {
        // The client reconnects per connection; wait for the new core's port.
        tokio::net::TcpStream::connect(("127.0.0.1", vm_port))
            .await
            .ok()
            .map(drop)
    };
    eventually(
        "the restarted core's inbound",
        Duration::from_secs(10),
        client_ready,
    )
    .await;
    echo_through_socks(client.socks_port, echo, 3_000).await;
    node.record_usage().await.unwrap().expect("an entry");
    assert_eq!(totals(&node, 1, "1.a"), (8_000, 8_000));

    // Across an agent restart the sequence continues.
    let last = node.health().last_sequence;
    node.shutdown().await;
    let node = Node::start(settings(dir.path(), v2ray_bin()))
        .await
        .unwrap();
    assert_eq!(node.health().last_sequence, last);
    assert_eq!(totals(&node, 1, "1.a"), (8_000, 8_000));
    node.shutdown().await;
}
