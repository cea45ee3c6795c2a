//! The `?start&end` period of the usage endpoints.

use serde::Deserialize;

use super::ApiError;
use crate::store::now;

/// Without `start`, usage covers the last 30 days (Marzban's default).
pub const DEFAULT_PERIOD_SECS: i64 = 30 * 24 * 3600;

/// ISO 8601 datetimes (UTC when naive); empty or absent means the default.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsagePeriod {
    /// Start of the period; default 30 days ago.
    pub start: Option<String>,
    /// End of the period; default now.
    pub end: Option<String>,
}

impl UsagePeriod {
    /// The period as unix seconds, `start <= end`.
    pub fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let parse = |field: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    crate::time_fmt::parse_iso_utc(v).ok_or_else(|| {
                        ApiError::validation(field, "must be an ISO 8601 date and time")
                    })
                })
                .transpose()
        };
        let end = parse("end", &self.end)?.unwrap_or_else(now);
        let start = parse("start", &self.start)?.unwrap_or_else(|| now() - DEFAULT_PERIOD_SECS);
        if end < start {
            return Err(ApiError::validation("end", "must not be before start"));
        }
        Ok((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(start: Option<&str>, end: Option<&str>) -> UsagePeriod {
        UsagePeriod {
            start: start.map(Into::into),
            end: end.map(Into::into),
        }
    }

    #[test]
    fn defaults_to_the_last_30_days() {
        let (start, end) = period(None, Some("")).resolve().unwrap();
        assert!((end - now()).abs() <= 1);
        assert_eq!(end - start, DEFAULT_PERIOD_SECS);
    }

    #[test]
    fn parses_and_orders() {
        let (start, end) = period(Some("2024-05-01T00:00:00"), Some("2024-05-02T00:00:00Z"))
            .resolve()
            .unwrap();
        assert_eq!((start, end), (1_714_521_600, 1_714_608_000));
        for (p, field) in [
            (period(Some("yesterday"), None), "start"),
            (period(None, Some("2024-13-01T00:00:00")), "end"),
            (
                period(Some("2024-05-02T00:00:00"), Some("2024-05-01T00:00:00")),
                "end",
            ),
        ] {
            match p.resolve() {
                Err(ApiError::Validation { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }
}
