//! The lifecycle columns of users, as the domain's `Account`: read (with
//! their counters from `user_traffic`), compared with their changed value,
//! and written back column by column, many users per statement.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::StoreError;
use super::user_changes::CHUNK;
use super::users::json_text;
use crate::domain::{Account, ResetStrategy, UserStatus};

pub(super) const ACCOUNT_COLUMNS: &str = "u.id, u.status, t.used_traffic, \
    t.lifetime_used_traffic, u.data_limit, u.expire, u.data_limit_reset_strategy, \
    u.last_usage_reset_at, u.created_at, u.on_hold_expire_duration, u.on_hold_timeout, \
    u.next_plan, t.online_at, u.auto_delete_in_days, u.last_status_change, u.deadline";

/// The tables [`ACCOUNT_COLUMNS`] come from.
pub(super) const ACCOUNT_FROM: &str = "users u JOIN user_traffic t ON t.user_id = u.id";

/// The columns usage ingestion keeps in `user_traffic`; the rest are on
/// `users`.
const COUNTER_COLUMNS: [&str; 3] = ["used_traffic", "lifetime_used_traffic", "online_at"];

fn decode_err(column: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.into(),
        source: e.to_string().into(),
    }
}

/// The earlier of two optional deadlines.
pub(super) fn earliest_of(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A row of [`ACCOUNT_COLUMNS`].
pub(super) struct StoredAccount {
    pub(super) id: i64,
    pub(super) account: Account,
    pub(super) deadline: Option<i64>,
}

pub(super) fn stored_account(row: &AnyRow) -> Result<StoredAccount, sqlx::Error> {
    let (id, account) = account_row(row)?;
    Ok(StoredAccount {
        id,
        account,
        deadline: row.try_get("deadline")?,
    })
}

/// The deadline to store for `account` written at `now`: when time alone
/// next changes it. Never `now` or earlier: a settled account has nothing
/// due, and if the rules ever disagreed the clock would look again a
/// second later instead of spinning.
pub(super) fn deadline_of(account: &Account, now: i64) -> Option<i64> {
    account.next_deadline(now).map(|d| d.max(now + 1))
}

/// The columns to write when `stored` becomes `after` at `now`: the
/// lifecycle columns that changed, and the deadline when it moved.
pub(super) fn lifecycle_diff(
    stored: &StoredAccount,
    after: &Account,
    now: i64,
) -> (Vec<(&'static str, Cell)>, Option<i64>) {
    let mut diff = account_diff(&stored.account, after);
    let deadline = deadline_of(after, now);
    if deadline != stored.deadline {
        diff.push(("deadline", Cell::Int(deadline)));
    }
    (diff, deadline)
}

/// (id, account) of a row of [`ACCOUNT_COLUMNS`].
fn account_row(row: &AnyRow) -> Result<(i64, Account), sqlx::Error> {
    let status: String = row.try_get("status")?;
    let strategy: String = row.try_get("data_limit_reset_strategy")?;
    let next_plan: Option<String> = row.try_get("next_plan")?;
    let account = Account {
        status: UserStatus::parse(&status).ok_or_else(|| decode_err("status", &status))?,
        used_traffic: row.try_get("used_traffic")?,
        lifetime_used_traffic: row.try_get("lifetime_used_traffic")?,
        data_limit: row.try_get("data_limit")?,
        expire: row.try_get("expire")?,
        data_limit_reset_strategy: ResetStrategy::parse(&strategy)
            .ok_or_else(|| decode_err("data_limit_reset_strategy", &strategy))?,
        last_usage_reset_at: row.try_get("last_usage_reset_at")?,
        created_at: row.try_get("created_at")?,
        on_hold_expire_duration: row.try_get("on_hold_expire_duration")?,
        on_hold_timeout: row.try_get("on_hold_timeout")?,
        next_plan: next_plan
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| decode_err("next_plan", e))?,
        online_at: row.try_get("online_at")?,
        auto_delete_in_days: row.try_get("auto_delete_in_days")?,
        last_status_change: row.try_get("last_status_change")?,
    };
    Ok((row.try_get("id")?, account))
}

/// A column's new value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

/// The lifecycle columns whose value differs from `before` to `after`,
/// with their new values.
fn account_diff(before: &Account, after: &Account) -> Vec<(&'static str, Cell)> {
    let mut diff = Vec::new();
    let mut int = |column, old: Option<i64>, new: Option<i64>| {
        if old != new {
            diff.push((column, Cell::Int(new)));
        }
    };
    int(
        "used_traffic",
        Some(before.used_traffic),
        Some(after.used_traffic),
    );
    int(
        "lifetime_used_traffic",
        Some(before.lifetime_used_traffic),
        Some(after.lifetime_used_traffic),
    );
    int("data_limit", before.data_limit, after.data_limit);
    int("expire", before.expire, after.expire);
    int(
        "last_usage_reset_at",
        before.last_usage_reset_at,
        after.last_usage_reset_at,
    );
    int(
        "on_hold_expire_duration",
        before.on_hold_expire_duration,
        after.on_hold_expire_duration,
    );
    int(
        "on_hold_timeout",
        before.on_hold_timeout,
        after.on_hold_timeout,
    );
    int("online_at", before.online_at, after.online_at);
    int(
        "auto_delete_in_days",
        before.auto_delete_in_days,
        after.auto_delete_in_days,
    );
    int(
        "last_status_change",
        before.last_status_change,
        after.last_status_change,
    );
    if before.status != after.status {
        diff.push(("status", Cell::Text(Some(after.status.as_str().into()))));
    }
    if before.data_limit_reset_strategy != after.data_limit_reset_strategy {
        let strategy = after.data_limit_reset_strategy.as_str().into();
        diff.push(("data_limit_reset_strategy", Cell::Text(Some(strategy))));
    }
    if before.next_plan != after.next_plan {
        diff.push((
            "next_plan",
            Cell::Text(after.next_plan.as_ref().map(json_text)),
        ));
    }
    diff
}

/// Writes the changed columns of many users. Users changed the same way (a
/// bulk reset: usage to 0, a new period from now) share one statement per
/// chunk of ids. `revision` goes to the rows whose status changed.
pub(super) async fn write_diffs(
    tx: &mut Transaction<'_, Any>,
    diffs: BTreeMap<Vec<(&'static str, Cell)>, Vec<i64>>,
    revision: Option<i64>,
) -> Result<(), StoreError> {
    for (diff, ids) in diffs {
        let revision = revision.filter(|_| diff.iter().any(|(c, _)| *c == "status"));
        let (counters, rest): (Vec<_>, Vec<_>) = diff
            .iter()
            .partition(|(column, _)| COUNTER_COLUMNS.contains(column));
        write_cells(tx, "user_traffic", "user_id", &counters, None, &ids).await?;
        // The list's sort key follows direct changes at once (see usage_order).
        let sort_key: Vec<_> = counters
            .iter()
            .copied()
            .filter(|(column, _)| *column == "used_traffic")
            .collect();
        write_cells(tx, "user_traffic_order", "user_id", &sort_key, None, &ids).await?;
        write_cells(tx, "users", "id", &rest, revision, &ids).await?;
    }
    Ok(())
}

/// Sets the same `cells` (and `revision`, if any) on the rows of `table`
/// whose `key` is one of `ids`.
async fn write_cells(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    key: &str,
    cells: &[&(&'static str, Cell)],
    revision: Option<i64>,
    ids: &[i64],
) -> Result<(), StoreError> {
    if cells.is_empty() && revision.is_none() {
        return Ok(());
    }
    let mut sets: Vec<String> = cells
        .iter()
        .enumerate()
        .map(|(i, (column, _))| format!("{column} = ${}", i + 1))
        .collect();
    if revision.is_some() {
        sets.push(format!("revision = ${}", sets.len() + 1));
    }
    let first_id = sets.len() + 1;
    for chunk in ids.chunks(CHUNK) {
        let placeholders = (0..chunk.len())
            .map(|i| format!("${}", first_id + i))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "UPDATE {table} SET {} WHERE {key} IN ({placeholders})",
            sets.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (_, cell) in cells {
            query = match cell {
                Cell::Int(v) => query.bind(*v),
                Cell::Text(v) => query.bind(v.clone()),
            };
        }
        if let Some(revision) = revision {
            query = query.bind(revision);
        }
        for id in chunk {
            query = query.bind(*id);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}
