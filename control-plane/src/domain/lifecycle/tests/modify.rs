use super::*;
use UserStatus::*;

const NOW: i64 = T0 + 10 * DAY;

fn status(s: UserStatus) -> Modification {
    Modification {
        status: Some(s),
        ..Modification::default()
    }
}

/// A user in `status`, consistent with it at NOW.
fn in_status(status: UserStatus) -> Account {
    match status {
        Active => user(50, Some(100), Some(NOW + DAY)),
        Limited => with_status(user(100, Some(100), Some(NOW + DAY)), Limited),
        Expired => with_status(user(50, Some(100), Some(NOW - DAY)), Expired),
        Disabled => with_status(user(50, Some(100), Some(NOW + DAY)), Disabled),
        OnHold => on_hold(3 * DAY, None),
    }
}

fn err(field: &'static str, message: &str) -> Result<Vec<Event>, FieldError> {
    Err(FieldError::new(field, message))
}

#[test]
fn every_requested_status_from_every_status() {
    let to_hold = Modification {
        on_hold_expire_duration: Some(Some(3 * DAY)),
        ..status(OnHold)
    };
    let cases: [(UserStatus, Modification, UserStatus, Vec<Event>); 15] = [
        (Active, status(Active), Active, vec![]),
        (Active, status(Disabled), Disabled, vec![Event::Disabled]),
        (Active, to_hold.clone(), OnHold, vec![Event::PutOnHold]),
        (Disabled, status(Active), Active, vec![Event::Enabled]),
        (Disabled, status(Disabled), Disabled, vec![]),
        (
            Disabled,
            to_hold.clone(),
            OnHold,
            vec![Event::Enabled, Event::PutOnHold],
        ),
        // Still over quota: asking for active changes nothing.
        (Limited, status(Active), Limited, vec![]),
        (Limited, status(Disabled), Disabled, vec![Event::Disabled]),
        (Limited, to_hold.clone(), OnHold, vec![Event::PutOnHold]),
        (Expired, status(Active), Expired, vec![]),
        (Expired, status(Disabled), Disabled, vec![Event::Disabled]),
        (Expired, to_hold.clone(), OnHold, vec![Event::PutOnHold]),
        (
            OnHold,
            status(Active),
            Active,
            vec![Event::Activated {
                cause: Activation::Admin,
                expire: Some(NOW + 3 * DAY),
            }],
        ),
        (OnHold, status(Disabled), Disabled, vec![Event::Disabled]),
        (OnHold, to_hold, OnHold, vec![]),
    ];
    for (from, m, to, events) in cases {
        let mut a = in_status(from);
        assert_eq!(a.modify(&m, NOW), Ok(events), "{from:?} -> {:?}", m.status);
        assert_eq!(a.status, to, "{from:?} -> {:?}", m.status);
        let changed_at = if from == to { Some(T0) } else { Some(NOW) };
        assert_eq!(
            a.last_status_change, changed_at,
            "{from:?} -> {:?}",
            m.status
        );
        if to == OnHold {
            assert_eq!(a.expire, None, "on hold has no expiry yet");
        }
    }
}

#[test]
fn limited_and_expired_cannot_be_requested() {
    for from in [Active, Limited, Expired, Disabled, OnHold] {
        for requested in [Limited, Expired] {
            let mut a = in_status(from);
            let before = a.clone();
            assert_eq!(
                a.modify(&status(requested), NOW),
                err("status", "status must be one of active, disabled, on_hold")
            );
            assert_eq!(a, before);
        }
    }
}

#[test]
fn raising_the_limit_readmits_a_limited_user() {
    let mut a = in_status(Limited);
    let m = Modification {
        data_limit: Some(Some(101)),
        ..Modification::default()
    };
    assert_eq!(
        a.modify(&m, NOW),
        Ok(vec![Event::Reactivated { from: Limited }])
    );
    assert_eq!((a.status, a.data_limit), (Active, Some(101)));
}

#[test]
fn removing_the_limit_readmits_a_limited_user() {
    for limit in [None, Some(0)] {
        let mut a = in_status(Limited);
        let m = Modification {
            data_limit: Some(limit),
            ..Modification::default()
        };
        assert_eq!(
            a.modify(&m, NOW),
            Ok(vec![Event::Reactivated { from: Limited }])
        );
        assert_eq!(a.data_limit, None);
    }
}

#[test]
fn raising_the_limit_of_an_expired_limited_user_leaves_it_expired() {
    let mut a = with_status(user(100, Some(100), Some(NOW - 1)), Limited);
    let m = Modification {
        data_limit: Some(Some(1000)),
        ..Modification::default()
    };
    assert_eq!(a.modify(&m, NOW), Ok(vec![Event::Expired]));
    assert_eq!(a.status, Expired);
}

#[test]
fn setting_the_limit_at_over_and_under_usage() {
    for (limit, expected, events) in [
        (49, Limited, vec![Event::Limited]),
        (50, Limited, vec![Event::Limited]),
        (51, Active, vec![]),
    ] {
        let mut a = in_status(Active);
        let m = Modification {
            data_limit: Some(Some(limit)),
            ..Modification::default()
        };
        assert_eq!(a.modify(&m, NOW), Ok(events), "limit {limit}");
        assert_eq!(a.status, expected, "limit {limit}");
    }
}

#[test]
fn extending_the_expiry_readmits_an_expired_user() {
    for expire in [Some(NOW + 1), None, Some(0)] {
        let mut a = in_status(Expired);
        let m = Modification {
            expire: Some(expire),
            ..Modification::default()
        };
        assert_eq!(
            a.modify(&m, NOW),
            Ok(vec![Event::Reactivated { from: Expired }])
        );
        assert_eq!(a.status, Active);
        assert_eq!(a.expire, expire.filter(|e| *e > 0));
    }
}

#[test]
fn extending_the_expiry_of_an_over_quota_user_limits_it() {
    let mut a = with_status(user(100, Some(100), Some(NOW - 1)), Expired);
    let m = Modification {
        expire: Some(Some(NOW + DAY)),
        ..Modification::default()
    };
    assert_eq!(a.modify(&m, NOW), Ok(vec![Event::Limited]));
    assert_eq!(a.status, Limited);
}

#[test]
fn an_expiry_at_or_before_now_expires() {
    for (expire, expected, events) in [
        (NOW - 1, Expired, vec![Event::Expired]),
        (NOW, Expired, vec![Event::Expired]),
        (NOW + 1, Active, vec![]),
    ] {
        let mut a = in_status(Active);
        let m = Modification {
            expire: Some(Some(expire)),
            ..Modification::default()
        };
        assert_eq!(a.modify(&m, NOW), Ok(events), "expire {expire}");
        assert_eq!(a.status, expected);
    }
}

#[test]
fn lowering_the_limit_fires_a_waiting_plan() {
    let mut a = in_status(Active);
    a.next_plan = Some(plan(Some(1000), None));
    let m = Modification {
        data_limit: Some(Some(10)),
        ..Modification::default()
    };
    assert_eq!(
        a.modify(&m, NOW),
        Ok(vec![Event::NextPlanApplied { used_traffic: 50 }])
    );
    assert_eq!(
        (a.status, a.data_limit, a.used_traffic),
        (Active, Some(1000), 0)
    );
}

#[test]
fn disabled_stays_disabled_whatever_the_limits() {
    let changes = [
        Modification {
            data_limit: Some(Some(1)),
            ..Modification::default()
        },
        Modification {
            data_limit: Some(None),
            ..Modification::default()
        },
        Modification {
            expire: Some(Some(NOW - DAY)),
            ..Modification::default()
        },
        Modification {
            expire: Some(Some(NOW + 100 * DAY)),
            ..Modification::default()
        },
    ];
    for m in changes {
        let mut a = in_status(Disabled);
        assert_eq!(a.modify(&m, NOW), Ok(vec![]));
        assert_eq!(a.status, Disabled);
    }
    let mut a = in_status(Disabled);
    let m = Modification {
        data_limit: Some(Some(7)),
        expire: Some(Some(NOW + 5)),
        ..Modification::default()
    };
    a.modify(&m, NOW).unwrap();
    assert_eq!((a.data_limit, a.expire), (Some(7), Some(NOW + 5)));
}

#[test]
fn enabling_and_readmitting_in_one_request() {
    let mut a = with_status(user(100, Some(100), None), Disabled);
    let m = Modification {
        data_limit: Some(Some(200)),
        ..status(Active)
    };
    assert_eq!(a.modify(&m, NOW), Ok(vec![Event::Enabled]));
    assert_eq!(a.status, Active);

    let mut b = with_status(user(100, Some(100), None), Disabled);
    assert_eq!(
        b.modify(&status(Active), NOW),
        Ok(vec![Event::Enabled, Event::Limited])
    );
    assert_eq!(b.status, Limited);
}

#[test]
fn on_hold_needs_a_duration() {
    let mut a = in_status(Active);
    let before = a.clone();
    let needs = "User cannot be on hold without a valid on_hold_expire_duration.";
    assert_eq!(a.modify(&status(OnHold), NOW), err("status", needs));
    let zero = Modification {
        on_hold_expire_duration: Some(None),
        ..status(OnHold)
    };
    assert_eq!(a.modify(&zero, NOW), err("status", needs));
    assert_eq!(a, before);
    // A stored duration is enough.
    a.on_hold_expire_duration = Some(DAY);
    assert_eq!(a.modify(&status(OnHold), NOW), Ok(vec![Event::PutOnHold]));
    assert_eq!((a.status, a.on_hold_expire_duration), (OnHold, Some(DAY)));
}

#[test]
fn on_hold_forbids_an_expiry() {
    let mut a = in_status(Active);
    let m = Modification {
        expire: Some(Some(NOW + DAY)),
        on_hold_expire_duration: Some(Some(DAY)),
        ..status(OnHold)
    };
    assert_eq!(
        a.modify(&m, NOW),
        err("status", "User cannot be on hold with specified expire.")
    );
    // expire 0/null is "no expiry", which on_hold allows.
    let ok = Modification {
        expire: Some(None),
        ..m
    };
    assert_eq!(a.modify(&ok, NOW), Ok(vec![Event::PutOnHold]));
    assert_eq!(a.expire, None);
}

#[test]
fn an_on_hold_user_keeps_its_rules_without_a_status_change() {
    let mut a = in_status(OnHold);
    let before = a.clone();
    let expire = Modification {
        expire: Some(Some(NOW + DAY)),
        ..Modification::default()
    };
    let e = a.modify(&expire, NOW).unwrap_err();
    assert_eq!(e.field, "expire");
    let no_duration = Modification {
        on_hold_expire_duration: Some(None),
        ..Modification::default()
    };
    assert_eq!(
        a.modify(&no_duration, NOW),
        err(
            "on_hold_expire_duration",
            "an on_hold user needs an on_hold_expire_duration greater than 0"
        )
    );
    assert_eq!(a, before);
    let longer = Modification {
        on_hold_expire_duration: Some(Some(9 * DAY)),
        data_limit: Some(Some(5)),
        ..Modification::default()
    };
    assert_eq!(a.modify(&longer, NOW), Ok(vec![]));
    assert_eq!(
        (a.status, a.on_hold_expire_duration),
        (OnHold, Some(9 * DAY))
    );
}

#[test]
fn an_on_hold_user_without_a_stored_duration_can_still_be_edited() {
    let mut a = with_status(user(0, None, None), OnHold);
    let m = Modification {
        data_limit: Some(Some(5)),
        ..Modification::default()
    };
    assert_eq!(a.modify(&m, NOW), Ok(vec![]));
    assert_eq!((a.status, a.data_limit), (OnHold, Some(5)));
}

#[test]
fn starting_an_on_hold_user_with_an_explicit_expiry() {
    let mut a = in_status(OnHold);
    let m = Modification {
        expire: Some(Some(NOW + 60)),
        ..status(Active)
    };
    assert_eq!(
        a.modify(&m, NOW),
        Ok(vec![Event::Activated {
            cause: Activation::Admin,
            expire: Some(NOW + 60),
        }])
    );
    assert_eq!((a.status, a.expire), (Active, Some(NOW + 60)));
    assert_eq!(a.on_hold_expire_duration, None);
}

#[test]
fn a_past_hold_timeout_starts_the_user() {
    let mut a = in_status(OnHold);
    let m = Modification {
        on_hold_timeout: Some(Some(NOW - 1)),
        ..Modification::default()
    };
    assert_eq!(
        a.modify(&m, NOW),
        Ok(vec![Event::Activated {
            cause: Activation::Timeout,
            expire: Some(NOW + 3 * DAY),
        }])
    );
}

#[test]
fn negative_numbers_are_rejected_and_change_nothing() {
    let cases = [
        (
            Modification {
                data_limit: Some(Some(-1)),
                ..Modification::default()
            },
            "data_limit",
        ),
        (
            Modification {
                expire: Some(Some(-1)),
                ..Modification::default()
            },
            "expire",
        ),
        (
            Modification {
                on_hold_expire_duration: Some(Some(-1)),
                ..Modification::default()
            },
            "on_hold_expire_duration",
        ),
        (
            Modification {
                next_plan: Some(Some(plan(Some(-1), None))),
                data_limit: Some(Some(5)),
                ..Modification::default()
            },
            "next_plan",
        ),
    ];
    for (m, field) in cases {
        let mut a = in_status(Active);
        let before = a.clone();
        assert_eq!(a.modify(&m, NOW).unwrap_err().field, field);
        assert_eq!(a, before);
    }
}

#[test]
fn changing_the_strategy_starts_a_new_period() {
    let mut a = in_status(Active);
    let m = Modification {
        data_limit_reset_strategy: Some(ResetStrategy::Month),
        ..Modification::default()
    };
    // Created 10 days ago: counting from creation would not be due yet, but
    // the period still restarts now.
    assert_eq!(a.modify(&m, NOW), Ok(vec![]));
    assert_eq!(a.last_usage_reset_at, Some(NOW));
    assert_eq!(a.next_reset_at(), Some(NOW + 30 * DAY));
    assert_eq!(a.used_traffic, 50);
    // The same strategy again keeps the period.
    a.modify(&m, NOW + 5).unwrap();
    assert_eq!(a.last_usage_reset_at, Some(NOW));
}

#[test]
fn switching_an_old_user_to_daily_does_not_wipe_its_usage() {
    let mut a = in_status(Active);
    let m = Modification {
        data_limit_reset_strategy: Some(ResetStrategy::Day),
        ..Modification::default()
    };
    assert_eq!(a.modify(&m, NOW), Ok(vec![]));
    assert_eq!(a.used_traffic, 50);
}

#[test]
fn the_next_plan_is_kept_unless_replaced_or_removed() {
    let mut a = in_status(Active);
    a.next_plan = Some(plan(Some(1), None));
    a.modify(&Modification::default(), NOW).unwrap();
    assert_eq!(a.next_plan, Some(plan(Some(1), None)));
    let replace = Modification {
        next_plan: Some(Some(plan(Some(2), None))),
        ..Modification::default()
    };
    a.modify(&replace, NOW).unwrap();
    assert_eq!(a.next_plan, Some(plan(Some(2), None)));
    let remove = Modification {
        next_plan: Some(None),
        ..Modification::default()
    };
    a.modify(&remove, NOW).unwrap();
    assert_eq!(a.next_plan, None);
}

#[test]
fn auto_delete_days_and_hold_timeout_are_set_and_cleared() {
    let mut a = in_status(Active);
    let set = Modification {
        auto_delete_in_days: Some(Some(-1)),
        on_hold_timeout: Some(Some(NOW + 1)),
        ..Modification::default()
    };
    a.modify(&set, NOW).unwrap();
    assert_eq!(
        (a.auto_delete_in_days, a.on_hold_timeout),
        (Some(-1), Some(NOW + 1))
    );
    let clear = Modification {
        auto_delete_in_days: Some(None),
        on_hold_timeout: Some(None),
        ..Modification::default()
    };
    a.modify(&clear, NOW).unwrap();
    assert_eq!((a.auto_delete_in_days, a.on_hold_timeout), (None, None));
}

#[test]
fn zero_means_none_reads_marzban_modify_numbers() {
    assert_eq!(zero_means_none(None), None);
    assert_eq!(zero_means_none(Some(0)), Some(None));
    assert_eq!(zero_means_none(Some(5)), Some(Some(5)));
}

#[test]
fn field_errors_display_their_field() {
    assert_eq!(
        FieldError::new("expire", "must be 0 or greater").to_string(),
        "expire: must be 0 or greater"
    );
}

#[test]
fn creating_a_user() {
    let (a, events) = Account::create(
        NewAccount {
            data_limit: Some(0),
            expire: Some(NOW + DAY),
            data_limit_reset_strategy: ResetStrategy::Week,
            next_plan: Some(plan(Some(1), None)),
            auto_delete_in_days: Some(3),
            ..NewAccount::default()
        },
        NOW,
    )
    .unwrap();
    assert_eq!(events, vec![]);
    assert_eq!(
        a,
        Account {
            expire: Some(NOW + DAY),
            data_limit_reset_strategy: ResetStrategy::Week,
            next_plan: Some(plan(Some(1), None)),
            auto_delete_in_days: Some(3),
            ..Account::new(NOW)
        }
    );
}

#[test]
fn creating_an_on_hold_user() {
    let new = NewAccount {
        status: Some(OnHold),
        on_hold_expire_duration: Some(DAY),
        on_hold_timeout: Some(NOW + 7 * DAY),
        expire: Some(0),
        ..NewAccount::default()
    };
    let (a, events) = Account::create(new.clone(), NOW).unwrap();
    assert_eq!(events, vec![]);
    assert_eq!((a.status, a.expire), (OnHold, None));
    assert_eq!(a.next_deadline(NOW), Some(NOW + 7 * DAY));

    let no_duration = NewAccount {
        on_hold_expire_duration: Some(0),
        ..new.clone()
    };
    assert_eq!(
        Account::create(no_duration, NOW).unwrap_err(),
        FieldError::new(
            "status",
            "User cannot be on hold without a valid on_hold_expire_duration."
        )
    );
    let with_expire = NewAccount {
        expire: Some(NOW + DAY),
        ..new
    };
    assert_eq!(
        Account::create(with_expire, NOW).unwrap_err(),
        FieldError::new("status", "User cannot be on hold with specified expire.")
    );
}

#[test]
fn creating_with_other_statuses_or_negative_numbers_fails() {
    for status in [Limited, Expired, Disabled] {
        let new = NewAccount {
            status: Some(status),
            ..NewAccount::default()
        };
        assert_eq!(
            Account::create(new, NOW).unwrap_err(),
            FieldError::new("status", "status must be one of active, on_hold")
        );
    }
    let negative = NewAccount {
        data_limit: Some(-5),
        ..NewAccount::default()
    };
    assert_eq!(
        Account::create(negative, NOW).unwrap_err().field,
        "data_limit"
    );
}

#[test]
fn creating_an_already_expired_user() {
    let (a, events) = Account::create(
        NewAccount {
            expire: Some(NOW - 1),
            ..NewAccount::default()
        },
        NOW,
    )
    .unwrap();
    assert_eq!(events, vec![Event::Expired]);
    assert_eq!(a.status, Expired);
}
