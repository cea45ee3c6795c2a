//! Exhaustive tests of the lifecycle rules; every assertion checks exact values.

use super::*;
use crate::domain::user::{ResetStrategy, UserStatus};

mod auto_delete;
mod deadline;
mod manual;
mod modify;
mod next_plan;
mod time;
mod usage;

/// Creation time of every test account.
const T0: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

/// An active user created at T0 with `used` bytes of usage (lifetime too).
fn user(used: i64, limit: Option<i64>, expire: Option<i64>) -> Account {
    Account {
        used_traffic: used,
        lifetime_used_traffic: used,
        data_limit: limit,
        expire,
        ..Account::new(T0)
    }
}

fn with_status(mut account: Account, status: UserStatus) -> Account {
    account.status = status;
    account
}

/// An on-hold user created at T0 that starts with a plan of `duration` seconds.
fn on_hold(duration: i64, timeout: Option<i64>) -> Account {
    Account {
        status: UserStatus::OnHold,
        on_hold_expire_duration: Some(duration),
        on_hold_timeout: timeout,
        ..Account::new(T0)
    }
}

fn plan(data_limit: Option<i64>, expire: Option<i64>) -> NextPlan {
    NextPlan {
        data_limit,
        expire,
        ..NextPlan::default()
    }
}

#[test]
fn new_accounts_are_active_and_unlimited() {
    let a = Account::new(T0);
    assert_eq!(a.status, UserStatus::Active);
    assert_eq!((a.used_traffic, a.lifetime_used_traffic), (0, 0));
    assert_eq!((a.data_limit, a.expire), (None, None));
    assert_eq!(a.last_status_change, Some(T0));
    assert_eq!(a.usage_period_start(), T0);
    assert!(a.is_served());
}

#[test]
fn reset_periods_are_marzbans_fixed_day_counts() {
    assert_eq!(ResetStrategy::NoReset.period_seconds(), None);
    assert_eq!(ResetStrategy::Day.period_seconds(), Some(DAY));
    assert_eq!(ResetStrategy::Week.period_seconds(), Some(7 * DAY));
    assert_eq!(ResetStrategy::Month.period_seconds(), Some(30 * DAY));
    assert_eq!(ResetStrategy::Year.period_seconds(), Some(365 * DAY));
}

#[test]
fn zero_limits_and_expiries_mean_none() {
    let a = user(1 << 50, Some(0), Some(0));
    assert_eq!(a.effective_limit(), None);
    assert_eq!(a.effective_expire(), None);
    assert!(!a.limit_reached());
    assert!(!a.expired_at(i64::MAX));
    let b = user(10, Some(-5), Some(-5));
    assert_eq!((b.effective_limit(), b.effective_expire()), (None, None));
}

#[test]
fn events_map_to_marzban_webhook_actions() {
    let cases = [
        (
            Event::Activated {
                cause: Activation::FirstTraffic,
                expire: None,
            },
            Some("user_enabled"),
        ),
        (Event::Limited, Some("user_limited")),
        (Event::Expired, Some("user_expired")),
        (
            Event::Reactivated {
                from: UserStatus::Limited,
            },
            Some("user_enabled"),
        ),
        (
            Event::NextPlanApplied { used_traffic: 1 },
            Some("data_reset_by_next"),
        ),
        (
            Event::UsageReset {
                used_traffic: 1,
                periodic: true,
            },
            Some("data_usage_reset"),
        ),
        (Event::Enabled, Some("user_enabled")),
        (Event::Disabled, Some("user_disabled")),
        (Event::PutOnHold, None),
    ];
    for (event, action) in cases {
        assert_eq!(event.webhook_action(), action, "{event:?}");
    }
}
