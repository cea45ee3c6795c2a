//! The filtered, sorted, paginated users list (`GET /api/users`).

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, FromRow, Row};

use super::users::SELECT;
use super::{Backend, Store, StoreError, User};
use crate::domain::UserStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Username,
    UsedTraffic,
    DataLimit,
    Expire,
    CreatedAt,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "username" => Self::Username,
            "used_traffic" => Self::UsedTraffic,
            "data_limit" => Self::DataLimit,
            "expire" => Self::Expire,
            "created_at" => Self::CreatedAt,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Self::Username => "u.username_lower",
            // A copy of t.used_traffic that ingestion does not write (see
            // store/usage_order.rs).
            Self::UsedTraffic => "o.used_traffic",
            Self::DataLimit => "u.data_limit",
            Self::Expire => "u.expire",
            Self::CreatedAt => "u.created_at",
        }
    }

    /// The id column of the table the key lives on: the tiebreak that lets
    /// an index on (key, id) yield the page without sorting.
    fn id_column(self) -> &'static str {
        match self {
            Self::UsedTraffic => "o.user_id",
            _ => "u.id",
        }
    }

    fn nullable(self) -> bool {
        matches!(self, Self::DataLimit | Self::Expire)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    /// Exact usernames (case-insensitive); empty = any.
    pub usernames: Vec<String>,
    /// Substring of the username or the note (case-insensitive).
    pub search: Option<String>,
    /// Usernames of owning admins; empty = any.
    pub admins: Vec<String>,
    /// Only users owned by this admin id (non-sudo callers).
    pub owner_id: Option<i64>,
    pub status: Option<UserStatus>,
    pub sort: Vec<Sort>,
    pub offset: i64,
    pub limit: Option<i64>,
}

/// SQL text with its arguments, numbered in the order they appear.
#[derive(Default)]
struct Sql {
    text: String,
    args: AnyArguments<'static>,
    count: usize,
}

impl Sql {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn int(&mut self, v: i64) {
        self.count += 1;
        self.text.push_str(&format!("${}", self.count));
        self.args.add(v).expect("i64 encodes");
    }

    fn text_arg(&mut self, v: String) {
        self.count += 1;
        self.text.push_str(&format!("${}", self.count));
        self.args.add(v).expect("String encodes");
    }

    fn list(&mut self, values: &[String]) {
        self.push("(");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text_arg(v.clone());
        }
        self.push(")");
    }
}

/// LIKE pattern for a substring, with the pattern characters escaped.
fn contains_pattern(s: &str) -> String {
    let escaped = s
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Trigram indexes answer substrings of three characters or more; shorter
/// ones (rare, and matching many rows anyway) fall back to a scan.
const TRIGRAM: usize = 3;

fn search_clause(sql: &mut Sql, search: &str, backend: Backend) {
    let pattern = contains_pattern(search);
    match backend {
        Backend::Sqlite if search.chars().count() >= TRIGRAM => {
            // An FTS5 phrase over the trigram index is a substring match in
            // either column, case-insensitively.
            sql.push(" AND u.id IN (SELECT rowid FROM users_search WHERE users_search MATCH ");
            sql.text_arg(format!("\"{}\"", search.replace('"', "\"\"")));
            sql.push(")");
        }
        // SQLite's LIKE already ignores ASCII case.
        Backend::Sqlite => {
            sql.push(" AND (u.username_lower LIKE ");
            sql.text_arg(pattern.clone());
            sql.push(" ESCAPE '\\' OR u.note LIKE ");
            sql.text_arg(pattern);
            sql.push(" ESCAPE '\\')");
        }
        // The matches, found first by [`search_hits`].
        Backend::Postgres => sql.push(" AND u.id IN (SELECT user_id FROM search_hits)"),
    }
}

/// PostgreSQL: the users a search matches, as a CTE that must start the
/// query. pg_trgm's GIN indexes on user_search (migration 0006) serve LIKE
/// and ILIKE; shorter patterns scan that narrow table instead. Materialized
/// because, left to itself, the planner walks the sort index and tests
/// every user against the search: 100x slower when a few hundred match.
fn search_hits(sql: &mut Sql, f: &UserFilter, backend: Backend) {
    let Some(search) = f.search.as_deref().filter(|s| !s.is_empty()) else {
        return;
    };
    if backend != Backend::Postgres {
        return;
    }
    let pattern = contains_pattern(search);
    sql.push(
        "WITH search_hits AS MATERIALIZED (SELECT s.user_id FROM user_search s \
         WHERE s.username_lower LIKE ",
    );
    sql.text_arg(pattern.clone());
    sql.push(" ESCAPE '\\' OR s.note ILIKE ");
    sql.text_arg(pattern);
    sql.push(" ESCAPE '\\') ");
}

fn where_clause(sql: &mut Sql, f: &UserFilter, backend: Backend) {
    sql.push(" WHERE 1 = 1");
    if !f.usernames.is_empty() {
        let lower: Vec<String> = f.usernames.iter().map(|u| u.to_lowercase()).collect();
        sql.push(" AND u.username_lower IN ");
        sql.list(&lower);
    }
    if let Some(search) = f.search.as_deref().filter(|s| !s.is_empty()) {
        search_clause(sql, search, backend);
    }
    if !f.admins.is_empty() {
        let lower: Vec<String> = f.admins.iter().map(|a| a.to_lowercase()).collect();
        sql.push(" AND a.username_lower IN ");
        sql.list(&lower);
    }
    if let Some(owner) = f.owner_id {
        sql.push(" AND u.admin_id = ");
        sql.int(owner);
    }
    if let Some(status) = f.status {
        sql.push(" AND u.status = ");
        sql.text_arg(status.as_str().to_owned());
    }
}

impl Store {
    /// The total from the trigger-maintained counts when the filter is only
    /// by owner and status: the common dashboard page then never counts rows.
    async fn maintained_total(&self, f: &UserFilter) -> Result<Option<i64>, StoreError> {
        let only_owner_and_status = f.usernames.is_empty()
            && f.admins.is_empty()
            && f.search.as_deref().is_none_or(str::is_empty);
        if !only_owner_and_status {
            return Ok(None);
        }
        let counts = self.user_counts(f.owner_id).await?;
        Ok(Some(match f.status {
            None => counts.total,
            Some(UserStatus::Active) => counts.active,
            Some(UserStatus::OnHold) => counts.on_hold,
            Some(UserStatus::Disabled) => counts.disabled,
            Some(UserStatus::Expired) => counts.expired,
            Some(UserStatus::Limited) => counts.limited,
        }))
    }

    /// One page of users and the total matching the filter.
    pub async fn list_users(&self, f: &UserFilter) -> Result<(Vec<User>, i64), StoreError> {
        // Without a maintained count (a search, or a filter by names), the
        // page query counts its matches too: the search runs once, not twice.
        let maintained = self.maintained_total(f).await?;
        let mut page = Sql::default();
        search_hits(&mut page, f, self.backend);
        match maintained {
            Some(_) => page.push(SELECT),
            None => {
                let (columns, from) = SELECT
                    .split_once(" FROM users u")
                    .expect("SELECT reads from users u");
                page.push(columns);
                page.push(", CAST(COUNT(*) OVER () AS BIGINT) AS total_matching FROM users u");
                page.push(from);
            }
        }
        if f.sort.iter().any(|s| s.key == SortKey::UsedTraffic) {
            page.push(" JOIN user_traffic_order o ON o.user_id = u.id");
        }
        where_clause(&mut page, f, self.backend);
        page.push(" ORDER BY ");
        for s in &f.sort {
            page.push(s.key.column());
            page.push(if s.descending { " DESC" } else { " ASC" });
            // One NULL order on both backends: "none" sorts as the largest.
            if s.key.nullable() {
                page.push(if s.descending {
                    " NULLS FIRST"
                } else {
                    " NULLS LAST"
                });
            }
            page.push(", ");
        }
        // The tiebreak follows the last key's direction so that an index on
        // (key, id) yields the page without sorting.
        let last = f.sort.last();
        page.push(last.map_or("u.id", |s| s.key.id_column()));
        page.push(if last.is_some_and(|s| s.descending) {
            " DESC"
        } else {
            " ASC"
        });
        if let Some(limit) = f.limit {
            page.push(" LIMIT ");
            page.int(limit);
        } else {
            // Both backends need a LIMIT before OFFSET; -1 / ALL differ, so
            // use the largest value.
            page.push(" LIMIT ");
            page.int(i64::MAX);
        }
        page.push(" OFFSET ");
        page.int(f.offset);
        let rows = sqlx::query_with::<Any, _>(&page.text, page.args)
            .fetch_all(&self.pool)
            .await?;
        let total = match (maintained, rows.first()) {
            (Some(total), _) => total,
            (None, Some(row)) => row.try_get("total_matching")?,
            // A page past the end says nothing of the total: count.
            (None, None) if f.offset > 0 => self.count_matching(f).await?,
            (None, None) => 0,
        };
        let users = rows
            .iter()
            .map(User::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((users, total))
    }

    async fn count_matching(&self, f: &UserFilter) -> Result<i64, StoreError> {
        let mut count = Sql::default();
        search_hits(&mut count, f, self.backend);
        count.push("SELECT CAST(COUNT(*) AS BIGINT) FROM users u");
        if !f.admins.is_empty() {
            count.push(" LEFT JOIN admins a ON a.id = u.admin_id");
        }
        where_clause(&mut count, f, self.backend);
        Ok(
            sqlx::query_scalar_with::<Any, i64, _>(&count.text, count.args)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
