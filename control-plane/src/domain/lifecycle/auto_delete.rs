//! Deleting users that stayed limited or expired for too long.

use super::Account;
use crate::domain::user::UserStatus;

const DAY: i64 = 86_400;

/// The global auto-delete settings (Marzban's `USERS_AUTODELETE_DAYS` and
/// `USER_AUTODELETE_INCLUDE_LIMITED_ACCOUNTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoDeletePolicy {
    /// Days a user may stay expired before deletion when it has no
    /// `auto_delete_in_days` of its own; negative = never.
    pub days: i64,
    /// Whether limited users are deleted too (otherwise only expired ones).
    pub include_limited: bool,
}

impl Default for AutoDeletePolicy {
    /// Marzban's defaults: never, expired users only.
    fn default() -> Self {
        Self {
            days: -1,
            include_limited: false,
        }
    }
}

impl Account {
    /// When the user is due for deletion: `days` after it became expired
    /// (or limited, if the policy includes them), counted from
    /// `last_status_change`. The user's own `auto_delete_in_days` wins over
    /// the policy's, including a negative one (never) and 0 (as soon as the
    /// status is reached). `None` when the user is not to be deleted.
    pub fn auto_delete_at(&self, policy: &AutoDeletePolicy) -> Option<i64> {
        let days = self.auto_delete_in_days.unwrap_or(policy.days);
        if days < 0 {
            return None;
        }
        match self.status {
            UserStatus::Expired => {}
            UserStatus::Limited if policy.include_limited => {}
            _ => return None,
        }
        let since = self.last_status_change.unwrap_or(self.created_at);
        Some(since.saturating_add(days.saturating_mul(DAY)))
    }

    /// Whether the user is due for deletion at `now`.
    pub fn auto_delete_due(&self, policy: &AutoDeletePolicy, now: i64) -> bool {
        self.auto_delete_at(policy).is_some_and(|at| at <= now)
    }
}
