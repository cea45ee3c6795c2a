use super::*;
use UserStatus::*;

const STRATEGIES: [(ResetStrategy, i64); 4] = [
    (ResetStrategy::Day, 1),
    (ResetStrategy::Week, 7),
    (ResetStrategy::Month, 30),
    (ResetStrategy::Year, 365),
];

#[test]
fn expiry_is_reached_at_its_second() {
    let mut a = user(0, None, Some(T0 + 1000));
    assert_eq!(a.evaluate_at(T0 + 999), vec![]);
    assert_eq!(a.status, Active);
    assert_eq!(a.evaluate_at(T0 + 1000), vec![Event::Expired]);
    assert_eq!(a.status, Expired);
    assert_eq!(a.last_status_change, Some(T0 + 1000));
    assert_eq!(a.evaluate_at(T0 + 5000), vec![]);
}

#[test]
fn no_expiry_never_expires() {
    for expire in [None, Some(0)] {
        let mut a = user(0, None, expire);
        assert_eq!(a.evaluate_at(i64::MAX), vec![]);
        assert_eq!(a.status, Active);
    }
}

#[test]
fn hold_timeout_starts_the_plan_at_its_second() {
    let mut a = on_hold(7 * DAY, Some(T0 + 500));
    assert_eq!(a.evaluate_at(T0 + 499), vec![]);
    assert_eq!(a.status, OnHold);
    let events = a.evaluate_at(T0 + 500);
    assert_eq!(
        events,
        vec![Event::Activated {
            cause: Activation::Timeout,
            expire: Some(T0 + 500 + 7 * DAY),
        }]
    );
    assert_eq!(a.status, Active);
    assert_eq!(a.expire, Some(T0 + 500 + 7 * DAY));
    assert_eq!((a.on_hold_expire_duration, a.on_hold_timeout), (None, None));
    assert_eq!(a.last_usage_reset_at, Some(T0 + 500));
}

#[test]
fn a_late_hold_timeout_counts_from_when_it_is_seen() {
    // Marzban starts the clock when its job notices; so do we.
    let mut a = on_hold(DAY, Some(T0 + 10));
    a.evaluate_at(T0 + 1000);
    assert_eq!(a.expire, Some(T0 + 1000 + DAY));
}

#[test]
fn on_hold_without_timeout_waits_forever() {
    let mut a = on_hold(DAY, None);
    assert_eq!(a.evaluate_at(T0 + 3650 * DAY), vec![]);
    assert_eq!(a.status, OnHold);
}

#[test]
fn each_strategy_resets_exactly_at_its_period() {
    for (strategy, days) in STRATEGIES {
        let mut a = user(77, Some(100), None);
        a.data_limit_reset_strategy = strategy;
        let due = T0 + days * DAY;
        assert_eq!(a.evaluate_at(due - 1), vec![], "{strategy:?}");
        assert_eq!(a.used_traffic, 77);
        assert_eq!(
            a.evaluate_at(due),
            vec![Event::UsageReset {
                used_traffic: 77,
                periodic: true,
            }],
            "{strategy:?}"
        );
        assert_eq!((a.used_traffic, a.lifetime_used_traffic), (0, 77));
        assert_eq!(a.last_usage_reset_at, Some(due));
        assert_eq!(a.next_reset_at(), Some(due + days * DAY));
        assert_eq!(a.evaluate_at(due + days * DAY - 1), vec![]);
    }
}

#[test]
fn no_reset_never_resets() {
    let mut a = user(77, Some(100), None);
    assert_eq!(a.next_reset_at(), None);
    assert_eq!(a.evaluate_at(T0 + 10_000 * DAY), vec![]);
    assert_eq!(a.used_traffic, 77);
}

#[test]
fn the_period_counts_from_the_last_reset_else_creation() {
    let mut a = user(10, None, None);
    a.data_limit_reset_strategy = ResetStrategy::Day;
    a.last_usage_reset_at = Some(T0 + 5 * DAY + 30);
    assert_eq!(a.evaluate_at(T0 + 6 * DAY + 29), vec![]);
    assert_eq!(a.evaluate_at(T0 + 6 * DAY + 30).len(), 1);
}

#[test]
fn a_late_reset_happens_once_on_the_last_boundary() {
    let mut a = user(10, None, None);
    a.data_limit_reset_strategy = ResetStrategy::Day;
    let events = a.evaluate_at(T0 + 3 * DAY + 500);
    assert_eq!(
        events,
        vec![Event::UsageReset {
            used_traffic: 10,
            periodic: true,
        }]
    );
    assert_eq!(a.last_usage_reset_at, Some(T0 + 3 * DAY));
    assert_eq!(a.next_reset_at(), Some(T0 + 4 * DAY));
}

#[test]
fn a_reset_readmits_a_limited_user() {
    let mut a = with_status(user(100, Some(100), None), Limited);
    a.data_limit_reset_strategy = ResetStrategy::Week;
    let events = a.evaluate_at(T0 + 7 * DAY);
    assert_eq!(
        events,
        vec![
            Event::UsageReset {
                used_traffic: 100,
                periodic: true,
            },
            Event::Reactivated { from: Limited },
        ]
    );
    assert_eq!((a.status, a.used_traffic), (Active, 0));
    assert_eq!(a.last_status_change, Some(T0 + 7 * DAY));
}

#[test]
fn a_reset_of_a_limited_and_expired_user_leaves_it_expired() {
    let mut a = with_status(user(100, Some(100), Some(T0 + DAY / 2)), Limited);
    a.data_limit_reset_strategy = ResetStrategy::Day;
    let events = a.evaluate_at(T0 + DAY);
    assert_eq!(
        events,
        vec![
            Event::UsageReset {
                used_traffic: 100,
                periodic: true,
            },
            Event::Expired,
        ]
    );
    assert_eq!(a.status, Expired);
}

#[test]
fn expired_disabled_and_on_hold_users_are_not_reset() {
    let expired = with_status(user(50, None, Some(T0 + 10)), Expired);
    let disabled = with_status(user(50, None, None), Disabled);
    let held = with_status(user(50, None, None), OnHold);
    for mut a in [expired, disabled, held] {
        a.data_limit_reset_strategy = ResetStrategy::Day;
        let status = a.status;
        assert_eq!(a.evaluate_at(T0 + 2 * DAY), vec![], "{status:?}");
        assert_eq!((a.status, a.used_traffic), (status, 50));
    }
}

#[test]
fn a_limited_user_past_its_expiry_stays_limited() {
    let mut a = with_status(user(100, Some(100), Some(T0 + 10)), Limited);
    assert_eq!(a.evaluate_at(T0 + 20), vec![]);
    assert_eq!((a.status, a.last_status_change), (Limited, Some(T0)));
}

#[test]
fn an_active_user_over_quota_and_expired_is_limited() {
    let mut a = user(100, Some(100), Some(T0 + 10));
    assert_eq!(a.evaluate_at(T0 + 10), vec![Event::Limited]);
    assert_eq!(a.status, Limited);
}

#[test]
fn unjustified_statuses_are_corrected() {
    // States written outside these rules settle on the next evaluation.
    let mut over = user(100, Some(100), None);
    assert_eq!(over.evaluate_at(T0), vec![Event::Limited]);
    let mut limited = with_status(user(10, Some(100), None), Limited);
    assert_eq!(
        limited.evaluate_at(T0),
        vec![Event::Reactivated { from: Limited }]
    );
    let mut expired = with_status(user(0, None, None), Expired);
    assert_eq!(
        expired.evaluate_at(T0),
        vec![Event::Reactivated { from: Expired }]
    );
    let mut expired_over = with_status(user(100, Some(100), Some(T0 + 50)), Expired);
    assert_eq!(expired_over.evaluate_at(T0), vec![Event::Limited]);
}

#[test]
fn evaluation_is_idempotent() {
    let mut a = with_status(user(100, Some(100), Some(T0 + 10)), Limited);
    a.data_limit_reset_strategy = ResetStrategy::Day;
    a.next_plan = Some(plan(Some(500), None));
    let now = T0 + 3 * DAY;
    assert!(!a.evaluate_at(now).is_empty());
    let settled = a.clone();
    assert_eq!(a.evaluate_at(now), vec![]);
    assert_eq!(a, settled);
}
