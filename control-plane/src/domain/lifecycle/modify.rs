//! User creation and modification by an admin: validation, then the same
//! rules as traffic and time.

use super::{Account, Activation, Event, NextPlan};
use crate::domain::user::{ResetStrategy, UserStatus};

/// A rejected field: the API answers 422 `{"detail": {field: message}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

const ON_HOLD_NEEDS_DURATION: &str =
    "User cannot be on hold without a valid on_hold_expire_duration.";
const ON_HOLD_FORBIDS_EXPIRE: &str = "User cannot be on hold with specified expire.";

/// Marzban's modify convention for numbers where 0 means none: absent or
/// `null` leaves the field unchanged, 0 clears it, anything else sets it.
pub fn zero_means_none(value: Option<i64>) -> Option<Option<i64>> {
    value.map(|v| (v != 0).then_some(v))
}

/// The lifecycle fields of `POST /user`. Numbers follow Marzban: `None` or
/// 0 = none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewAccount {
    /// active (default) or on_hold.
    pub status: Option<UserStatus>,
    pub data_limit: Option<i64>,
    pub expire: Option<i64>,
    pub data_limit_reset_strategy: ResetStrategy,
    pub on_hold_expire_duration: Option<i64>,
    pub on_hold_timeout: Option<i64>,
    pub next_plan: Option<NextPlan>,
    pub auto_delete_in_days: Option<i64>,
}

/// The lifecycle fields of `PUT /user/{username}`. For each field, `None`
/// leaves it unchanged; `Some(None)` clears it (unlimited, never expires, no
/// next plan...). Build numeric fields from Marzban JSON with
/// [`zero_means_none`].
///
/// Decision: Marzban 0.8.4 deletes the next plan whenever a modify request
/// leaves `next_plan` out, which silently drops renewals when a script only
/// changes, say, the note. Here leaving it out keeps it, and an explicit
/// `"next_plan": null` removes it (the API maps that to `Some(None)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modification {
    /// active, disabled or on_hold.
    pub status: Option<UserStatus>,
    pub data_limit: Option<Option<i64>>,
    pub expire: Option<Option<i64>>,
    pub data_limit_reset_strategy: Option<ResetStrategy>,
    pub on_hold_expire_duration: Option<Option<i64>>,
    pub on_hold_timeout: Option<Option<i64>>,
    pub next_plan: Option<Option<NextPlan>>,
    pub auto_delete_in_days: Option<Option<i64>>,
}

fn non_negative(field: &'static str, value: Option<i64>) -> Result<(), FieldError> {
    match value {
        Some(v) if v < 0 => Err(FieldError::new(field, "must be 0 or greater")),
        _ => Ok(()),
    }
}

fn positive(value: Option<i64>) -> Option<i64> {
    value.filter(|v| *v > 0)
}

impl Account {
    /// Validates and creates a user at `now`. Status active or on_hold only;
    /// on_hold needs `on_hold_expire_duration > 0` and no expire (Marzban's
    /// messages, on field `status`). The new user is settled at once: an
    /// expiry in the past makes it expired (or fires its next plan).
    pub fn create(new: NewAccount, now: i64) -> Result<(Self, Vec<Event>), FieldError> {
        let status = new.status.unwrap_or(UserStatus::Active);
        if !status.allowed_on_create() {
            return Err(FieldError::new(
                "status",
                "status must be one of active, on_hold",
            ));
        }
        non_negative("data_limit", new.data_limit)?;
        non_negative("expire", new.expire)?;
        non_negative("on_hold_expire_duration", new.on_hold_expire_duration)?;
        if let Some(plan) = &new.next_plan {
            plan.validate()?;
        }
        if status == UserStatus::OnHold {
            if positive(new.on_hold_expire_duration).is_none() {
                return Err(FieldError::new("status", ON_HOLD_NEEDS_DURATION));
            }
            if positive(new.expire).is_some() {
                return Err(FieldError::new("status", ON_HOLD_FORBIDS_EXPIRE));
            }
        }
        let mut account = Account {
            status,
            data_limit: positive(new.data_limit),
            expire: positive(new.expire),
            data_limit_reset_strategy: new.data_limit_reset_strategy,
            on_hold_expire_duration: positive(new.on_hold_expire_duration),
            on_hold_timeout: new.on_hold_timeout,
            next_plan: new.next_plan,
            auto_delete_in_days: new.auto_delete_in_days,
            ..Account::new(now)
        };
        let events = account.evaluate_at(now);
        Ok((account, events))
    }

    /// Validates and applies an admin's modification at `now`; on error the
    /// account is unchanged.
    ///
    /// - A requested status may be active, disabled or on_hold. `active` lifts
    ///   `disabled`, starts an on-hold user (expire = the request's, else now +
    ///   hold duration), and otherwise lets the rules decide: asking an
    ///   over-quota user to be active leaves it limited, as Marzban ends up
    ///   doing one review later.
    /// - `on_hold` needs a hold duration > 0 (in the request or stored) and
    ///   forbids an expire in the same request; it clears the stored expire,
    ///   since the clock starts at activation. An on-hold user cannot be given
    ///   an expire without leaving on_hold.
    /// - New limits and expiries re-evaluate the status: raising the limit
    ///   above usage re-admits a limited user, extending the expiry re-admits
    ///   an expired one, lowering either below usage/now limits or expires
    ///   it (or fires the next plan, whose trigger now holds). `disabled`
    ///   stays disabled whatever the limits.
    /// - Changing the reset strategy starts a new usage period now, so
    ///   switching an old user to monthly does not wipe its usage on the spot
    ///   (Marzban counts from the last reset or creation).
    pub fn modify(&mut self, m: &Modification, now: i64) -> Result<Vec<Event>, FieldError> {
        self.validate_modification(m)?;

        if let Some(limit) = m.data_limit {
            self.data_limit = positive(limit);
        }
        if let Some(expire) = m.expire {
            self.expire = positive(expire);
        }
        if let Some(strategy) = m.data_limit_reset_strategy
            && strategy != self.data_limit_reset_strategy
        {
            self.data_limit_reset_strategy = strategy;
            self.last_usage_reset_at = Some(now);
        }
        if let Some(duration) = m.on_hold_expire_duration {
            self.on_hold_expire_duration = positive(duration);
        }
        if let Some(timeout) = m.on_hold_timeout {
            self.on_hold_timeout = timeout;
        }
        if let Some(plan) = &m.next_plan {
            self.next_plan = plan.clone();
        }
        if let Some(days) = m.auto_delete_in_days {
            self.auto_delete_in_days = days;
        }

        let mut events = Vec::new();
        match (m.status, self.status) {
            (Some(UserStatus::Disabled), from) if from != UserStatus::Disabled => {
                self.set_status(UserStatus::Disabled, now);
                events.push(Event::Disabled);
            }
            (Some(UserStatus::OnHold), from) if from != UserStatus::OnHold => {
                if from == UserStatus::Disabled {
                    events.push(Event::Enabled);
                }
                self.expire = None;
                self.set_status(UserStatus::OnHold, now);
                events.push(Event::PutOnHold);
            }
            (Some(UserStatus::Active), UserStatus::Disabled) => {
                self.set_status(UserStatus::Active, now);
                events.push(Event::Enabled);
            }
            (Some(UserStatus::Active), UserStatus::OnHold) => {
                let expire = m.expire.and_then(positive);
                self.activate(now, Activation::Admin, expire, &mut events);
            }
            _ => {}
        }
        events.extend(self.evaluate_at(now));
        Ok(events)
    }

    fn validate_modification(&self, m: &Modification) -> Result<(), FieldError> {
        if let Some(status) = m.status
            && !matches!(
                status,
                UserStatus::Active | UserStatus::Disabled | UserStatus::OnHold
            )
        {
            return Err(FieldError::new(
                "status",
                "status must be one of active, disabled, on_hold",
            ));
        }
        non_negative("data_limit", m.data_limit.flatten())?;
        non_negative("expire", m.expire.flatten())?;
        non_negative(
            "on_hold_expire_duration",
            m.on_hold_expire_duration.flatten(),
        )?;
        if let Some(Some(plan)) = &m.next_plan {
            plan.validate()?;
        }
        let new_expire = m.expire.flatten().filter(|e| *e > 0);
        let duration = match m.on_hold_expire_duration {
            Some(d) => positive(d),
            None => positive(self.on_hold_expire_duration),
        };
        match (m.status, self.status) {
            (Some(UserStatus::OnHold), _) => {
                if duration.is_none() {
                    return Err(FieldError::new("status", ON_HOLD_NEEDS_DURATION));
                }
                if new_expire.is_some() {
                    return Err(FieldError::new("status", ON_HOLD_FORBIDS_EXPIRE));
                }
            }
            (None, UserStatus::OnHold) => {
                if new_expire.is_some() {
                    return Err(FieldError::new(
                        "expire",
                        "an on_hold user's expire starts with its first connection; \
                         set status to active to give it an expire",
                    ));
                }
                // Only a request that clears it: unrelated edits of an
                // imported on-hold user without a duration still go through.
                if m.on_hold_expire_duration.is_some() && duration.is_none() {
                    return Err(FieldError::new(
                        "on_hold_expire_duration",
                        "an on_hold user needs an on_hold_expire_duration greater than 0",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
