use super::*;
use UserStatus::*;

const NOW: i64 = T0 + 2 * DAY + 123;

#[test]
fn deadlines_of_each_status() {
    // Active: the earlier of expiry and next reset.
    let mut a = user(0, Some(100), Some(T0 + 5 * DAY));
    assert_eq!(a.next_deadline(NOW), Some(T0 + 5 * DAY));
    a.data_limit_reset_strategy = ResetStrategy::Day;
    a.last_usage_reset_at = Some(T0 + 2 * DAY);
    assert_eq!(a.next_deadline(NOW), Some(T0 + 3 * DAY));
    a.data_limit_reset_strategy = ResetStrategy::Week;
    assert_eq!(a.next_deadline(NOW), Some(T0 + 5 * DAY));
    // Nothing time-based.
    assert_eq!(user(0, Some(100), None).next_deadline(NOW), None);

    // Limited: only its reset, or its expiry when a plan waits for both.
    let mut l = with_status(user(100, Some(100), Some(T0 + 5 * DAY)), Limited);
    assert_eq!(l.next_deadline(NOW), None);
    l.data_limit_reset_strategy = ResetStrategy::Month;
    assert_eq!(l.next_deadline(NOW), Some(T0 + 30 * DAY));
    l.next_plan = Some(NextPlan {
        fire_on_either: false,
        ..plan(None, None)
    });
    assert_eq!(l.next_deadline(NOW), Some(T0 + 5 * DAY));

    // Expired: only traffic-free admin action can change it.
    let mut e = with_status(user(0, Some(100), Some(T0 + DAY)), Expired);
    e.data_limit_reset_strategy = ResetStrategy::Day;
    assert_eq!(e.next_deadline(NOW), None);

    // Disabled: never.
    let mut d = with_status(user(100, Some(1), Some(T0)), Disabled);
    d.data_limit_reset_strategy = ResetStrategy::Day;
    assert_eq!(d.next_deadline(NOW), None);

    // On hold: its timeout, whatever else.
    let mut h = on_hold(DAY, Some(NOW + 50));
    h.data_limit_reset_strategy = ResetStrategy::Day;
    assert_eq!(h.next_deadline(NOW), Some(NOW + 50));
    assert_eq!(on_hold(DAY, None).next_deadline(NOW), None);
}

#[test]
fn changes_already_due_are_due_now() {
    assert_eq!(user(0, None, Some(NOW - 1)).next_deadline(NOW), Some(NOW));
    assert_eq!(user(100, Some(100), None).next_deadline(NOW), Some(NOW));
    assert_eq!(on_hold(DAY, Some(T0)).next_deadline(NOW), Some(NOW));
    let mut r = user(1, None, None);
    r.data_limit_reset_strategy = ResetStrategy::Day;
    assert_eq!(r.next_deadline(NOW), Some(NOW));
    let mut p = with_status(user(100, Some(100), None), Limited);
    p.next_plan = Some(plan(None, None));
    assert_eq!(p.next_deadline(NOW), Some(NOW));
}

#[test]
fn deadlines_saturate() {
    let mut a = user(0, None, None);
    a.data_limit_reset_strategy = ResetStrategy::Year;
    a.last_usage_reset_at = Some(i64::MAX - 10);
    assert_eq!(a.next_reset_at(), Some(i64::MAX));
    assert_eq!(a.next_deadline(NOW), Some(i64::MAX));
}

/// Every combination of the fields that matter: once settled at NOW, nothing
/// changes before the deadline, something changes at it, and nothing ever
/// changes when there is none.
#[test]
fn the_deadline_is_exactly_the_next_change() {
    let statuses = [Active, Limited, Expired, Disabled, OnHold];
    let useds = [0, 99, 100, 150];
    let limits = [None, Some(100)];
    let expires = [None, Some(NOW - DAY), Some(NOW + 1), Some(NOW + 4 * DAY)];
    let strategies = [
        ResetStrategy::NoReset,
        ResetStrategy::Day,
        ResetStrategy::Week,
    ];
    let anchors = [None, Some(NOW - DAY / 2)];
    let timeouts = [None, Some(NOW + 3 * DAY)];
    let plans = [
        None,
        Some(plan(Some(1000), Some(2 * DAY))),
        Some(NextPlan {
            fire_on_either: false,
            ..plan(None, Some(DAY))
        }),
    ];
    let mut checked = 0;
    for status in statuses {
        for used in useds {
            for limit in limits {
                for expire in expires {
                    for strategy in strategies {
                        for anchor in anchors {
                            for timeout in timeouts {
                                for next_plan in &plans {
                                    let mut a = with_status(user(used, limit, expire), status);
                                    a.data_limit_reset_strategy = strategy;
                                    a.last_usage_reset_at = anchor;
                                    a.next_plan = next_plan.clone();
                                    if status == OnHold {
                                        a.on_hold_expire_duration = Some(DAY);
                                        a.on_hold_timeout = timeout;
                                        a.expire = None;
                                    }
                                    a.evaluate_at(NOW);
                                    check_deadline(&a);
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 5 * 4 * 2 * 4 * 3 * 2 * 2 * 3);
}

fn check_deadline(a: &Account) {
    assert_eq!(a.clone().evaluate_at(NOW), vec![], "not settled: {a:?}");
    match a.next_deadline(NOW) {
        None => {
            for t in [NOW + 1, NOW + 400 * DAY, i64::MAX] {
                assert_eq!(a.clone().evaluate_at(t), vec![], "changed at {t}: {a:?}");
            }
        }
        Some(d) => {
            assert!(d > NOW, "deadline {d} not after NOW: {a:?}");
            assert_eq!(a.clone().evaluate_at(d - 1), vec![], "early change: {a:?}");
            assert_ne!(a.clone().evaluate_at(d), vec![], "no change at {d}: {a:?}");
        }
    }
}
