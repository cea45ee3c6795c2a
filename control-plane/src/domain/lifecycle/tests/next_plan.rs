use super::*;
use UserStatus::*;

const GB: i64 = 1 << 30;

#[test]
fn the_trigger_truth_table() {
    let either = NextPlan::default();
    let both = NextPlan {
        fire_on_either: false,
        ..NextPlan::default()
    };
    for (limited, expired, on_either, on_both) in [
        (false, false, false, false),
        (true, false, true, false),
        (false, true, true, false),
        (true, true, true, true),
    ] {
        assert_eq!(either.triggers(limited, expired), on_either);
        assert_eq!(both.triggers(limited, expired), on_both);
    }
}

#[test]
fn reaching_the_limit_fires_the_plan_instead_of_limiting() {
    let now = T0 + 10;
    let mut a = user(60, Some(100), Some(T0 + DAY));
    a.next_plan = Some(plan(Some(200), Some(30 * DAY)));
    let events = a.record_usage(40, now);
    assert_eq!(events, vec![Event::NextPlanApplied { used_traffic: 100 }]);
    assert_eq!(a.status, Active);
    assert_eq!((a.used_traffic, a.lifetime_used_traffic), (0, 100));
    assert_eq!(a.data_limit, Some(200));
    assert_eq!(a.expire, Some(now + 30 * DAY));
    assert_eq!(a.next_plan, None);
    assert_eq!(a.last_usage_reset_at, Some(now));
    assert_eq!(a.last_status_change, Some(T0));
    // Consumed: the next time the user is limited.
    assert_eq!(a.record_usage(200, now + 1), vec![Event::Limited]);
}

#[test]
fn reaching_the_expiry_fires_the_plan() {
    let mut a = user(30, Some(100), Some(T0 + 100));
    a.next_plan = Some(plan(Some(500), None));
    assert_eq!(a.evaluate_at(T0 + 99), vec![]);
    let events = a.evaluate_at(T0 + 100);
    assert_eq!(events, vec![Event::NextPlanApplied { used_traffic: 30 }]);
    assert_eq!(a.status, Active);
    // Like Marzban, the plan replaces both: no expire means never.
    assert_eq!((a.data_limit, a.expire), (Some(500), None));
}

#[test]
fn a_both_conditions_plan_waits_for_the_expiry_of_a_limited_user() {
    let mut a = user(0, Some(100), Some(T0 + DAY));
    a.next_plan = Some(NextPlan {
        fire_on_either: false,
        ..plan(Some(GB), Some(7 * DAY))
    });
    assert_eq!(a.record_usage(100, T0 + 10), vec![Event::Limited]);
    assert!(a.next_plan.is_some());
    assert_eq!(a.next_deadline(T0 + 10), Some(T0 + DAY));
    assert_eq!(a.evaluate_at(T0 + DAY - 1), vec![]);
    let events = a.evaluate_at(T0 + DAY);
    assert_eq!(
        events,
        vec![
            Event::NextPlanApplied { used_traffic: 100 },
            Event::Reactivated { from: Limited },
        ]
    );
    assert_eq!(a.status, Active);
    assert_eq!(
        (a.data_limit, a.expire),
        (Some(GB), Some(T0 + DAY + 7 * DAY))
    );
}

#[test]
fn a_both_conditions_plan_does_not_fire_on_expiry_alone() {
    let mut a = user(10, Some(100), Some(T0 + 50));
    a.next_plan = Some(NextPlan {
        fire_on_either: false,
        ..plan(Some(GB), None)
    });
    assert_eq!(a.evaluate_at(T0 + 50), vec![Event::Expired]);
    assert_eq!(a.status, Expired);
    assert!(a.next_plan.is_some());
    // An expired user gets no traffic, so only an admin can change it now.
    assert_eq!(a.next_deadline(T0 + 50), None);
}

#[test]
fn remaining_traffic_is_added_only_when_asked() {
    for (add, expected) in [(true, 500 + 600), (false, 500)] {
        let mut a = user(400, Some(1000), Some(T0 + 10));
        a.next_plan = Some(NextPlan {
            add_remaining_traffic: add,
            ..plan(Some(500), None)
        });
        assert_eq!(
            a.evaluate_at(T0 + 10),
            vec![Event::NextPlanApplied { used_traffic: 400 }]
        );
        assert_eq!(a.data_limit, Some(expected), "add_remaining_traffic={add}");
    }
}

#[test]
fn remaining_traffic_edge_cases() {
    let add = |data_limit| NextPlan {
        add_remaining_traffic: true,
        ..plan(data_limit, None)
    };
    // Unlimited before: nothing to carry over.
    assert_eq!(add(Some(500)).data_limit_after(None, 400), Some(500));
    // Over-used: the rest is zero, not negative.
    assert_eq!(add(Some(500)).data_limit_after(Some(100), 150), Some(500));
    // Unlimited after stays unlimited.
    assert_eq!(add(None).data_limit_after(Some(1000), 1), None);
    assert_eq!(add(Some(0)).data_limit_after(Some(1000), 1), None);
    // Saturates.
    assert_eq!(
        add(Some(i64::MAX)).data_limit_after(Some(i64::MAX), 0),
        Some(i64::MAX)
    );
    assert_eq!(
        add(Some(10)).data_limit_after(Some(i64::MAX), i64::MAX),
        Some(10)
    );
}

#[test]
fn plan_expire_is_a_duration_below_the_cutoff_and_a_time_above() {
    let now = T0 + 5;
    let at = |expire| plan(None, expire).expire_at(now);
    assert_eq!(at(None), None);
    assert_eq!(at(Some(0)), None);
    assert_eq!(at(Some(-3)), None);
    assert_eq!(at(Some(30 * DAY)), Some(now + 30 * DAY));
    assert_eq!(
        at(Some(RELATIVE_EXPIRE_BELOW - 1)),
        Some(now + RELATIVE_EXPIRE_BELOW - 1)
    );
    assert_eq!(at(Some(RELATIVE_EXPIRE_BELOW)), Some(RELATIVE_EXPIRE_BELOW));
    assert_eq!(at(Some(T0 + 90 * DAY)), Some(T0 + 90 * DAY));
    assert_eq!(
        plan(None, Some(RELATIVE_EXPIRE_BELOW - 1)).expire_at(i64::MAX - 1),
        Some(i64::MAX)
    );
}

#[test]
fn a_plan_ending_in_the_past_expires_the_user_at_once() {
    let mut a = user(100, Some(100), None);
    a.next_plan = Some(plan(Some(GB), Some(RELATIVE_EXPIRE_BELOW)));
    let events = a.evaluate_at(T0);
    assert_eq!(
        events,
        vec![Event::NextPlanApplied { used_traffic: 100 }, Event::Expired]
    );
    assert_eq!(a.status, Expired);
}

#[test]
fn a_plan_given_to_a_limited_user_fires_at_once() {
    let mut a = with_status(user(100, Some(100), None), Limited);
    let m = Modification {
        next_plan: Some(Some(plan(Some(GB), None))),
        ..Modification::default()
    };
    let events = a.modify(&m, T0 + 9).unwrap();
    assert_eq!(
        events,
        vec![
            Event::NextPlanApplied { used_traffic: 100 },
            Event::Reactivated { from: Limited },
        ]
    );
    assert_eq!(
        (a.status, a.data_limit, a.used_traffic),
        (Active, Some(GB), 0)
    );
}

#[test]
fn disabled_and_on_hold_users_never_fire_plans() {
    let mut disabled = with_status(user(100, Some(100), Some(T0)), Disabled);
    disabled.next_plan = Some(plan(Some(GB), None));
    assert_eq!(disabled.evaluate_at(T0 + DAY), vec![]);
    assert!(disabled.next_plan.is_some());

    let mut held = on_hold(DAY, None);
    held.data_limit = Some(1);
    held.used_traffic = 5;
    held.next_plan = Some(plan(Some(GB), None));
    assert_eq!(held.evaluate_at(T0 + DAY), vec![]);
    assert!(held.next_plan.is_some());
}

#[test]
fn active_next_without_a_plan_is_an_error() {
    let mut a = user(5, Some(100), None);
    let before = a.clone();
    assert_eq!(a.activate_next_plan(T0), Err(NoNextPlan));
    assert_eq!(a, before);
    assert_eq!(NoNextPlan.to_string(), "User doesn't have next plan");
}

#[test]
fn active_next_applies_the_plan_now() {
    let now = T0 + 50;
    let mut a = user(40, Some(100), Some(T0 + DAY));
    a.next_plan = Some(plan(Some(300), Some(DAY)));
    assert_eq!(
        a.activate_next_plan(now),
        Ok(vec![Event::NextPlanApplied { used_traffic: 40 }])
    );
    assert_eq!(
        (a.status, a.used_traffic, a.lifetime_used_traffic),
        (Active, 0, 40)
    );
    assert_eq!((a.data_limit, a.expire), (Some(300), Some(now + DAY)));
    assert_eq!(a.next_plan, None);
}

#[test]
fn active_next_readmits_limited_and_expired_users() {
    for from in [Limited, Expired] {
        let mut a = with_status(user(100, Some(100), Some(T0 - 1)), from);
        a.next_plan = Some(plan(Some(GB), None));
        assert_eq!(
            a.activate_next_plan(T0),
            Ok(vec![
                Event::NextPlanApplied { used_traffic: 100 },
                Event::Reactivated { from },
            ])
        );
        assert_eq!(a.status, Active);
    }
}

#[test]
fn active_next_starts_an_on_hold_user_with_the_plans_expiry() {
    let mut a = on_hold(DAY, Some(T0 + 5 * DAY));
    a.next_plan = Some(plan(Some(GB), Some(30 * DAY)));
    let events = a.activate_next_plan(T0 + 1).unwrap();
    assert_eq!(
        events,
        vec![
            Event::NextPlanApplied { used_traffic: 0 },
            Event::Activated {
                cause: Activation::Admin,
                expire: Some(T0 + 1 + 30 * DAY),
            },
        ]
    );
    assert_eq!(a.status, Active);
    assert_eq!((a.on_hold_expire_duration, a.on_hold_timeout), (None, None));
}

#[test]
fn active_next_keeps_a_disabled_user_disabled() {
    let mut a = with_status(user(100, Some(100), None), Disabled);
    a.next_plan = Some(plan(Some(GB), None));
    assert_eq!(
        a.activate_next_plan(T0),
        Ok(vec![Event::NextPlanApplied { used_traffic: 100 }])
    );
    assert_eq!(
        (a.status, a.data_limit, a.used_traffic),
        (Disabled, Some(GB), 0)
    );
}

#[test]
fn plans_validate_their_numbers() {
    assert_eq!(plan(Some(0), Some(0)).validate(), Ok(()));
    assert_eq!(
        plan(Some(-1), None).validate(),
        Err(FieldError::new(
            "next_plan",
            "data_limit must be 0 or greater"
        ))
    );
    assert_eq!(
        plan(None, Some(-1)).validate(),
        Err(FieldError::new("next_plan", "expire must be 0 or greater"))
    );
}

#[test]
fn template_plans_count_their_duration_from_firing() {
    let p = NextPlan::from_template(3, Some(GB), Some(30 * DAY), true, false);
    assert_eq!(p.user_template_id, Some(3));
    assert_eq!(p.expire_at(T0), Some(T0 + 30 * DAY));
    assert!(p.add_remaining_traffic && !p.fire_on_either);
    // Even absurd durations stay durations.
    let long = NextPlan::from_template(3, None, Some(i64::MAX), false, true);
    assert_eq!(long.expire_at(T0), Some(T0 + RELATIVE_EXPIRE_BELOW - 1));
}

#[test]
fn next_plans_read_marzban_json() {
    let p: NextPlan =
        serde_json::from_str(r#"{"data_limit": 1073741824, "expire": 2592000}"#).unwrap();
    assert_eq!(
        p,
        NextPlan {
            user_template_id: None,
            data_limit: Some(GB),
            expire: Some(2_592_000),
            add_remaining_traffic: false,
            fire_on_either: true,
        }
    );
    let nulls: NextPlan = serde_json::from_str(
        r#"{"data_limit": null, "expire": null, "add_remaining_traffic": null, "fire_on_either": null}"#,
    )
    .unwrap();
    assert_eq!(nulls, NextPlan::default());
    let empty: NextPlan = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, NextPlan::default());
    let full: NextPlan = serde_json::from_str(
        r#"{"user_template_id": 3, "add_remaining_traffic": true, "fire_on_either": false}"#,
    )
    .unwrap();
    assert_eq!(full.user_template_id, Some(3));
    assert!(full.add_remaining_traffic && !full.fire_on_either);
    assert!(serde_json::from_str::<NextPlan>(r#"{"fire_on_either": "yes"}"#).is_err());
}

#[test]
fn next_plans_write_marzban_json() {
    assert_eq!(
        serde_json::to_string(&NextPlan::default()).unwrap(),
        r#"{"data_limit":null,"expire":null,"add_remaining_traffic":false,"fire_on_either":true}"#
    );
    let p = NextPlan {
        user_template_id: Some(7),
        ..plan(Some(5), Some(6))
    };
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        r#"{"user_template_id":7,"data_limit":5,"expire":6,"add_remaining_traffic":false,"fire_on_either":true}"#
    );
}
