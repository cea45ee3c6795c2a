//! What a notification reports: Marzban's webhook actions for users, plus
//! the admin and node events Nexpoint reports to Telegram and Discord.

use super::lifecycle::Event;

/// The kind of a notification, stored as its `as_str` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    UserCreated,
    UserUpdated,
    UserDeleted,
    UserLimited,
    UserExpired,
    UserEnabled,
    UserDisabled,
    DataUsageReset,
    DataResetByNext,
    SubscriptionRevoked,
    ReachedUsagePercent,
    ReachedDaysLeft,
    NodeConnected,
    NodeLost,
    NodeError,
    LoginSucceeded,
    LoginFailed,
}

impl Action {
    pub const ALL: [Action; 17] = [
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserDeleted,
        Self::UserLimited,
        Self::UserExpired,
        Self::UserEnabled,
        Self::UserDisabled,
        Self::DataUsageReset,
        Self::DataResetByNext,
        Self::SubscriptionRevoked,
        Self::ReachedUsagePercent,
        Self::ReachedDaysLeft,
        Self::NodeConnected,
        Self::NodeLost,
        Self::NodeError,
        Self::LoginSucceeded,
        Self::LoginFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCreated => "user_created",
            Self::UserUpdated => "user_updated",
            Self::UserDeleted => "user_deleted",
            Self::UserLimited => "user_limited",
            Self::UserExpired => "user_expired",
            Self::UserEnabled => "user_enabled",
            Self::UserDisabled => "user_disabled",
            Self::DataUsageReset => "data_usage_reset",
            Self::DataResetByNext => "data_reset_by_next",
            Self::SubscriptionRevoked => "subscription_revoked",
            Self::ReachedUsagePercent => "reached_usage_percent",
            Self::ReachedDaysLeft => "reached_days_left",
            Self::NodeConnected => "node_connected",
            Self::NodeLost => "node_lost",
            Self::NodeError => "node_error",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The action a lifecycle event is reported as, if any.
    pub fn of_event(event: &Event) -> Option<Self> {
        Self::parse(event.webhook_action()?)
    }

    /// Whether Marzban webhooks carry it: they only know user actions, and
    /// their receivers expect a user in every item.
    pub fn is_user_action(self) -> bool {
        !matches!(
            self,
            Self::NodeConnected
                | Self::NodeLost
                | Self::NodeError
                | Self::LoginSucceeded
                | Self::LoginFailed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserStatus;

    #[test]
    fn names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("nope"), None);
    }

    #[test]
    fn every_reported_event_has_an_action() {
        let events = [
            Event::Limited,
            Event::Expired,
            Event::Enabled,
            Event::Disabled,
            Event::Reactivated {
                from: UserStatus::Limited,
            },
            Event::NextPlanApplied { used_traffic: 1 },
            Event::UsageReset {
                used_traffic: 1,
                periodic: true,
            },
        ];
        for event in events {
            let action = Action::of_event(&event).expect("reported");
            assert!(action.is_user_action());
        }
        assert_eq!(Action::of_event(&Event::PutOnHold), None);
    }
}
