//! Commands that read or change the database directly. They are safe next
//! to a running `nexpoint serve`: every write is one transaction that takes
//! the database's write lock (SQLite: BEGIN IMMEDIATE under a busy
//! timeout), and the daemon's node tasks pick up user changes from the
//! revision log at their next pass.

use serde::Serialize;

use super::output::{conflict, not_found, print_rows};
use crate::config::DatabaseArgs;
use crate::store::{Store, StoreError, UserFilter};
use crate::time_fmt;

pub async fn open(database: &DatabaseArgs) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&database.data_dir)?;
    Ok(Store::connect(&database.url()).await?)
}

#[derive(Serialize)]
struct AdminRow {
    username: String,
    is_sudo: bool,
    users_usage: i64,
    telegram_id: Option<i64>,
}

pub async fn admin_list(store: &Store, json: bool) -> anyhow::Result<()> {
    let rows: Vec<AdminRow> = store
        .admins(None, 0, None)
        .await?
        .into_iter()
        .map(|a| AdminRow {
            username: a.username,
            is_sudo: a.is_sudo,
            users_usage: a.users_usage,
            telegram_id: a.telegram_id,
        })
        .collect();
    print_rows(json, &rows, &["USERNAME", "SUDO", "USAGE"], |a| {
        vec![
            a.username.clone(),
            a.is_sudo.to_string(),
            a.users_usage.to_string(),
        ]
    })
}

pub async fn admin_delete(store: &Store, username: &str) -> anyhow::Result<()> {
    match store.delete_admin(username).await {
        Ok(_) => {
            println!("deleted admin {username}");
            Ok(())
        }
        Err(StoreError::NotFound) => Err(not_found(format!("no admin named {username:?}"))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Serialize)]
struct UserRow {
    username: String,
    status: &'static str,
    used_traffic: i64,
    data_limit: Option<i64>,
    expire: Option<i64>,
    admin: Option<String>,
}

impl UserRow {
    fn of(u: crate::store::User) -> Self {
        Self {
            username: u.username,
            status: u.status.as_str(),
            used_traffic: u.used_traffic,
            data_limit: u.data_limit,
            expire: u.expire,
            admin: u.admin_username,
        }
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.username.clone(),
            self.status.to_owned(),
            self.used_traffic.to_string(),
            self.data_limit.map_or("-".into(), |l| l.to_string()),
            self.expire.map_or("-".into(), time_fmt::iso_utc),
            self.admin.clone().unwrap_or_else(|| "-".into()),
        ]
    }
}

const USER_HEADERS: [&str; 6] = ["USERNAME", "STATUS", "USED", "LIMIT", "EXPIRE", "ADMIN"];

pub async fn user_list(
    store: &Store,
    search: Option<String>,
    limit: Option<i64>,
    json: bool,
) -> anyhow::Result<()> {
    let filter = UserFilter {
        search,
        limit,
        ..Default::default()
    };
    let (users, _) = store.list_users(&filter).await?;
    let rows: Vec<UserRow> = users.into_iter().map(UserRow::of).collect();
    print_rows(json, &rows, &USER_HEADERS, UserRow::cells)
}

pub async fn user_get(store: &Store, username: &str, json: bool) -> anyhow::Result<()> {
    let user = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| not_found(format!("no user named {username:?}")))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&UserRow::of(user))?);
        return Ok(());
    }
    user_table(user)
}

/// One user as `user get` shows it.
pub fn user_table(user: crate::store::User) -> anyhow::Result<()> {
    print_rows(false, &[UserRow::of(user)], &USER_HEADERS, UserRow::cells)
}

#[derive(Serialize)]
struct NodeRow {
    id: i64,
    name: String,
    address: String,
    port: i64,
    status: String,
    message: Option<String>,
    agent_version: Option<String>,
    certificate_expires_at: Option<i64>,
}

pub async fn node_list(store: &Store, json: bool) -> anyhow::Result<()> {
    let rows: Vec<NodeRow> = store
        .nodes()
        .await?
        .into_iter()
        .map(|n| NodeRow {
            id: n.id,
            name: n.name,
            address: n.address,
            port: n.port,
            status: n.status,
            message: n.message,
            agent_version: n.agent_version,
            certificate_expires_at: n.certificate_not_after,
        })
        .collect();
    print_rows(
        json,
        &rows,
        &["ID", "NAME", "ADDRESS", "STATUS", "MESSAGE"],
        |n| {
            vec![
                n.id.to_string(),
                n.name.clone(),
                format!("{}:{}", n.address, n.port),
                n.status.clone(),
                n.message.clone().unwrap_or_default(),
            ]
        },
    )
}

/// Creates the sudo admin from NEXPOINT_SUDO_USERNAME/PASSWORD (or gives
/// the existing one that password), as `serve` does at every start.
pub async fn admin_import_from_env(store: &Store) -> anyhow::Result<()> {
    let username = std::env::var("NEXPOINT_SUDO_USERNAME")
        .map_err(|_| anyhow::anyhow!("NEXPOINT_SUDO_USERNAME is not set"))?;
    if nexpoint_config::env_secret("NEXPOINT_SUDO_PASSWORD")?.is_none() {
        anyhow::bail!("NEXPOINT_SUDO_PASSWORD (or its _FILE) is not set");
    }
    crate::serve::ensure_env_sudo_admin(store).await?;
    println!("sudo admin {username} is in place");
    Ok(())
}

/// `Conflict` as the exit status scripts check for "already exists".
pub fn already_exists(what: &str) -> anyhow::Error {
    conflict(format!("{what} already exists"))
}

/// Gives an admin a new password and/or sudo rights; tokens issued before
/// a password change stop working.
pub async fn admin_update(
    store: &Store,
    username: &str,
    password: Option<&str>,
    sudo: Option<bool>,
) -> anyhow::Result<()> {
    let admin = store
        .admin_by_username(username)
        .await?
        .ok_or_else(|| not_found(format!("no admin named {username:?}")))?;
    let hash = match password {
        Some(p) => Some(crate::api::hash_password(p).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
    };
    let update = crate::store::AdminUpdate {
        is_sudo: sudo.unwrap_or(admin.is_sudo),
        contact: crate::store::AdminContact {
            telegram_id: admin.telegram_id,
            discord_webhook: admin.discord_webhook,
        },
        hashed_password: hash.as_deref(),
    };
    let updated = store.update_admin(username, update).await?;
    println!(
        "updated {}admin {}",
        if updated.is_sudo { "sudo " } else { "" },
        updated.username
    );
    Ok(())
}
