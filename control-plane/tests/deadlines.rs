//! Time-driven lifecycle changes through stored deadlines, and the usage
//! history's retention, on SQLite and PostgreSQL alike.

use std::time::Duration;

use nexpoint::domain::{ResetStrategy, UserStatus};
use nexpoint::store::{
    NewUser, Store, StoreError, UsageBatch, UsageRetention, UserUsageDelta, now,
};
mod common;
use common::{new_node, new_user};

async fn status(store: &Store, name: &str) -> UserStatus {
    store.user_by_username(name).await.unwrap().unwrap().status
}

async fn a_user_expires_at_its_expiry_second_and_nodes_learn_it(store: &Store) {
    let t = now();
    let mut soon = new_user("soon");
    soon.expire = Some(t + 100);
    let soon = store.create_user(soon).await.unwrap();
    let mut later = new_user("later");
    later.expire = Some(t + 200);
    store.create_user(later).await.unwrap();
    // No deadline: only traffic or an admin changes her.
    store.create_user(new_user("plain")).await.unwrap();
    assert_eq!(store.earliest_deadline().await.unwrap(), Some(t + 100));

    // A second before: nothing is due.
    let pass = store.settle_due_users(t + 99, 1_000).await.unwrap();
    assert_eq!(pass.settled, 0);
    assert_eq!(status(store, "soon").await, UserStatus::Active);

    let before = store.current_revision().await.unwrap();
    let pass = store.settle_due_users(t + 100, 1_000).await.unwrap();
    assert_eq!(pass.settled, 1, "only the user due is read");
    assert_eq!(pass.status_changed, vec![(soon.id, UserStatus::Expired)]);
    assert_eq!(status(store, "soon").await, UserStatus::Expired);
    assert_eq!(status(store, "later").await, UserStatus::Active);
    // The change travels to the nodes as a revision.
    let changes = store.user_changes_since(before).await.unwrap();
    assert_eq!(
        changes.changed.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![soon.id]
    );
    // An expired user has no deadline left; the next one is `later`'s.
    assert_eq!(store.earliest_deadline().await.unwrap(), Some(t + 200));
    let again = store.settle_due_users(t + 100, 1_000).await.unwrap();
    assert_eq!(again.settled, 0, "a settled user is not read again");
}
both_backends!(a_user_expires_at_its_expiry_second_and_nodes_learn_it);

async fn an_edit_moves_the_deadline(store: &Store) {
    let t = now();
    let mut u = new_user("edited");
    u.expire = Some(t + 100);
    store.create_user(u).await.unwrap();
    store
        .update_user("edited", None, |u| {
            u.expire = Some(t + 50);
            Ok::<_, StoreError>(Vec::new())
        })
        .await
        .unwrap();
    assert_eq!(store.earliest_deadline().await.unwrap(), Some(t + 50));
    let pass = store.settle_due_users(t + 50, 1_000).await.unwrap();
    assert_eq!(pass.settled, 1);
    assert_eq!(status(store, "edited").await, UserStatus::Expired);
    // Extended again by an admin: active, with the new deadline.
    store
        .update_user("edited", None, |u| {
            let mut account = u.account();
            account.expire = Some(t + 500);
            account.evaluate_at(t + 50);
            u.set_account(account);
            Ok::<_, StoreError>(Vec::new())
        })
        .await
        .unwrap();
    assert_eq!(status(store, "edited").await, UserStatus::Active);
    assert_eq!(store.earliest_deadline().await.unwrap(), Some(t + 500));
}
both_backends!(an_edit_moves_the_deadline);

async fn an_on_hold_user_starts_at_its_timeout(store: &Store) {
    let t = now();
    let mut held = new_user("held");
    held.status = UserStatus::OnHold;
    held.on_hold_expire_duration = Some(86_400);
    held.on_hold_timeout = Some(t + 30);
    let held = store.create_user(held).await.unwrap();
    assert_eq!(store.earliest_deadline().await.unwrap(), Some(t + 30));
    let pass = store.settle_due_users(t + 30, 1_000).await.unwrap();
    assert_eq!(pass.status_changed, vec![(held.id, UserStatus::Active)]);
    let now_active = store.user_by_username("held").await.unwrap().unwrap();
    assert_eq!(now_active.expire, Some(t + 30 + 86_400));
    // Her plan's end is the next deadline.
    assert_eq!(
        store.earliest_deadline().await.unwrap(),
        Some(t + 30 + 86_400)
    );
}
both_backends!(an_on_hold_user_starts_at_its_timeout);

async fn a_periodic_reset_readmits_a_limited_user(store: &Store) {
    let node = new_node(store, "n-reset").await;
    let mut daily = new_user("daily");
    daily.data_limit = Some(1_000);
    daily.data_limit_reset_strategy = ResetStrategy::Day;
    let daily = store.create_user(daily).await.unwrap();
    let applied = store
        .apply_usage(&UsageBatch {
            node_id: node,
            after_sequence: 0,
            last_sequence: 1,
            coefficient: 1.0,
            deltas: vec![UserUsageDelta {
                user_id: daily.id,
                uplink: 500,
                downlink: 600,
                recorded_at: now(),
            }],
        })
        .await
        .unwrap();
    assert_eq!(applied.status_changed, vec![daily.id]);
    assert_eq!(status(store, "daily").await, UserStatus::Limited);

    let due = store.earliest_deadline().await.unwrap().unwrap();
    assert_eq!(due, daily.created_at + 86_400, "the day's end");
    let pass = store.settle_due_users(due, 1_000).await.unwrap();
    assert_eq!(pass.status_changed, vec![(daily.id, UserStatus::Active)]);
    let reset = store.user_by_username("daily").await.unwrap().unwrap();
    assert_eq!(reset.used_traffic, 0);
    assert_eq!(reset.lifetime_used_traffic, 1_100);
    assert_eq!(
        store.earliest_deadline().await.unwrap(),
        Some(due + 86_400),
        "the next day's end"
    );
}
both_backends!(a_periodic_reset_readmits_a_limited_user);

async fn a_burst_is_settled_in_batches(store: &Store) {
    let t = now();
    let users: Vec<NewUser> = (0..25)
        .map(|i| {
            let mut u = new_user(&format!("burst{i:02}"));
            u.expire = Some(t + 10);
            u
        })
        .collect();
    store.create_users_bulk(&users).await.unwrap();
    let mut settled = 0;
    loop {
        let pass = store.settle_due_users(t + 10, 10).await.unwrap();
        assert!(pass.settled <= 10);
        settled += pass.settled;
        if pass.settled < 10 {
            break;
        }
    }
    assert_eq!(settled, 25);
    assert_eq!(store.earliest_deadline().await.unwrap(), None);
    for i in 0..25 {
        assert_eq!(
            status(store, &format!("burst{i:02}")).await,
            UserStatus::Expired
        );
    }
}
both_backends!(a_burst_is_settled_in_batches);

async fn an_earlier_deadline_wakes_the_clock(store: &Store) {
    let t = now();
    let mut far = new_user("far");
    far.expire = Some(t + 10_000);
    store.create_user(far).await.unwrap();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.deadline_before(t + 10_000).await })
    };
    // A later deadline does not wake it.
    let mut later = new_user("later");
    later.expire = Some(t + 20_000);
    store.create_user(later).await.unwrap();
    let mut near = new_user("near");
    near.expire = Some(t + 5);
    store.create_user(near).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("an earlier deadline wakes the clock")
        .unwrap();
}
both_backends!(an_earlier_deadline_wakes_the_clock);

async fn usage_history_is_rolled_up_then_pruned(store: &Store) {
    const HOUR: i64 = 3_600;
    const DAY: i64 = 86_400;
    let node = new_node(store, "n-history").await;
    let user = store.create_user(new_user("history")).await.unwrap();
    let today = now() - now().rem_euclid(DAY);
    let old_day = today - 40 * DAY;
    let ancient_day = today - 400 * DAY;
    let delta = |at: i64, bytes: i64| UserUsageDelta {
        user_id: user.id,
        uplink: bytes,
        downlink: 0,
        recorded_at: at,
    };
    store
        .apply_usage(&UsageBatch {
            node_id: node,
            after_sequence: 0,
            last_sequence: 1,
            coefficient: 1.0,
            deltas: vec![
                delta(ancient_day + 5 * HOUR, 1),
                delta(old_day, 10),
                delta(old_day + 3 * HOUR, 20),
                delta(old_day + 23 * HOUR + 59, 30),
                delta(today + HOUR, 40),
            ],
        })
        .await
        .unwrap();
    let usage = |start: i64, end: i64| {
        let store = store.clone();
        async move { store.user_usage_by_node(user.id, start, end).await.unwrap()[0].used_traffic }
    };
    assert_eq!(usage(0, i64::MAX).await, 101);

    let retention = store
        .apply_usage_retention(today - 31 * DAY, Some(today - 365 * DAY))
        .await
        .unwrap();
    assert_eq!(
        retention,
        UsageRetention {
            hours_rolled_up: 2,
            rows_pruned: 1,
        }
    );
    // The old day is one row at its first hour, holding the whole day.
    assert_eq!(usage(old_day, old_day).await, 60);
    assert_eq!(usage(old_day + 1, old_day + DAY - 1).await, 0);
    // Recent hours are untouched; the ancient row is gone.
    assert_eq!(usage(today + HOUR, today + HOUR).await, 40);
    assert_eq!(usage(0, i64::MAX).await, 100);
    // A second pass has nothing left to do.
    let again = store
        .apply_usage_retention(today - 31 * DAY, Some(today - 365 * DAY))
        .await
        .unwrap();
    assert_eq!(again, UsageRetention::default());
    // Lifetime figures are not history: they stay.
    let user = store.user_by_username("history").await.unwrap().unwrap();
    assert_eq!(user.lifetime_used_traffic, 101);
}
both_backends!(usage_history_is_rolled_up_then_pruned);
