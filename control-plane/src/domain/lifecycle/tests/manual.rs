//! Manual resets, bulk enable/disable, and usage over many periods.

use super::*;
use UserStatus::*;

#[test]
fn a_manual_reset_zeroes_usage_and_keeps_the_lifetime() {
    let mut a = user(70, Some(100), None);
    a.lifetime_used_traffic = 170;
    a.next_plan = Some(plan(Some(5), None));
    let events = a.reset_usage(T0 + 3);
    assert_eq!(
        events,
        vec![Event::UsageReset {
            used_traffic: 70,
            periodic: false,
        }]
    );
    assert_eq!((a.used_traffic, a.lifetime_used_traffic), (0, 170));
    assert_eq!(a.last_usage_reset_at, Some(T0 + 3));
    assert_eq!(a.next_plan, None, "a manual reset drops the next plan");
    assert_eq!(a.status, Active);
}

#[test]
fn a_manual_reset_readmits_a_limited_user() {
    let mut a = with_status(user(100, Some(100), None), Limited);
    assert_eq!(
        a.reset_usage(T0 + 3),
        vec![
            Event::UsageReset {
                used_traffic: 100,
                periodic: false,
            },
            Event::Reactivated { from: Limited },
        ]
    );
    assert_eq!((a.status, a.last_status_change), (Active, Some(T0 + 3)));
}

#[test]
fn a_manual_reset_of_a_limited_and_expired_user_expires_it() {
    let mut a = with_status(user(100, Some(100), Some(T0 + 1)), Limited);
    let events = a.reset_usage(T0 + 3);
    assert_eq!(events.last(), Some(&Event::Expired));
    assert_eq!(a.status, Expired);
}

#[test]
fn a_manual_reset_keeps_other_statuses() {
    for status in [Expired, Disabled, OnHold] {
        let mut a = with_status(user(100, Some(100), Some(T0 + 1)), status);
        assert_eq!(
            a.reset_usage(T0 + 3),
            vec![Event::UsageReset {
                used_traffic: 100,
                periodic: false,
            }]
        );
        assert_eq!((a.status, a.used_traffic), (status, 0));
    }
}

#[test]
fn a_manual_reset_restarts_the_period() {
    let mut a = user(10, None, None);
    a.data_limit_reset_strategy = ResetStrategy::Day;
    a.reset_usage(T0 + DAY - 10);
    assert_eq!(a.next_reset_at(), Some(T0 + 2 * DAY - 10));
    assert_eq!(a.evaluate_at(T0 + DAY), vec![]);
}

#[test]
fn lifetime_usage_survives_every_kind_of_reset() {
    let mut a = user(0, Some(1000), None);
    a.data_limit_reset_strategy = ResetStrategy::Day;
    a.record_usage(100, T0 + 1);
    a.reset_usage(T0 + 2);
    a.record_usage(50, T0 + 3);
    a.evaluate_at(T0 + 2 + DAY);
    assert_eq!(a.used_traffic, 0);
    a.record_usage(30, T0 + 4 + DAY);
    a.next_plan = Some(plan(Some(1000), None));
    a.activate_next_plan(T0 + 5 + DAY).unwrap();
    a.record_usage(7, T0 + 6 + DAY);
    assert_eq!((a.used_traffic, a.lifetime_used_traffic), (7, 187));
}

#[test]
fn bulk_disable_takes_only_served_users() {
    for (from, disabled) in [
        (Active, true),
        (OnHold, true),
        (Limited, false),
        (Expired, false),
        (Disabled, false),
    ] {
        let mut a = with_status(user(0, None, None), from);
        let events = a.disable(T0 + 4);
        if disabled {
            assert_eq!(events, vec![Event::Disabled]);
            assert_eq!((a.status, a.last_status_change), (Disabled, Some(T0 + 4)));
        } else {
            assert_eq!(events, vec![]);
            assert_eq!(a.status, from);
        }
    }
}

#[test]
fn bulk_enable_restores_on_hold_users_that_never_started() {
    let mut never = with_status(on_hold(DAY, None), Disabled);
    assert_eq!(never.enable(T0 + 4), vec![Event::Enabled]);
    assert_eq!(never.status, OnHold);

    let mut seen = with_status(on_hold(DAY, None), Disabled);
    seen.online_at = Some(T0 + 1);
    assert_eq!(seen.enable(T0 + 4), vec![Event::Enabled]);
    assert_eq!(seen.status, Active);

    let mut over = with_status(user(100, Some(100), None), Disabled);
    assert_eq!(over.enable(T0 + 4), vec![Event::Enabled, Event::Limited]);
    assert_eq!(over.status, Limited);

    let mut active = user(0, None, None);
    assert_eq!(active.enable(T0 + 4), vec![]);
}
