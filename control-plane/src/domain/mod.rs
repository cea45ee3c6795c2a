//! Pure user-lifecycle rules and value types: no I/O here.

pub mod inbounds;
pub mod lifecycle;
pub mod notification;
pub mod proxies;
pub mod user;
pub mod validate;

pub use inbounds::{Inbound, parse_inbounds};
pub use lifecycle::{
    Account, Activation, AutoDeletePolicy, Event, FieldError, Modification, NewAccount, NextPlan,
    NoNextPlan,
};
pub use notification::Action;
pub use proxies::{Proxies, ProxyProtocol};
pub use user::{ResetStrategy, UserStatus};

/// The name a core knows a user by, and the key of its traffic counters.
pub fn user_email(user_id: i64, username: &str) -> String {
    format!("{user_id}.{username}")
}

/// The user id encoded in a core email ("{id}.{username}").
pub fn user_id_from_email(email: &str) -> Option<i64> {
    email.split_once('.')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_round_trips_the_id() {
        let email = user_email(42, "a.b@c");
        assert_eq!(email, "42.a.b@c");
        assert_eq!(user_id_from_email(&email), Some(42));
        assert_eq!(user_id_from_email("nope"), None);
    }
}
