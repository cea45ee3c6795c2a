use super::*;
use UserStatus::*;

#[test]
fn under_the_limit_stays_active() {
    let mut a = user(0, Some(100), None);
    assert_eq!(a.record_usage(99, T0 + 5), vec![]);
    assert_eq!(a.status, Active);
    assert_eq!((a.used_traffic, a.lifetime_used_traffic), (99, 99));
    assert_eq!(a.online_at, Some(T0 + 5));
    assert_eq!(a.last_status_change, Some(T0));
}

#[test]
fn reaching_the_limit_exactly_limits() {
    let mut a = user(99, Some(100), None);
    assert_eq!(a.record_usage(1, T0 + 7), vec![Event::Limited]);
    assert_eq!(a.status, Limited);
    assert_eq!(a.used_traffic, 100);
    assert_eq!(a.last_status_change, Some(T0 + 7));
    assert!(!a.is_served());
}

#[test]
fn going_over_the_limit_limits() {
    let mut a = user(0, Some(100), None);
    assert_eq!(a.record_usage(101, T0), vec![Event::Limited]);
    assert_eq!((a.status, a.used_traffic), (Limited, 101));
}

#[test]
fn unlimited_users_never_limit() {
    for limit in [None, Some(0)] {
        let mut a = user(0, limit, None);
        assert_eq!(a.record_usage(1 << 50, T0), vec![]);
        assert_eq!((a.status, a.used_traffic), (Active, 1 << 50));
    }
}

#[test]
fn usage_accumulates_in_used_and_lifetime() {
    let mut a = user(0, None, None);
    a.record_usage(10, T0 + 1);
    a.record_usage(20, T0 + 2);
    assert_eq!((a.used_traffic, a.lifetime_used_traffic), (30, 30));
    assert_eq!(a.online_at, Some(T0 + 2));
    // A batch stamped earlier does not move online_at back.
    a.record_usage(5, T0 + 1);
    assert_eq!(a.online_at, Some(T0 + 2));
}

#[test]
fn zero_and_negative_deltas_change_nothing() {
    let mut a = user(40, Some(100), None);
    let before = a.clone();
    assert_eq!(a.record_usage(0, T0 + 1), vec![]);
    assert_eq!(a.record_usage(-1000, T0 + 1), vec![]);
    assert_eq!(a, before);
}

#[test]
fn usage_saturates_instead_of_overflowing() {
    let mut a = user(i64::MAX - 5, None, None);
    assert_eq!(a.record_usage(10, T0), vec![]);
    assert_eq!(a.used_traffic, i64::MAX);
    assert_eq!(a.lifetime_used_traffic, i64::MAX);
    let mut b = user(i64::MAX - 5, Some(i64::MAX), None);
    assert_eq!(b.record_usage(i64::MAX, T0), vec![Event::Limited]);
    assert_eq!(b.used_traffic, i64::MAX);
}

#[test]
fn disabled_users_count_usage_but_stay_disabled() {
    let mut a = with_status(user(90, Some(100), Some(T0 + 10)), Disabled);
    assert_eq!(a.record_usage(50, T0 + 20), vec![]);
    assert_eq!(
        (a.status, a.used_traffic, a.lifetime_used_traffic),
        (Disabled, 140, 140)
    );
}

#[test]
fn late_usage_of_expired_users_keeps_them_expired() {
    let mut a = with_status(user(90, Some(100), Some(T0 + 10)), Expired);
    assert_eq!(a.record_usage(50, T0 + 20), vec![]);
    assert_eq!((a.status, a.used_traffic), (Expired, 140));
}

#[test]
fn late_usage_of_limited_users_keeps_them_limited() {
    let mut a = with_status(user(100, Some(100), None), Limited);
    assert_eq!(a.record_usage(50, T0 + 20), vec![]);
    assert_eq!((a.status, a.used_traffic), (Limited, 150));
    assert_eq!(a.last_status_change, Some(T0));
}

#[test]
fn first_traffic_starts_an_on_hold_user() {
    let now = T0 + DAY;
    let mut a = on_hold(30 * DAY, Some(T0 + 10 * DAY));
    let events = a.record_usage(5, now);
    assert_eq!(
        events,
        vec![Event::Activated {
            cause: Activation::FirstTraffic,
            expire: Some(now + 30 * DAY),
        }]
    );
    assert_eq!(a.status, Active);
    assert_eq!(a.expire, Some(now + 30 * DAY));
    assert_eq!((a.on_hold_expire_duration, a.on_hold_timeout), (None, None));
    assert_eq!(a.last_usage_reset_at, Some(now));
    assert_eq!(a.last_status_change, Some(now));
    assert_eq!((a.used_traffic, a.lifetime_used_traffic), (5, 5));
}

#[test]
fn first_traffic_over_the_limit_starts_and_limits() {
    let now = T0 + 100;
    let mut a = on_hold(DAY, None);
    a.data_limit = Some(100);
    let events = a.record_usage(500, now);
    assert_eq!(
        events,
        vec![
            Event::Activated {
                cause: Activation::FirstTraffic,
                expire: Some(now + DAY),
            },
            Event::Limited,
        ]
    );
    assert_eq!((a.status, a.expire), (Limited, Some(now + DAY)));
}

#[test]
fn on_hold_without_a_duration_starts_without_expiry() {
    // Imported data may lack the duration; the user starts, with no expiry.
    let mut a = with_status(user(0, None, None), OnHold);
    let events = a.record_usage(1, T0 + 3);
    assert_eq!(
        events,
        vec![Event::Activated {
            cause: Activation::FirstTraffic,
            expire: None,
        }]
    );
    assert_eq!((a.status, a.expire), (Active, None));
}

#[test]
fn on_hold_activation_saturates() {
    let mut a = on_hold(i64::MAX, None);
    a.record_usage(1, T0);
    assert_eq!(a.expire, Some(i64::MAX));
}

#[test]
fn due_time_changes_apply_before_the_bytes() {
    // The daily reset was due: the new bytes count in the new period.
    let mut a = user(50, Some(100), None);
    a.data_limit_reset_strategy = ResetStrategy::Day;
    let events = a.record_usage(10, T0 + DAY);
    assert_eq!(
        events,
        vec![Event::UsageReset {
            used_traffic: 50,
            periodic: true,
        }]
    );
    assert_eq!((a.used_traffic, a.lifetime_used_traffic), (10, 60));

    // An expiry reached at the same second is reported with the bytes.
    let mut b = user(0, Some(100), Some(T0 + 100));
    assert_eq!(b.record_usage(10, T0 + 100), vec![Event::Expired]);
    assert_eq!((b.status, b.used_traffic), (Expired, 10));
}

#[test]
fn legacy_status_after_usage_agrees_on_limits() {
    use crate::domain::user::status_after_usage;
    for (used, limit) in [
        (99, Some(100)),
        (100, Some(100)),
        (101, Some(100)),
        (5, None),
    ] {
        let mut a = user(0, limit, None);
        a.record_usage(used, T0);
        assert_eq!(status_after_usage(Active, used, limit), a.status);
    }
}
