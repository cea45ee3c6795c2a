//! The store's behaviour, run against SQLite and PostgreSQL alike.
//! PostgreSQL comes from NEXPOINT_TEST_POSTGRES_URL (default: the local
//! server with trust auth); each test creates and drops its own database.

use std::collections::BTreeMap;

use nexpoint::domain::{ResetStrategy, UserStatus};
use nexpoint::store::{NewNode, Store, StoreError, UsageBatch, UserUsageDelta};
mod common;
use common::{new_node, new_user};

async fn user_writes_bump_the_revision_and_leave_tombstones(store: &Store) {
    let start = store.current_revision().await.unwrap();
    let alice = store.create_user(new_user("alice")).await.unwrap();
    assert!(store.current_revision().await.unwrap() > start);
    let conflict = store.create_user(new_user("ALICE")).await.unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict(_)), "{conflict:?}");

    let changes = store.user_changes_since(start).await.unwrap();
    assert_eq!(changes.changed.len(), 1);
    assert_eq!(changes.changed[0].username, "alice");
    let after_create = changes.revision;

    store.delete_user("Alice", None).await.unwrap();
    let changes = store.user_changes_since(after_create).await.unwrap();
    assert!(changes.changed.is_empty());
    assert_eq!(changes.deleted_emails, vec![alice.email()]);
    assert!(matches!(
        store.delete_user("alice", None).await,
        Err(StoreError::NotFound)
    ));
}
both_backends!(user_writes_bump_the_revision_and_leave_tombstones);

async fn usage_is_committed_once_per_sequence(store: &Store) {
    let node = new_node(store, "n1").await;
    let mut limited = new_user("bob");
    limited.data_limit = Some(1_000);
    let bob = store.create_user(limited).await.unwrap();
    let batch = UsageBatch {
        node_id: node,
        after_sequence: 0,
        last_sequence: 3,
        coefficient: 2.0,
        deltas: vec![
            UserUsageDelta {
                user_id: bob.id,
                uplink: 100,
                downlink: 200,
                recorded_at: 7_200,
            },
            UserUsageDelta {
                user_id: bob.id,
                uplink: 1,
                downlink: 2,
                recorded_at: 7_300,
            },
        ],
    };
    let applied = store.apply_usage(&batch).await.unwrap();
    assert!(applied.status_changed.is_empty());
    let bob_now = store.user_by_username("bob").await.unwrap().unwrap();
    assert_eq!(bob_now.used_traffic, 606);
    assert_eq!(bob_now.lifetime_used_traffic, 606);
    assert_eq!(bob_now.online_at, Some(7_300));
    let n = store.node(node).await.unwrap();
    assert_eq!((n.usage_sequence, n.uplink, n.downlink), (3, 101, 202));

    // Re-delivery of the same entries (a crash before the acknowledgement).
    let again = store.apply_usage(&batch).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)));
    assert_eq!(
        store
            .user_by_username("bob")
            .await
            .unwrap()
            .unwrap()
            .used_traffic,
        606
    );

    // Crossing the limit limits the user and bumps the revision.
    let before = store.current_revision().await.unwrap();
    let next = UsageBatch {
        after_sequence: 3,
        last_sequence: 4,
        deltas: vec![UserUsageDelta {
            user_id: bob.id,
            uplink: 0,
            downlink: 300,
            recorded_at: 7_400,
        }],
        ..batch
    };
    let applied = store.apply_usage(&next).await.unwrap();
    assert_eq!(applied.status_changed, vec![bob.id]);
    let bob_now = store.user_by_username("bob").await.unwrap().unwrap();
    assert_eq!(bob_now.status, UserStatus::Limited);
    let changes = store.user_changes_since(before).await.unwrap();
    assert_eq!(changes.changed.len(), 1);
    assert_eq!(changes.changed[0].status, UserStatus::Limited);
}
both_backends!(usage_is_committed_once_per_sequence);

fn delta(user_id: i64, bytes: i64, recorded_at: i64) -> UserUsageDelta {
    UserUsageDelta {
        user_id,
        uplink: bytes,
        downlink: 0,
        recorded_at,
    }
}

fn one_batch(node_id: i64, sequence: i64, deltas: Vec<UserUsageDelta>) -> UsageBatch {
    UsageBatch {
        node_id,
        after_sequence: sequence - 1,
        last_sequence: sequence,
        coefficient: 1.0,
        deltas,
    }
}

/// History is queued with each collection and folded later, merged per
/// user, node and hour; a read folds first, so it always sees every byte.
/// Users deleted before the fold are skipped, without failing it.
async fn usage_history_is_folded_before_it_is_read(store: &Store) {
    let (a, b) = (new_node(store, "a").await, new_node(store, "b").await);
    let carol = store.create_user(new_user("carol")).await.unwrap();
    let gone = store.create_user(new_user("gone")).await.unwrap();
    let hour = 36_000;
    for (sequence, at) in [(1, hour + 10), (2, hour + 20), (3, hour + 3_600)] {
        let deltas = vec![delta(carol.id, 100, at), delta(gone.id, 5, at)];
        store
            .apply_usage(&one_batch(a, sequence, deltas))
            .await
            .unwrap();
    }
    let deltas = vec![delta(carol.id, 7, hour)];
    store.apply_usage(&one_batch(b, 1, deltas)).await.unwrap();
    store.delete_user("gone", None).await.unwrap();

    let by_node = |start, end| store.user_usage_by_node(carol.id, start, end);
    let first_hour: Vec<(i64, i64)> = by_node(hour, hour)
        .await
        .unwrap()
        .iter()
        .map(|u| (u.node_id, u.used_traffic))
        .collect();
    assert_eq!(first_hour, vec![(a, 200), (b, 7)]);
    let both_hours: Vec<i64> = by_node(hour, hour + 3_600)
        .await
        .unwrap()
        .iter()
        .map(|u| u.used_traffic)
        .collect();
    assert_eq!(both_hours, vec![300, 7]);
    assert_eq!(
        store.fold_usage_history().await.unwrap(),
        0,
        "nothing left queued"
    );

    // Folded rows keep adding up with later collections.
    let deltas = vec![delta(carol.id, 1, hour + 3_601)];
    store.apply_usage(&one_batch(a, 4, deltas)).await.unwrap();
    assert_eq!(store.fold_usage_history().await.unwrap(), 1);
    assert_eq!(
        by_node(hour, hour + 3_600).await.unwrap()[0].used_traffic,
        301
    );
}
both_backends!(usage_history_is_folded_before_it_is_read);

/// Nodes report in any order: the last time a user was seen never goes back.
async fn online_at_only_moves_forward(store: &Store) {
    let (a, b) = (new_node(store, "a").await, new_node(store, "b").await);
    let dave = store.create_user(new_user("dave")).await.unwrap();
    store
        .apply_usage(&one_batch(a, 1, vec![delta(dave.id, 1, 9_000)]))
        .await
        .unwrap();
    store
        .apply_usage(&one_batch(b, 1, vec![delta(dave.id, 1, 8_000)]))
        .await
        .unwrap();
    let dave = store.user_by_username("dave").await.unwrap().unwrap();
    assert_eq!((dave.online_at, dave.used_traffic), (Some(9_000), 2));
}
both_backends!(online_at_only_moves_forward);

async fn enrollment_tokens_work_once(store: &Store) {
    let id = new_node(store, "edge").await;
    let node = store.node_by_enrollment_token("hash-edge").await.unwrap();
    assert_eq!(node.id, id);
    store
        .complete_enrollment(id, "hash-edge", "PEM", "fp", 99)
        .await
        .unwrap();
    assert!(matches!(
        store.node_by_enrollment_token("hash-edge").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .complete_enrollment(id, "hash-edge", "PEM2", "fp2", 99)
            .await,
        Err(StoreError::NotFound)
    ));
    let node = store.node(id).await.unwrap();
    assert_eq!(node.certificate_fingerprint.as_deref(), Some("fp"));
    assert!(matches!(
        store
            .create_node(
                NewNode {
                    name: "EDGE".into(),
                    address: "x".into(),
                    port: 1,
                    api_port: 1,
                    usage_coefficient: 1.0
                },
                "other",
                0,
                &[]
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.enabled_hosts().await.unwrap().len(), 1);
    store.delete_node(id).await.unwrap();
    assert!(store.enabled_hosts().await.unwrap().is_empty());
}
both_backends!(enrollment_tokens_work_once);

async fn rotation_requests_are_cleared_only_by_a_later_rotation(store: &Store) {
    let id = new_node(store, "edge").await;
    let first = store.request_node_rotation(id).await.unwrap();
    assert_eq!(
        store.node(id).await.unwrap().rotation_requested_at,
        Some(first)
    );
    // A rotation that began before a newer request does not clear it.
    store
        .clear_node_rotation_request(id, first - 1)
        .await
        .unwrap();
    assert_eq!(
        store.node(id).await.unwrap().rotation_requested_at,
        Some(first)
    );
    store.clear_node_rotation_request(id, first).await.unwrap();
    assert_eq!(store.node(id).await.unwrap().rotation_requested_at, None);
    store.delete_node(id).await.unwrap();
    assert!(matches!(
        store.request_node_rotation(id).await,
        Err(StoreError::NotFound)
    ));
}
both_backends!(rotation_requests_are_cleared_only_by_a_later_rotation);

async fn core_config_changes_bump_the_revision_once(store: &Store) {
    let r1 = store.set_core_config(r#"{"inbounds": []}"#).await.unwrap();
    let r2 = store.set_core_config(r#"{"inbounds": []}"#).await.unwrap();
    assert_eq!(r1, r2);
    let r3 = store.set_core_config(r#"{"inbounds": [ ]}"#).await.unwrap();
    assert!(r3 > r2);
    assert_eq!(
        store.core_config().await.unwrap(),
        Some((r#"{"inbounds": [ ]}"#.to_owned(), r3))
    );
    let a = store
        .setting_or_insert("k", || "first".into())
        .await
        .unwrap();
    let b = store
        .setting_or_insert("k", || "second".into())
        .await
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("first", "first"));
}
both_backends!(core_config_changes_bump_the_revision_once);

async fn traffic_follows_the_lifecycle_rules(store: &Store) {
    let node = new_node(store, "n-rules").await;
    let mut planned = new_user("planned");
    planned.data_limit = Some(1_000);
    let planned = store.create_user(planned).await.unwrap();
    store
        .update_user("planned", None, |u| {
            u.next_plan = Some(
                serde_json::from_value(serde_json::json!({
                    "data_limit": 5_000, "expire": 0,
                    "add_remaining_traffic": false, "fire_on_either": true
                }))
                .unwrap(),
            );
            Ok::<_, StoreError>(Vec::new())
        })
        .await
        .unwrap();
    let mut held = new_user("held");
    held.status = UserStatus::OnHold;
    held.on_hold_expire_duration = Some(86_400);
    let held = store.create_user(held).await.unwrap();

    let before = store.current_revision().await.unwrap();
    let applied = store
        .apply_usage(&UsageBatch {
            node_id: node,
            after_sequence: 0,
            last_sequence: 1,
            coefficient: 1.0,
            deltas: vec![
                UserUsageDelta {
                    user_id: planned.id,
                    uplink: 600,
                    downlink: 600,
                    recorded_at: 3_600,
                },
                UserUsageDelta {
                    user_id: held.id,
                    uplink: 1,
                    downlink: 1,
                    recorded_at: 3_600,
                },
            ],
        })
        .await
        .unwrap();

    // Crossing the quota fired the next plan: fresh usage, the new limit,
    // still served, the plan consumed; lifetime keeps everything.
    let planned = store.user_by_username("planned").await.unwrap().unwrap();
    assert_eq!(planned.status, UserStatus::Active);
    assert_eq!(planned.used_traffic, 0);
    assert_eq!(planned.lifetime_used_traffic, 1_200);
    assert_eq!(planned.data_limit, Some(5_000));
    assert!(planned.next_plan.is_none());

    // First traffic started the on-hold plan.
    let held_now = store.user_by_username("held").await.unwrap().unwrap();
    assert_eq!(held_now.status, UserStatus::Active);
    let expire = held_now.expire.unwrap();
    assert!(
        (expire - nexpoint::store::now() - 86_400).abs() < 60,
        "{expire}"
    );
    assert_eq!(applied.status_changed, vec![held.id]);
    let changes = store.user_changes_since(before).await.unwrap();
    assert_eq!(
        changes.changed.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![held.id]
    );
}
both_backends!(traffic_follows_the_lifecycle_rules);

/// A created user is handed back as built, not read back: it must equal
/// what a read returns, owner's name included.
async fn a_created_user_is_what_a_read_returns(store: &Store) {
    let owner = store
        .create_admin(nexpoint::store::NewAdmin {
            username: "owner",
            hashed_password: "x",
            is_sudo: false,
        })
        .await
        .unwrap();
    let mut user = new_user("Carol");
    user.admin_id = Some(owner.id);
    user.data_limit = Some(5_000);
    user.expire = Some(4_000_000_000);
    user.note = Some("note".into());
    user.excluded_inbounds = BTreeMap::from([("vmess".into(), vec!["VMess TCP".into()])]);
    user.data_limit_reset_strategy = ResetStrategy::Month;
    let created = store.create_user(user).await.unwrap();
    let read = store.user_by_username("carol").await.unwrap().unwrap();
    assert_eq!(format!("{created:?}"), format!("{read:?}"));
    assert_eq!(created.admin_username.as_deref(), Some("owner"));

    let mut on_hold = new_user("dave");
    on_hold.status = UserStatus::OnHold;
    on_hold.on_hold_expire_duration = Some(86_400);
    on_hold.on_hold_timeout = Some(4_000_000_000);
    let created = store.create_user(on_hold).await.unwrap();
    let read = store.user_by_username("dave").await.unwrap().unwrap();
    assert_eq!(format!("{created:?}"), format!("{read:?}"));
    assert_eq!(created.admin_username, None);
}
both_backends!(a_created_user_is_what_a_read_returns);

/// Concurrent creations each take their own revision, so a node that synced
/// up to any revision misses none of them.
async fn concurrent_creations_take_distinct_revisions(store: &Store) {
    let start = store.current_revision().await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .create_user(new_user(&format!("c{t}_{i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.current_revision().await.unwrap(), start + 200);
    for base in [start, start + 57, start + 199] {
        let changes = store.user_changes_since(base).await.unwrap();
        assert_eq!(
            changes.changed.len() as i64,
            start + 200 - base,
            "changes after revision {base}"
        );
    }
}
both_backends!(concurrent_creations_take_distinct_revisions);
