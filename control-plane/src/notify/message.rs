//! The human-readable form of a notification, shared by Telegram (HTML)
//! and Discord (embeds).

use serde_json::Value;

use crate::domain::Action;
use crate::store::Notification;

/// Longest value shown: a username or node message chosen by whoever
/// triggers the event (a failed login's username is anyone's) must not
/// flood a chat or push the text past Telegram's 4096 characters.
const MAX_VALUE_CHARS: usize = 200;

/// A title and labelled values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub fields: Vec<(&'static str, String)>,
    /// Discord's embed colour.
    pub color: u32,
}

fn title(action: Action) -> &'static str {
    match action {
        Action::UserCreated => "User created",
        Action::UserUpdated => "User updated",
        Action::UserDeleted => "User deleted",
        Action::UserLimited => "User limited",
        Action::UserExpired => "User expired",
        Action::UserEnabled => "User enabled",
        Action::UserDisabled => "User disabled",
        Action::DataUsageReset => "Data usage reset",
        Action::DataResetByNext => "Data reset by next plan",
        Action::SubscriptionRevoked => "Subscription revoked",
        Action::ReachedUsagePercent => "Usage threshold reached",
        Action::ReachedDaysLeft => "Expiry approaching",
        Action::NodeConnected => "Node connected",
        Action::NodeLost => "Node lost",
        Action::NodeError => "Node error",
        Action::LoginSucceeded => "Admin login",
        Action::LoginFailed => "Failed admin login",
    }
}

fn color(action: Action) -> u32 {
    match action {
        Action::UserCreated | Action::UserEnabled | Action::NodeConnected => 0x2e_cc71,
        Action::UserDeleted
        | Action::UserLimited
        | Action::UserExpired
        | Action::NodeLost
        | Action::NodeError
        | Action::LoginFailed => 0xe7_4c3c,
        Action::ReachedUsagePercent | Action::ReachedDaysLeft | Action::UserDisabled => 0xf3_9c12,
        _ => 0x34_98db,
    }
}

fn clip(value: &str) -> String {
    if value.chars().count() <= MAX_VALUE_CHARS {
        return value.to_owned();
    }
    let mut clipped: String = value.chars().take(MAX_VALUE_CHARS - 1).collect();
    clipped.push('…');
    clipped
}

fn bytes(value: &Value) -> Option<String> {
    let b = value.as_i64()?;
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut size = b as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    Some(if unit == 0 {
        format!("{b} B")
    } else {
        format!("{size:.2} {}", UNITS[unit])
    })
}

impl Message {
    pub fn of(n: &Notification) -> Self {
        let p = &n.payload;
        let text = |v: &Value| v.as_str().map(clip);
        let mut fields = Vec::new();
        let mut add = |label: &'static str, value: Option<String>| {
            if let Some(v) = value {
                fields.push((label, v));
            }
        };
        match n.action {
            Action::NodeConnected | Action::NodeLost | Action::NodeError => {
                add("Node", Some(clip(&n.subject)));
                add("Message", text(&p["message"]));
            }
            Action::LoginSucceeded | Action::LoginFailed => {
                add("Username", Some(clip(&n.subject)));
                add("Address", text(&p["address"]));
            }
            _ => {
                let user = &p["user"];
                add("Username", Some(clip(&n.subject)));
                add("Status", text(&user["status"]));
                add("Used", bytes(&user["used_traffic"]));
                add(
                    "Data limit",
                    bytes(&user["data_limit"]).or(Some("unlimited".into())),
                );
                add(
                    "Expire",
                    user["expire"]
                        .as_i64()
                        .filter(|e| *e > 0)
                        .map(crate::time_fmt::iso_utc)
                        .or(Some("never".into())),
                );
                add(
                    "Used percent",
                    p["used_percent"].as_i64().map(|v| format!("{v}%")),
                );
                add("Days left", p["days_left"].as_i64().map(|v| v.to_string()));
                add("Owner", text(&user["admin"]));
                add("By", text(&p["by"]["username"]));
            }
        }
        Self {
            title: title(n.action).to_owned(),
            fields,
            color: color(n.action),
        }
    }

    /// Telegram HTML: everything not ours escaped, so a username such as
    /// `<b>` cannot break the message or inject markup.
    pub fn html(&self) -> String {
        let mut out = format!("<b>{}</b>", escape_html(&self.title));
        for (label, value) in &self.fields {
            out.push_str(&format!("\n{label}: <code>{}</code>", escape_html(value)));
        }
        out
    }
}

/// The three characters Telegram's HTML parse mode requires escaped.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn notification(action: Action, subject: &str, payload: Value) -> Notification {
        Notification {
            id: 1,
            created_at: 0,
            action,
            subject: subject.into(),
            admin_id: None,
            payload,
        }
    }

    #[test]
    fn markup_in_values_is_escaped() {
        let n = notification(
            Action::LoginFailed,
            "<b>&x</b>",
            json!({"address": "10.0.0.1"}),
        );
        let html = Message::of(&n).html();
        assert_eq!(
            html,
            "<b>Failed admin login</b>\nUsername: <code>&lt;b&gt;&amp;x&lt;/b&gt;</code>\n\
             Address: <code>10.0.0.1</code>"
        );
    }

    #[test]
    fn long_values_are_clipped_under_telegram_limits() {
        let n = notification(
            Action::NodeError,
            &"n".repeat(10_000),
            json!({"message": "<".repeat(10_000)}),
        );
        let html = Message::of(&n).html();
        assert!(html.chars().count() < 4096, "{}", html.len());
    }

    #[test]
    fn user_events_show_usage_and_limits() {
        let n = notification(
            Action::ReachedUsagePercent,
            "alice",
            json!({"user": {"status": "active", "used_traffic": 858_993_459,
                "data_limit": 1_073_741_824, "expire": null, "admin": "root"},
                "used_percent": 80, "by": null}),
        );
        let m = Message::of(&n);
        assert_eq!(m.title, "Usage threshold reached");
        assert!(m.fields.contains(&("Used", "819.20 MB".into())));
        assert!(m.fields.contains(&("Data limit", "1.00 GB".into())));
        assert!(m.fields.contains(&("Used percent", "80%".into())));
        assert!(m.fields.contains(&("Expire", "never".into())));
    }
}
