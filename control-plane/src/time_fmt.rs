//! Datetimes in Marzban's JSON shape: naive ISO 8601 in UTC.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const NAIVE: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

pub fn iso_utc(unix_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(NAIVE)
        .expect("a fixed format always formats")
}

/// Accepts RFC 3339 (with an offset) or a naive datetime taken as UTC.
pub fn parse_iso_utc(value: &str) -> Option<i64> {
    if let Ok(t) = OffsetDateTime::parse(value, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let naive = value.split('.').next()?;
    PrimitiveDateTime::parse(naive, NAIVE)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00");
        assert_eq!(parse_iso_utc("2024-05-01T12:30:00"), Some(1_714_566_600));
        assert_eq!(
            parse_iso_utc("2024-05-01T12:30:00.123456"),
            Some(1_714_566_600)
        );
        assert_eq!(
            parse_iso_utc("2024-05-01T14:30:00+02:00"),
            Some(1_714_566_600)
        );
        assert_eq!(parse_iso_utc("yesterday"), None);
    }
}
