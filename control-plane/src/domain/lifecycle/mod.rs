//! The user lifecycle as pure state transitions: what traffic, time and admin
//! actions do to a user's status, quota and expiry. No I/O and no clock:
//! every function takes `now` (unix seconds), mutates an [`Account`] and
//! returns the [`Event`]s that happened, in order, for notifications.
//!
//! # Model
//! `disabled` and `on_hold` are set by admins and only left by an admin (or,
//! for on_hold, by first traffic or the hold timeout). `active`, `limited`
//! and `expired` are governed by the rules: a user is *limited* when its
//! usage reaches a positive data limit (`used >= limit`, as Marzban) and
//! *expired* when a positive expire is reached (`expire <= now`, as Marzban).
//! Once limited or expired, a user keeps that status while it is still
//! justified (a limited user whose expiry passes stays limited, an expired
//! user that receives late traffic stays expired), so no spurious
//! notification is sent; when it stops being justified (limit raised,
//! usage reset, expiry extended) the user moves to the other reason or back
//! to active. An active user that is both over quota and expired becomes
//! limited (Marzban checks the quota first).
//!
//! Every function leaves the account *settled* at `now`: calling
//! [`Account::evaluate_at`] again at the same `now` changes nothing, and
//! [`Account::next_deadline`] tells when it next would.

mod auto_delete;
mod modify;
mod next_plan;

#[cfg(test)]
mod tests;

pub use auto_delete::AutoDeletePolicy;
pub use modify::{FieldError, Modification, NewAccount, zero_means_none};
pub use next_plan::{NextPlan, RELATIVE_EXPIRE_BELOW};

use super::user::{ResetStrategy, UserStatus};

/// The lifecycle-relevant state of one user.
///
/// Time fields are unix seconds. `data_limit` and `expire` of `None` or
/// `Some(0)` both mean none (Marzban's convention); functions here store
/// `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub status: UserStatus,
    /// Bytes used in the current usage period.
    pub used_traffic: i64,
    /// Bytes used since creation: past periods plus `used_traffic`. Resets
    /// and next plans never lower it.
    pub lifetime_used_traffic: i64,
    pub data_limit: Option<i64>,
    pub expire: Option<i64>,
    pub data_limit_reset_strategy: ResetStrategy,
    /// Start of the current usage period: the last reset (periodic, manual
    /// or by next plan), the activation of an on-hold user, or a change of
    /// reset strategy. `None` falls back to `created_at`.
    pub last_usage_reset_at: Option<i64>,
    pub created_at: i64,
    /// Length of the plan an on-hold user starts with its first traffic.
    pub on_hold_expire_duration: Option<i64>,
    /// When an on-hold user that never connected starts anyway.
    pub on_hold_timeout: Option<i64>,
    pub next_plan: Option<NextPlan>,
    /// Last time traffic was seen.
    pub online_at: Option<i64>,
    /// Per-user auto-delete delay in days; `None` uses the global setting,
    /// negative never deletes.
    pub auto_delete_in_days: Option<i64>,
    /// When `status` last changed (Marzban's `last_status_change`); auto
    /// delete counts from it. `None` falls back to `created_at`.
    pub last_status_change: Option<i64>,
}

/// What started an on-hold user's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Its first traffic.
    FirstTraffic,
    /// `on_hold_timeout` passed without traffic.
    Timeout,
    /// An admin set it active or applied its next plan.
    Admin,
}

/// Something that happened to a user, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// on_hold -> active; the expire clock started.
    Activated {
        cause: Activation,
        expire: Option<i64>,
    },
    /// The user reached its data limit and left the cores.
    Limited,
    /// The user reached its expiry and left the cores.
    Expired,
    /// A limited or expired user is active again (limit raised, expiry
    /// extended, usage reset, next plan).
    Reactivated { from: UserStatus },
    /// The next plan replaced the current one; `used_traffic` is the usage it
    /// reset.
    NextPlanApplied { used_traffic: i64 },
    /// Usage went back to zero; `used_traffic` is what it was.
    UsageReset { used_traffic: i64, periodic: bool },
    /// An admin lifted `disabled`.
    Enabled,
    /// An admin disabled the user.
    Disabled,
    /// An admin put the user on hold.
    PutOnHold,
}

impl Event {
    /// The Marzban webhook action this event is reported as, if any.
    /// Marzban reports every change to active as `user_enabled`.
    pub fn webhook_action(&self) -> Option<&'static str> {
        Some(match self {
            Self::Activated { .. } | Self::Reactivated { .. } | Self::Enabled => "user_enabled",
            Self::Limited => "user_limited",
            Self::Expired => "user_expired",
            Self::NextPlanApplied { .. } => "data_reset_by_next",
            Self::UsageReset { .. } => "data_usage_reset",
            Self::Disabled => "user_disabled",
            Self::PutOnHold => return None,
        })
    }
}

/// `active-next` on a user without a next plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("User doesn't have next plan")]
pub struct NoNextPlan;

impl Account {
    /// A new active user with no usage, created at `created_at`.
    pub fn new(created_at: i64) -> Self {
        Self {
            status: UserStatus::Active,
            used_traffic: 0,
            lifetime_used_traffic: 0,
            data_limit: None,
            expire: None,
            data_limit_reset_strategy: ResetStrategy::NoReset,
            last_usage_reset_at: None,
            created_at,
            on_hold_expire_duration: None,
            on_hold_timeout: None,
            next_plan: None,
            online_at: None,
            auto_delete_in_days: None,
            last_status_change: Some(created_at),
        }
    }

    /// Whether cores must accept the user.
    pub fn is_served(&self) -> bool {
        self.status.is_served()
    }

    /// The data limit, `None` when unlimited.
    pub fn effective_limit(&self) -> Option<i64> {
        self.data_limit.filter(|l| *l > 0)
    }

    /// The expiry, `None` when never.
    pub fn effective_expire(&self) -> Option<i64> {
        self.expire.filter(|e| *e > 0)
    }

    /// Whether usage has reached a (positive) data limit.
    pub fn limit_reached(&self) -> bool {
        self.effective_limit()
            .is_some_and(|l| self.used_traffic >= l)
    }

    /// Whether the expiry is reached at `now`.
    pub fn expired_at(&self, now: i64) -> bool {
        self.effective_expire().is_some_and(|e| e <= now)
    }

    /// Start of the current usage period.
    pub fn usage_period_start(&self) -> i64 {
        self.last_usage_reset_at.unwrap_or(self.created_at)
    }

    /// When the periodic reset of the current period is due (whatever the
    /// status), `None` for no_reset.
    pub fn next_reset_at(&self) -> Option<i64> {
        let period = self.data_limit_reset_strategy.period_seconds()?;
        Some(self.usage_period_start().saturating_add(period))
    }

    /// Adds `bytes` of traffic seen at `now`.
    ///
    /// Time-based changes due at `now` happen first (so bytes after a
    /// periodic reset count in the new period). Usage and lifetime usage grow
    /// (saturating; negative deltas count as zero) whatever the status: bytes
    /// a core counted were used. An on-hold user's first traffic starts its
    /// plan (expire = now + on_hold_expire_duration). Reaching the limit
    /// limits the user unless its next plan fires.
    pub fn record_usage(&mut self, bytes: i64, now: i64) -> Vec<Event> {
        let mut events = self.evaluate_at(now);
        if bytes <= 0 {
            return events;
        }
        self.used_traffic = self.used_traffic.saturating_add(bytes);
        self.lifetime_used_traffic = self.lifetime_used_traffic.saturating_add(bytes);
        self.online_at = Some(self.online_at.map_or(now, |seen| seen.max(now)));
        if self.status == UserStatus::OnHold {
            self.activate(now, Activation::FirstTraffic, None, &mut events);
        }
        self.settle(now, &mut events);
        events
    }

    /// Applies what time alone changes at `now`: the hold timeout starts an
    /// on-hold user; a due periodic reset zeroes the usage of an active or
    /// limited user (Marzban resets only those); then the next plan fires or
    /// the status follows the quota and expiry. Disabled users do not change.
    ///
    /// A reset that is late (the scheduler was down) happens once, and the
    /// new period starts at the last boundary passed, not at `now`, so reset
    /// times do not drift.
    pub fn evaluate_at(&mut self, now: i64) -> Vec<Event> {
        let mut events = Vec::new();
        match self.status {
            UserStatus::Disabled => return events,
            UserStatus::OnHold => {
                if self.on_hold_timeout.is_none_or(|t| t > now) {
                    return events;
                }
                self.activate(now, Activation::Timeout, None, &mut events);
            }
            UserStatus::Active | UserStatus::Limited | UserStatus::Expired => {}
        }
        // Until nothing changes: a reset can re-admit a user, and a user
        // re-admitted (e.g. an expired one whose expiry was removed) can have
        // a reset due. Ends: a reset moves the period past `now`, a next plan
        // is consumed, and settling twice changes nothing.
        loop {
            let seen = events.len();
            if matches!(self.status, UserStatus::Active | UserStatus::Limited) {
                self.periodic_reset(now, &mut events);
            }
            self.settle(now, &mut events);
            if events.len() == seen {
                return events;
            }
        }
    }

    /// The earliest second `t >= now` at which [`Account::evaluate_at`]
    /// would change something: the expiry of an active user (or of a limited
    /// one whose next plan waits for both conditions), the hold timeout, the
    /// next periodic reset. `Some(now)` when a change is already due (the
    /// account was changed outside these functions); `None` when only traffic
    /// or an admin can change the user. Traffic-driven changes have no
    /// deadline: [`Account::record_usage`] applies them.
    pub fn next_deadline(&self, now: i64) -> Option<i64> {
        match self.status {
            UserStatus::Disabled => return None,
            UserStatus::OnHold => return self.on_hold_timeout.map(|t| t.max(now)),
            UserStatus::Active | UserStatus::Limited | UserStatus::Expired => {}
        }
        if !self.clone().evaluate_at(now).is_empty() {
            return Some(now);
        }
        let reset = match self.status {
            UserStatus::Active | UserStatus::Limited => self.next_reset_at(),
            _ => None,
        };
        let expire = match self.status {
            UserStatus::Active => self.effective_expire(),
            // Stays limited at its expiry unless a next plan waits for it.
            UserStatus::Limited if self.next_plan.is_some() => self.effective_expire(),
            _ => None,
        };
        [reset, expire].into_iter().flatten().min()
    }

    /// A manual usage reset (`POST /user/{username}/reset`): usage to zero
    /// (lifetime keeps it), a new usage period from `now`, a limited user is
    /// active again (or expired, if it is). Expired, disabled and on-hold
    /// users keep their status.
    ///
    /// Decision: like Marzban (and confirmed by its maintainers), a manual
    /// reset drops the next plan: resetting by hand replaces it.
    pub fn reset_usage(&mut self, now: i64) -> Vec<Event> {
        let mut events = vec![Event::UsageReset {
            used_traffic: self.used_traffic,
            periodic: false,
        }];
        self.used_traffic = 0;
        self.last_usage_reset_at = Some(now);
        self.next_plan = None;
        events.extend(self.evaluate_at(now));
        events
    }

    /// Applies the next plan now (`POST /user/{username}/active-next`),
    /// whatever its trigger. An on-hold user starts with it (its expiry is
    /// the plan's). A disabled user gets the plan but stays disabled: only an
    /// explicit status change lifts `disabled` (Marzban would make it active).
    pub fn activate_next_plan(&mut self, now: i64) -> Result<Vec<Event>, NoNextPlan> {
        if self.next_plan.is_none() {
            return Err(NoNextPlan);
        }
        let mut events = Vec::new();
        self.apply_next_plan(now, &mut events);
        if self.status == UserStatus::OnHold {
            let expire = self.expire;
            self.on_hold_expire_duration = None;
            self.on_hold_timeout = None;
            self.set_status(UserStatus::Active, now);
            events.push(Event::Activated {
                cause: Activation::Admin,
                expire,
            });
        }
        events.extend(self.evaluate_at(now));
        Ok(events)
    }

    /// Bulk disable (`POST /admin/{username}/users/disable`): like Marzban,
    /// only active and on-hold users are disabled; limited and expired users
    /// are already out of the cores and keep their reason.
    pub fn disable(&mut self, now: i64) -> Vec<Event> {
        if !self.status.is_served() {
            return Vec::new();
        }
        self.set_status(UserStatus::Disabled, now);
        vec![Event::Disabled]
    }

    /// Bulk enable (`POST /admin/{username}/users/activate`): a disabled user
    /// whose plan never started (no expiry, a hold duration, never online)
    /// goes back on hold, as Marzban does; any other becomes active and then
    /// follows its quota and expiry.
    pub fn enable(&mut self, now: i64) -> Vec<Event> {
        if self.status != UserStatus::Disabled {
            return Vec::new();
        }
        let never_started = self.effective_expire().is_none()
            && self.on_hold_expire_duration.is_some_and(|d| d > 0)
            && self.online_at.is_none();
        let to = if never_started {
            UserStatus::OnHold
        } else {
            UserStatus::Active
        };
        self.set_status(to, now);
        let mut events = vec![Event::Enabled];
        events.extend(self.evaluate_at(now));
        events
    }

    fn set_status(&mut self, status: UserStatus, now: i64) {
        if self.status != status {
            self.status = status;
            self.last_status_change = Some(now);
        }
    }

    /// on_hold -> active: the plan starts now. `expire` is an explicit expiry
    /// (an admin's); otherwise now + on_hold_expire_duration, or the stored
    /// expiry when there is no duration. The usage period starts now too, so
    /// a monthly quota counts from the start of the plan.
    fn activate(
        &mut self,
        now: i64,
        cause: Activation,
        expire: Option<i64>,
        events: &mut Vec<Event>,
    ) {
        if let Some(at) = expire {
            self.expire = Some(at);
        } else if let Some(d) = self.on_hold_expire_duration.filter(|d| *d > 0) {
            self.expire = Some(now.saturating_add(d));
        }
        self.on_hold_expire_duration = None;
        self.on_hold_timeout = None;
        self.last_usage_reset_at = Some(now);
        self.set_status(UserStatus::Active, now);
        events.push(Event::Activated {
            cause,
            expire: self.effective_expire(),
        });
    }

    fn periodic_reset(&mut self, now: i64, events: &mut Vec<Event>) {
        let (Some(period), Some(due)) = (
            self.data_limit_reset_strategy.period_seconds(),
            self.next_reset_at(),
        ) else {
            return;
        };
        if due > now {
            return;
        }
        let start = self.usage_period_start();
        let periods = now.saturating_sub(start) / period;
        let new_start = start.saturating_add(periods.saturating_mul(period));
        events.push(Event::UsageReset {
            used_traffic: self.used_traffic,
            periodic: true,
        });
        self.used_traffic = 0;
        self.last_usage_reset_at = Some(new_start);
    }

    /// Fires the next plan if its trigger holds, then moves a governed user
    /// (active, limited, expired) to the status its quota and expiry justify.
    fn settle(&mut self, now: i64, events: &mut Vec<Event>) {
        use UserStatus::*;
        if !matches!(self.status, Active | Limited | Expired) {
            return;
        }
        if self
            .next_plan
            .as_ref()
            .is_some_and(|p| p.triggers(self.limit_reached(), self.expired_at(now)))
        {
            self.apply_next_plan(now, events);
        }
        let (limited, expired) = (self.limit_reached(), self.expired_at(now));
        let target = match self.status {
            Expired if expired => Expired,
            Limited if limited => Limited,
            _ if limited => Limited,
            _ if expired => Expired,
            _ => Active,
        };
        if target == self.status {
            return;
        }
        let from = self.status;
        self.set_status(target, now);
        events.push(match target {
            Limited => Event::Limited,
            Expired => Event::Expired,
            _ => Event::Reactivated { from },
        });
    }

    /// Replaces the current plan by the next one (consumed): usage reset, new
    /// limit and expiry, a new usage period. The status is left to the caller.
    fn apply_next_plan(&mut self, now: i64, events: &mut Vec<Event>) {
        let Some(plan) = self.next_plan.take() else {
            return;
        };
        let used = self.used_traffic;
        self.data_limit = plan.data_limit_after(self.effective_limit(), used);
        self.expire = plan.expire_at(now);
        self.used_traffic = 0;
        self.last_usage_reset_at = Some(now);
        events.push(Event::NextPlanApplied { used_traffic: used });
    }
}
