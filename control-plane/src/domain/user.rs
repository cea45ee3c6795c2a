use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
    Limited,
    Expired,
    OnHold,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Limited => "limited",
            Self::Expired => "expired",
            Self::OnHold => "on_hold",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "disabled" => Self::Disabled,
            "limited" => Self::Limited,
            "expired" => Self::Expired,
            "on_hold" => Self::OnHold,
            _ => return None,
        })
    }

    /// Whether cores must accept the user. On-hold users may connect: their
    /// first connection is what starts their plan.
    pub fn is_served(self) -> bool {
        matches!(self, Self::Active | Self::OnHold)
    }

    /// The statuses a client may ask for when creating a user.
    pub fn allowed_on_create(self) -> bool {
        matches!(self, Self::Active | Self::OnHold)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetStrategy {
    #[default]
    NoReset,
    Day,
    Week,
    Month,
    Year,
}

impl ResetStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoReset => "no_reset",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    /// Seconds from the start of a usage period to its reset: Marzban's
    /// 1/7/30/365 days (fixed lengths, not calendar months), `None` for no_reset.
    pub fn period_seconds(self) -> Option<i64> {
        const DAY: i64 = 86_400;
        match self {
            Self::NoReset => None,
            Self::Day => Some(DAY),
            Self::Week => Some(7 * DAY),
            Self::Month => Some(30 * DAY),
            Self::Year => Some(365 * DAY),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "no_reset" => Self::NoReset,
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "year" => Self::Year,
            _ => return None,
        })
    }
}

/// The status a user should have after its usage grew to `used`: a user
/// crossing its data limit becomes limited.
///
/// Status only; the full rules (on-hold activation starting the expire clock,
/// next plans, periodic resets) are [`crate::domain::lifecycle::Account::record_usage`].
pub fn status_after_usage(status: UserStatus, used: i64, data_limit: Option<i64>) -> UserStatus {
    match (status, data_limit) {
        (UserStatus::Active | UserStatus::OnHold, Some(limit)) if limit > 0 && used >= limit => {
            UserStatus::Limited
        }
        (UserStatus::OnHold, _) if used > 0 => UserStatus::Active,
        _ => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [
            UserStatus::Active,
            UserStatus::Disabled,
            UserStatus::Limited,
            UserStatus::Expired,
            UserStatus::OnHold,
        ] {
            assert_eq!(UserStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(UserStatus::parse("deleted"), None);
    }

    #[test]
    fn only_active_and_on_hold_are_served() {
        assert!(UserStatus::Active.is_served());
        assert!(UserStatus::OnHold.is_served());
        assert!(!UserStatus::Disabled.is_served());
        assert!(!UserStatus::Limited.is_served());
        assert!(!UserStatus::Expired.is_served());
    }

    #[test]
    fn crossing_the_limit_limits() {
        use UserStatus::*;
        assert_eq!(status_after_usage(Active, 99, Some(100)), Active);
        assert_eq!(status_after_usage(Active, 100, Some(100)), Limited);
        assert_eq!(status_after_usage(Active, 1 << 40, None), Active);
        assert_eq!(status_after_usage(Active, 1 << 40, Some(0)), Active);
        assert_eq!(status_after_usage(Disabled, 200, Some(100)), Disabled);
        assert_eq!(status_after_usage(OnHold, 5, Some(100)), Active);
        assert_eq!(status_after_usage(OnHold, 500, Some(100)), Limited);
    }
}
