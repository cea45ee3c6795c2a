use super::*;
use UserStatus::*;

fn expired_since(at: i64) -> Account {
    let mut a = with_status(user(0, None, Some(at)), Expired);
    a.last_status_change = Some(at);
    a
}

const POLICY: AutoDeletePolicy = AutoDeletePolicy {
    days: 3,
    include_limited: false,
};

#[test]
fn the_default_policy_never_deletes() {
    assert_eq!(
        AutoDeletePolicy::default(),
        AutoDeletePolicy {
            days: -1,
            include_limited: false,
        }
    );
    let a = expired_since(T0);
    assert_eq!(a.auto_delete_at(&AutoDeletePolicy::default()), None);
    assert!(!a.auto_delete_due(&AutoDeletePolicy::default(), i64::MAX));
}

#[test]
fn the_global_delay_counts_from_the_status_change() {
    let a = expired_since(T0 + 100);
    assert_eq!(a.auto_delete_at(&POLICY), Some(T0 + 100 + 3 * DAY));
    assert!(!a.auto_delete_due(&POLICY, T0 + 100 + 3 * DAY - 1));
    assert!(a.auto_delete_due(&POLICY, T0 + 100 + 3 * DAY));
}

#[test]
fn the_users_own_delay_wins() {
    let mut a = expired_since(T0);
    a.auto_delete_in_days = Some(1);
    assert_eq!(a.auto_delete_at(&POLICY), Some(T0 + DAY));
    a.auto_delete_in_days = Some(0);
    assert_eq!(a.auto_delete_at(&POLICY), Some(T0));
    a.auto_delete_in_days = Some(-1);
    assert_eq!(a.auto_delete_at(&POLICY), None);
    a.auto_delete_in_days = Some(2);
    assert_eq!(
        a.auto_delete_at(&AutoDeletePolicy::default()),
        Some(T0 + 2 * DAY)
    );
}

#[test]
fn limited_users_only_when_the_policy_says_so() {
    let mut a = with_status(user(100, Some(100), None), Limited);
    a.last_status_change = Some(T0 + 5);
    assert_eq!(a.auto_delete_at(&POLICY), None);
    let with_limited = AutoDeletePolicy {
        include_limited: true,
        ..POLICY
    };
    assert_eq!(a.auto_delete_at(&with_limited), Some(T0 + 5 + 3 * DAY));
}

#[test]
fn served_and_disabled_users_are_never_deleted() {
    let everything = AutoDeletePolicy {
        days: 0,
        include_limited: true,
    };
    for status in [Active, OnHold, Disabled] {
        let a = with_status(user(0, None, None), status);
        assert_eq!(a.auto_delete_at(&everything), None, "{status:?}");
    }
}

#[test]
fn without_a_status_change_time_creation_counts() {
    let mut a = expired_since(T0 + 50);
    a.last_status_change = None;
    assert_eq!(a.auto_delete_at(&POLICY), Some(T0 + 3 * DAY));
}

#[test]
fn huge_delays_saturate() {
    let mut a = expired_since(T0);
    a.auto_delete_in_days = Some(i64::MAX);
    assert_eq!(a.auto_delete_at(&POLICY), Some(i64::MAX));
}

#[test]
fn expiring_starts_the_delete_clock() {
    let mut a = user(0, None, Some(T0 + 10));
    a.evaluate_at(T0 + 10);
    assert_eq!(a.auto_delete_at(&POLICY), Some(T0 + 10 + 3 * DAY));
    // Re-admitted: no longer due.
    a.modify(
        &Modification {
            expire: Some(None),
            ..Modification::default()
        },
        T0 + 20,
    )
    .unwrap();
    assert_eq!(a.auto_delete_at(&POLICY), None);
}
