//! How commands answer: aligned tables for people, JSON for scripts
//! (`--json`), and exit statuses a script can branch on.

use std::fmt;

use serde::Serialize;

/// Exit statuses beyond success (0), any other failure (1) and a usage
/// error (2, from clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 3: what the command names does not exist.
    NotFound,
    /// 4: what the command would create already exists.
    Conflict,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
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
        assert_eq!(exit_code(&anyhow::anyhow!("x")), 1);
    }
}
