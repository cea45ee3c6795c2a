//! The notification outbox and per-destination delivery state, on SQLite
//! and PostgreSQL alike: notifications are written by the transaction of
//! the change that caused them, in commit order, and each destination's
//! cursor moves only when told.

use nexpoint::domain::{Action, AutoDeletePolicy, UserStatus};
use nexpoint::store::{
    NodeHealth, Notification, ReminderThresholds, Store, StoreError, UsageBatch, UserUsageDelta,
    now,
};
mod common;
use common::{new_node, new_user};

async fn all(store: &Store) -> Vec<Notification> {
    store.notifications_after(0, None, 10_000).await.unwrap()
}

fn actions(ns: &[Notification]) -> Vec<(Action, String)> {
    ns.iter().map(|n| (n.action, n.subject.clone())).collect()
}

async fn user_changes_are_written_with_the_change_and_only_then(store: &Store) {
    store.create_user(new_user("alice")).await.unwrap();
    store
        .update_user("alice", Some("root"), |u| {
            u.note = Some("vip".into());
            Ok::<_, StoreError>(vec![Action::UserUpdated, Action::SubscriptionRevoked])
        })
        .await
        .unwrap();
    // A change that fails writes no notification either.
    let failed = store
        .update_user("alice", Some("root"), |_| {
            Err::<Vec<Action>, _>(StoreError::Conflict("no".into()))
        })
        .await;
    assert!(failed.is_err());
    store.delete_user("alice", Some("root")).await.unwrap();

    let ns = all(store).await;
    assert_eq!(
        actions(&ns),
        vec![
            (Action::UserCreated, "alice".into()),
            (Action::UserUpdated, "alice".into()),
            (Action::SubscriptionRevoked, "alice".into()),
            (Action::UserDeleted, "alice".into()),
        ]
    );
    assert_eq!(
        ns.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "ids have no gaps, even around a rolled back change"
    );
    let updated = &ns[1].payload;
    assert_eq!(updated["username"], "alice");
    assert_eq!(updated["action"], "user_updated");
    assert_eq!(updated["by"]["username"], "root");
    assert_eq!(updated["user"]["note"], "vip");
    // Built when it happened: the deletion does not change it.
    assert_eq!(ns[0].payload["user"]["note"], serde_json::Value::Null);
    // No credential leaves in a notification.
    assert!(updated["user"].get("proxies").is_none());
}
both_backends!(user_changes_are_written_with_the_change_and_only_then);

async fn concurrent_writers_get_ids_in_commit_order_without_gaps(store: &Store) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.create_user(new_user(&format!("u{i}"))).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let ids: Vec<i64> = all(store).await.iter().map(|n| n.id).collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
}
both_backends!(concurrent_writers_get_ids_in_commit_order_without_gaps);

async fn each_destination_has_its_own_cursor(store: &Store) {
    store.create_user(new_user("before")).await.unwrap();
    // A destination added now starts after what exists.
    let a = store.ensure_destination("webhook:a").await.unwrap();
    assert_eq!((a.last_id, a.attempts, a.next_attempt_at), (1, 0, 0));
    store.create_user(new_user("after1")).await.unwrap();
    store.create_user(new_user("after2")).await.unwrap();
    let b = store.ensure_destination("webhook:b").await.unwrap();
    assert_eq!(b.last_id, 3);
    // An admin's chat found late starts before what was created since.
    let late = store
        .ensure_destination_since("telegram-admin:1:7", now() - 3_600)
        .await
        .unwrap();
    assert_eq!(late.last_id, 0);
    let late = store
        .ensure_destination_since("telegram-admin:1:7", now() + 3_600)
        .await
        .unwrap();
    assert_eq!(late.last_id, 0, "a cursor, once made, stays");

    let pending = store.notifications_after(a.last_id, None, 1).await.unwrap();
    assert_eq!(
        actions(&pending),
        vec![(Action::UserCreated, "after1".into())]
    );

    let t = now();
    assert_eq!(
        store
            .record_failure("webhook:a", "HTTP 500", t + 4)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .record_failure("webhook:a", "HTTP 502", t + 8)
            .await
            .unwrap(),
        2
    );
    let a = store.ensure_destination("webhook:a").await.unwrap();
    assert_eq!((a.last_id, a.attempts, a.next_attempt_at), (1, 2, t + 8));
    assert_eq!(a.last_error.as_deref(), Some("HTTP 502"));

    store.record_delivered("webhook:a", 2).await.unwrap();
    // A stale acknowledgement never moves a cursor back.
    store.record_delivered("webhook:a", 1).await.unwrap();
    let a = store.ensure_destination("webhook:a").await.unwrap();
    assert_eq!((a.last_id, a.attempts, a.next_attempt_at), (2, 0, 0));
    assert_eq!(a.last_error, None);
    assert!(a.last_delivered_at.is_some());
    let states = store.delivery_states().await.unwrap();
    assert_eq!(
        states
            .iter()
            .map(|s| (s.destination.as_str(), s.last_id))
            .collect::<Vec<_>>(),
        vec![
            ("telegram-admin:1:7", 0),
            ("webhook:a", 2),
            ("webhook:b", 3)
        ]
    );

    // Pruning keeps what a configured destination still needs.
    let future = now() + 10;
    let pruned = store
        .prune_notifications(&["webhook:a".into(), "webhook:b".into()], future)
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    assert_eq!(all(store).await.first().map(|n| n.id), Some(3));
}
both_backends!(each_destination_has_its_own_cursor);

async fn an_admins_chat_sees_only_its_users(store: &Store) {
    let admin = store
        .create_admin(nexpoint::store::NewAdmin {
            username: "reseller",
            hashed_password: "x",
            is_sudo: false,
        })
        .await
        .unwrap();
    let mut owned = new_user("owned");
    owned.admin_id = Some(admin.id);
    store.create_user(owned).await.unwrap();
    store.create_user(new_user("other")).await.unwrap();
    let mine = store
        .notifications_after(0, Some(admin.id), 100)
        .await
        .unwrap();
    assert_eq!(actions(&mine), vec![(Action::UserCreated, "owned".into())]);
    assert_eq!(mine[0].payload["by"]["username"], "reseller");
}
both_backends!(an_admins_chat_sees_only_its_users);

async fn time_and_traffic_events_are_written_by_their_transactions(store: &Store) {
    let t = now();
    let mut soon = new_user("soon");
    soon.expire = Some(t + 100);
    store.create_user(soon).await.unwrap();
    store.settle_due_users(t + 100, 1_000).await.unwrap();

    let mut capped = new_user("capped");
    capped.data_limit = Some(1_000);
    let capped = store.create_user(capped).await.unwrap();
    let node = new_node(store, "n1").await;
    let usage = |seq: i64, bytes: i64| UsageBatch {
        node_id: node,
        after_sequence: seq - 1,
        last_sequence: seq,
        coefficient: 1.0,
        deltas: vec![UserUsageDelta {
            user_id: capped.id,
            uplink: bytes,
            downlink: 0,
            recorded_at: now(),
        }],
    };
    store.apply_usage(&usage(1, 500)).await.unwrap();
    store.apply_usage(&usage(2, 350)).await.unwrap(); // 85 %: crosses 80
    store.apply_usage(&usage(3, 50)).await.unwrap(); // 90 %: already reminded
    store.apply_usage(&usage(4, 200)).await.unwrap(); // over the limit

    let ns = all(store).await;
    let events: Vec<_> = actions(&ns).into_iter().skip(1).collect();
    assert_eq!(
        events,
        vec![
            (Action::UserExpired, "soon".into()),
            (Action::UserCreated, "capped".into()),
            (Action::ReachedUsagePercent, "capped".into()),
            (Action::UserLimited, "capped".into()),
        ]
    );
    let reminder = &ns[3].payload;
    assert_eq!(reminder["used_percent"], 80);
    assert_eq!(reminder["user"]["used_traffic"], 850);
    assert_eq!(reminder["by"], serde_json::Value::Null);
}
both_backends!(time_and_traffic_events_are_written_by_their_transactions);

async fn reminders_are_sent_once_until_their_condition_resets(store: &Store) {
    let store = store
        .clone()
        .with_reminder_thresholds(ReminderThresholds::new(vec![50], vec![3, 1]));
    let t = now();
    let mut u = new_user("renewing");
    u.expire = Some(t + 2 * 86_400);
    store.create_user(u).await.unwrap();
    let mut far = new_user("far");
    far.expire = Some(t + 30 * 86_400);
    store.create_user(far).await.unwrap();

    assert_eq!(store.send_days_left_reminders(t).await.unwrap(), 1);
    assert_eq!(store.send_days_left_reminders(t).await.unwrap(), 0, "once");
    // A day later the 1-day threshold is reached: a new reminder.
    assert_eq!(store.send_days_left_reminders(t + 86_400).await.unwrap(), 1);
    // Renewed: the condition reset, so the reminders come again later.
    store
        .update_user("renewing", None, |u| {
            u.expire = Some(t + 10 * 86_400);
            Ok::<_, StoreError>(vec![Action::UserUpdated])
        })
        .await
        .unwrap();
    assert_eq!(store.send_days_left_reminders(t).await.unwrap(), 0);
    assert_eq!(
        store
            .send_days_left_reminders(t + 8 * 86_400)
            .await
            .unwrap(),
        1
    );

    let days: Vec<i64> = all(&store)
        .await
        .iter()
        .filter(|n| n.action == Action::ReachedDaysLeft)
        .map(|n| n.payload["days_left"].as_i64().unwrap())
        .collect();
    assert_eq!(
        days,
        vec![3, 1, 3],
        "the nearest threshold reached each time"
    );

    // Usage: reset after the reminder, crossing again reminds again.
    let mut capped = new_user("capped");
    capped.data_limit = Some(100);
    let capped = store.create_user(capped).await.unwrap();
    let node = new_node(&store, "n1").await;
    let usage = |seq: i64, bytes: i64| UsageBatch {
        node_id: node,
        after_sequence: seq - 1,
        last_sequence: seq,
        coefficient: 1.0,
        deltas: vec![UserUsageDelta {
            user_id: capped.id,
            uplink: bytes,
            downlink: 0,
            recorded_at: now(),
        }],
    };
    store.apply_usage(&usage(1, 60)).await.unwrap();
    store
        .update_user("capped", None, |u| {
            let mut account = u.account();
            account.reset_usage(now());
            u.set_account(account);
            Ok::<_, StoreError>(vec![Action::DataUsageReset])
        })
        .await
        .unwrap();
    store.apply_usage(&usage(2, 70)).await.unwrap();
    let usage_reminders = all(&store)
        .await
        .iter()
        .filter(|n| n.action == Action::ReachedUsagePercent)
        .count();
    assert_eq!(usage_reminders, 2);
}
both_backends!(reminders_are_sent_once_until_their_condition_resets);

async fn node_status_changes_and_logins_are_notified(store: &Store) {
    let node = new_node(store, "edge").await;
    let health = |status: &'static str, message: Option<&str>| NodeHealth {
        status,
        message: message.map(str::to_owned),
        ..Default::default()
    };
    store
        .set_node_health(node, health("error", Some("refused")))
        .await
        .unwrap();
    store
        .set_node_health(node, health("connected", None))
        .await
        .unwrap();
    // Heartbeats are not news.
    store
        .set_node_health(node, health("connected", None))
        .await
        .unwrap();
    store
        .set_node_health(node, health("error", Some("reset")))
        .await
        .unwrap();
    store
        .enqueue_notices(&[nexpoint::store::Notice::login(
            false,
            "root",
            "192.0.2.9",
            now(),
        )])
        .await
        .unwrap();
    let ns = all(store).await;
    assert_eq!(
        actions(&ns),
        vec![
            (Action::NodeError, "edge".into()),
            (Action::NodeConnected, "edge".into()),
            (Action::NodeLost, "edge".into()),
            (Action::LoginFailed, "root".into()),
        ]
    );
    assert_eq!(ns[2].payload["message"], "reset");
    assert_eq!(ns[3].payload["address"], "192.0.2.9");
    assert!(!ns[3].payload.to_string().contains("password"));
}
both_backends!(node_status_changes_and_logins_are_notified);

async fn auto_delete_removes_users_expired_long_enough(store: &Store) {
    let t = now();
    let mut old = new_user("old");
    old.status = UserStatus::Expired;
    old.expire = Some(t - 10 * 86_400);
    store.create_user(old).await.unwrap();
    let mut own = new_user("kept-by-own-setting");
    own.status = UserStatus::Expired;
    own.auto_delete_in_days = Some(-1);
    store.create_user(own).await.unwrap();
    store.create_user(new_user("active")).await.unwrap();
    let policy = AutoDeletePolicy {
        days: 5,
        include_limited: false,
    };
    // Expired since creation (now): due five days later.
    assert!(
        store
            .delete_auto_deletable_users(&policy, t + 86_400)
            .await
            .unwrap()
            .is_empty()
    );
    let deleted = store
        .delete_auto_deletable_users(&policy, t + 6 * 86_400)
        .await
        .unwrap();
    assert_eq!(deleted, vec!["old".to_owned()]);
    let last = all(store).await.pop().unwrap();
    assert_eq!(
        (last.action, last.subject.as_str()),
        (Action::UserDeleted, "old")
    );
    assert_eq!(last.payload["reason"], "auto delete");
}
both_backends!(auto_delete_removes_users_expired_long_enough);
