//! `user create` and `user set-owner`: the API's own functions for
//! `POST /api/user` and `PUT /api/user/{username}/set-owner`, so the
//! validation, the revision and the notification are exactly the API's.
//! The running daemon's node tasks pick the change up from the revision
//! log at their next pass.

use std::io::Read;

use clap::Args;
use serde_json::{Map, Value, json};

use super::inspect::{self, open};
use super::output::{api_failure, not_found, usage};
use super::units;
use crate::api::{Render, UserCreate, create_user, set_user_owner};
use crate::config::DatabaseArgs;
use crate::store::{Store, User};

/// Flags of `nexpoint user create`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("fields").multiple(true).conflicts_with("json_body"))]
pub struct CreateArgs {
    /// The new user's name (3 to 32 of a-z, A-Z, 0-9, - _ @ .); may be left
    /// out with --json-body.
    #[arg(required_unless_present = "json_body")]
    pub username: Option<String>,
    /// A protocol the user gets (credentials are generated); repeat for
    /// several.
    #[arg(long = "proxy", value_name = "PROTOCOL", group = "fields",
        value_parser = ["vmess", "vless", "trojan", "shadowsocks"])]
    pub proxies: Vec<String>,
    /// Traffic quota: bytes or a size such as 10GB (1 GB = 2^30 bytes); 0
    /// means none.
    #[arg(long, value_name = "SIZE", group = "fields", value_parser = units::size)]
    pub data_limit: Option<i64>,
    /// When the user expires: a date (2026-12-31, midnight UTC), a date and
    /// time (ISO 8601), or days from now (30, or 12h, 2w).
    #[arg(long, value_name = "WHEN", group = "fields")]
    pub expire: Option<String>,
    /// How often the used traffic starts again from zero.
    #[arg(long, value_name = "STRATEGY", group = "fields",
        value_parser = ["no_reset", "day", "week", "month", "year"])]
    pub data_limit_reset_strategy: Option<String>,
    /// Free text for admins (at most 500 characters).
    #[arg(long, group = "fields")]
    pub note: Option<String>,
    /// The admin who owns the user (default: none; sudo admins manage it).
    #[arg(long, value_name = "ADMIN", group = "fields")]
    pub owner: Option<String>,
    /// `on_hold` starts the clock at the first connection (needs
    /// --on-hold-duration).
    #[arg(long, group = "fields", value_parser = ["active", "on_hold"])]
    pub status: Option<String>,
    /// How long an on-hold user lasts once it starts: days (30) or 12h, 2w.
    #[arg(long, value_name = "DURATION", group = "fields", value_parser = units::duration)]
    pub on_hold_duration: Option<i64>,
    /// When an on-hold user starts anyway, unused: as --expire.
    #[arg(long, value_name = "WHEN", group = "fields")]
    pub on_hold_timeout: Option<String>,
    /// The body of `POST /api/user` (JSON) from a file, or `-` for stdin,
    /// instead of the flags above; USERNAME, if given, must match its
    /// `username` (or fills it in).
    #[arg(long, value_name = "FILE")]
    pub json_body: Option<String>,
    /// Base URL subscribers reach the control plane at, for the printed
    /// subscription URL; without it the URL is relative (`/sub/...`).
    #[arg(long, env = "NEXPOINT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The user as `POST /api/user` answers it (JSON) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// The flag behind each field of the API's body, for error messages.
fn flag_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "username" => "USERNAME",
        "proxies" => "--proxy",
        "data_limit" => "--data-limit",
        "expire" => "--expire",
        "data_limit_reset_strategy" => "--data-limit-reset-strategy",
        "note" => "--note",
        "status" => "--status",
        "on_hold_expire_duration" => "--on-hold-duration",
        "on_hold_timeout" => "--on-hold-timeout",
        _ => return None,
    })
}

impl CreateArgs {
    /// The API's body: from --json-body, or made of the flags.
    fn body(&self) -> anyhow::Result<UserCreate> {
        let mut body = match &self.json_body {
            Some(source) => read_json(source)?,
            None => self.flags_body()?,
        };
        let object = body
            .as_object_mut()
            .ok_or_else(|| usage("--json-body: the body must be a JSON object"))?;
        if let Some(username) = &self.username {
            match object.get("username") {
                Some(Value::String(u)) if u != username => {
                    return Err(usage(format!(
                        "USERNAME {username:?} differs from the body's username {u:?}"
                    )));
                }
                _ => {
                    object.insert("username".into(), json!(username));
                }
            }
        }
        // The API's own extractor, whose refusal names the field.
        let bytes = serde_json::to_vec(&body)?;
        axum::Json::<UserCreate>::from_bytes(&bytes)
            .map(|json| json.0)
            .map_err(|r| usage(format!("invalid body: {}", r.body_text())))
    }

    fn flags_body(&self) -> anyhow::Result<Value> {
        let now = crate::store::now();
        let when = |flag: &str, text: &Option<String>| {
            text.as_deref()
                .map(|t| units::when(t, now).map_err(|m| usage(format!("invalid {flag}: {m}"))))
                .transpose()
        };
        let proxies: Map<String, Value> = self
            .proxies
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        Ok(json!({
            "proxies": proxies,
            "data_limit": self.data_limit,
            "expire": when("--expire", &self.expire)?,
            "data_limit_reset_strategy": self.data_limit_reset_strategy,
            "note": self.note,
            "status": self.status,
            "on_hold_expire_duration": self.on_hold_duration,
            "on_hold_timeout": when("--on-hold-timeout", &self.on_hold_timeout)?
                .map(crate::time_fmt::iso_utc),
        }))
    }
}

/// JSON from a file, or stdin for `-`.
fn read_json(source: &str) -> anyhow::Result<Value> {
    let text = if source == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(source)
            .map_err(|e| usage(format!("--json-body: cannot read {source}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| usage(format!("--json-body: not JSON: {e}")))
}

pub async fn create(args: CreateArgs) -> anyhow::Result<()> {
    // Bad input is refused before the database is opened.
    let body = args.body()?;
    let store = open(&args.database).await?;
    let result = async {
        let owner_id = match &args.owner {
            Some(owner) => Some(
                store
                    .admin_by_username(owner)
                    .await?
                    .ok_or_else(|| not_found(format!("no admin named {owner:?}")))?
                    .id,
            ),
            None => None,
        };
        let user = create_user(&store, body, owner_id)
            .await
            .map_err(|e| api_failure(e, flag_of))?;
        print_user(&store, user, args.public_url.as_deref(), args.json).await
    }
    .await;
    store.close().await;
    result
}

/// Gives a user to another admin; exit status 3 if either does not exist.
pub async fn set_owner(
    store: &Store,
    username: &str,
    admin: &str,
    public_url: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let user = set_user_owner(store, username, admin, None)
        .await
        .map_err(|e| match e {
            crate::api::ApiError::NotFound(m) => {
                not_found(format!("{m} (user {username:?}, admin {admin:?})"))
            }
            other => api_failure(other, |_| None),
        })?;
    if json {
        return print_user(store, user, public_url, true).await;
    }
    println!("user {} now belongs to admin {admin}", user.username);
    Ok(())
}

/// The user as the API renders it (`--json`), or as `user get` shows it.
async fn print_user(
    store: &Store,
    user: User,
    public_url: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let secret = crate::serve::subscription_secret(store).await?;
    let render = Render::load(store, &secret, public_url.unwrap_or("")).await?;
    let response = render.user(user.clone());
    if json {
        println!("{}", serde_json::to_string_pretty(&response)?);
        return Ok(());
    }
    inspect::user_table(user)?;
    println!("subscription: {}", response.subscription_url());
    Ok(())
}
