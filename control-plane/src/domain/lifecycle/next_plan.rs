//! The plan a user moves to when the current one runs out (Marzban's `next_plan`).

use serde::{Deserialize, Deserializer, Serialize};

use super::FieldError;

/// Plan `expire` values below this are durations in seconds, values at or
/// above it are absolute unix times.
///
/// Decision: Marzban 0.8.4 copies `next_plan.expire` into the user's `expire`
/// as an absolute time, while its successors and most forks (and template
/// based plans) treat it as a duration from the moment the plan fires. Each
/// reading is meaningless in the other's range: as a time, anything below
/// 10^9 is before September 2001 and would expire the user on the spot; as a
/// duration, 10^9 s is almost 32 years. So both kinds of client get what they
/// meant: `2592000` is "30 days from when the plan fires", `1767225600` is
/// "until 2026-01-01".
pub const RELATIVE_EXPIRE_BELOW: i64 = 1_000_000_000;

/// Marzban's `next_plan` object, as accepted in user create/modify and
/// returned in user responses.
///
/// - `data_limit`: the new plan's quota in bytes; `null`/0 = unlimited.
/// - `expire`: see [`RELATIVE_EXPIRE_BELOW`]; `null`/0 = never expires.
///   Like Marzban, the plan replaces both, so a plan without `expire` leaves
///   the user with no expiry.
/// - `add_remaining_traffic`: the unused rest of the old quota is added to
///   the new one. (Marzban 0.8.4 has this inverted, adding the rest when the
///   flag is false; we implement what the name says.)
/// - `fire_on_either` (default true, as Marzban): the plan fires when the user
///   is limited *or* expired; when false, only once both hold.
/// - `user_template_id`: accepted and kept for clients of Marzban's successors;
///   the domain does not resolve templates. A caller that supports them
///   resolves one with [`NextPlan::from_template`]. Omitted from JSON when
///   absent, so 0.8.4 clients see the exact shape they know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NextPlan {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_template_id: Option<i64>,
    #[serde(default)]
    pub data_limit: Option<i64>,
    #[serde(default)]
    pub expire: Option<i64>,
    #[serde(default, deserialize_with = "null_as_false")]
    pub add_remaining_traffic: bool,
    #[serde(default = "yes", deserialize_with = "null_as_true")]
    #[schema(default = true)]
    pub fire_on_either: bool,
}

impl Default for NextPlan {
    fn default() -> Self {
        Self {
            user_template_id: None,
            data_limit: None,
            expire: None,
            add_remaining_traffic: false,
            fire_on_either: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn null_as_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

fn null_as_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

impl NextPlan {
    /// A plan built from a user template: its quota and its expire duration
    /// (a duration, so it counts from the moment the plan fires).
    pub fn from_template(
        template_id: i64,
        data_limit: Option<i64>,
        expire_duration: Option<i64>,
        add_remaining_traffic: bool,
        fire_on_either: bool,
    ) -> Self {
        Self {
            user_template_id: Some(template_id),
            data_limit,
            expire: expire_duration.map(|d| d.min(RELATIVE_EXPIRE_BELOW - 1)),
            add_remaining_traffic,
            fire_on_either,
        }
    }

    /// Rejects negative quotas and expiries (422 on field `next_plan`).
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.data_limit.is_some_and(|v| v < 0) {
            return Err(FieldError::new(
                "next_plan",
                "data_limit must be 0 or greater",
            ));
        }
        if self.expire.is_some_and(|v| v < 0) {
            return Err(FieldError::new("next_plan", "expire must be 0 or greater"));
        }
        Ok(())
    }

    /// Whether the plan fires for a user whose quota is (`limited`) and whose
    /// expiry is (`expired`) reached.
    pub fn triggers(&self, limited: bool, expired: bool) -> bool {
        if self.fire_on_either {
            limited || expired
        } else {
            limited && expired
        }
    }

    /// The user's expire once the plan fires at `now`.
    pub fn expire_at(&self, now: i64) -> Option<i64> {
        match self.expire {
            None | Some(..=0) => None,
            Some(d) if d < RELATIVE_EXPIRE_BELOW => Some(now.saturating_add(d)),
            Some(at) => Some(at),
        }
    }

    /// The user's data limit once the plan fires, given the old effective
    /// limit and the usage it replaces. An unlimited old plan has no "rest"
    /// to carry over; an unlimited new plan stays unlimited.
    pub fn data_limit_after(&self, old_limit: Option<i64>, used: i64) -> Option<i64> {
        let base = self.data_limit.filter(|l| *l > 0)?;
        if !self.add_remaining_traffic {
            return Some(base);
        }
        let rest = old_limit.map_or(0, |l| l.saturating_sub(used).max(0));
        Some(base.saturating_add(rest))
    }
}
