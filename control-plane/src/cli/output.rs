//! How commands answer: aligned tables for people, JSON for scripts
//! (`--json`), and exit statuses a script can branch on.

use std::fmt;

use serde::Serialize;

/// Exit statuses beyond success (0) and any other failure (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 2: bad input, as clap's own usage errors.
    Usage,
    /// 3: what the command names does not exist.
    NotFound,
    /// 4: what the command would create already exists.
    Conflict,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Self::Usage => 2,
            Self::NotFound => 3,
            Self::Conflict => 4,
        }
    }
}

/// An error that picks its exit status; any other error exits with 1.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub fn not_found(message: impl Into<String>) -> anyhow::Error {
    Failure {
        exit: Exit::NotFound,
        message: message.into(),
    }
    .into()
}

pub fn conflict(message: impl Into<String>) -> anyhow::Error {
    Failure {
        exit: Exit::Conflict,
        message: message.into(),
    }
    .into()
}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Failure {
        exit: Exit::Usage,
        message: message.into(),
    }
    .into()
}

/// An API rule's refusal with the exit status that says what kind it is:
/// bad input 2, not found 3, already exists 4. `flag` names the option a
/// refused API field came from.
pub fn api_failure(
    error: crate::api::ApiError,
    flag: impl Fn(&str) -> Option<&'static str>,
) -> anyhow::Error {
    use crate::api::ApiError;
    match error {
        ApiError::Validation { field, message } => match flag(&field) {
            Some(flag) => usage(format!("invalid {field} ({flag}): {message}")),
            None => usage(format!("invalid {field}: {message}")),
        },
        ApiError::BadRequest(m) => usage(m),
        ApiError::NotFound(m) => not_found(m),
        ApiError::Conflict(m) => conflict(m),
        ApiError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    }
}

/// The exit status for an error `run` returned.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error.downcast_ref::<Failure>().map_or(1, |f| f.exit.code())
}

/// Rows printed as JSON (an array) or as a table with `headers`.
pub fn print_rows<T: Serialize>(
    json: bool,
    rows: &[T],
    headers: &[&str],
    cells: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    let body: Vec<Vec<String>> = rows.iter().map(cells).collect();
    print!("{}", table(headers, &body));
    Ok(())
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["alice".to_owned(), "active".to_owned()],
            vec!["b".to_owned(), "on_hold".to_owned()],
        ];
        assert_eq!(
            table(&["USERNAME", "STATUS"], &rows),
            "USERNAME  STATUS\nalice     active\nb         on_hold\n"
        );
    }

    #[test]
    fn failures_pick_their_exit_status() {
        assert_eq!(exit_code(&not_found("x")), 3);
        assert_eq!(exit_code(&conflict("x")), 4);
        assert_eq!(exit_code(&usage("x")), 2);
        let refused = crate::api::ApiError::validation("data_limit", "must not be negative");
        let e = api_failure(refused, |f| (f == "data_limit").then_some("--data-limit"));
        assert_eq!(exit_code(&e), 2);
        assert_eq!(
            e.to_string(),
            "invalid data_limit (--data-limit): must not be negative"
        );
        assert_eq!(exit_code(&anyhow::anyhow!("x")), 1);
    }
}
