//! What people type for sizes, dates and durations, turned into the API's
//! bytes and Unix seconds.

/// Bytes: a plain number, or a number with a unit (B, KB, MB, GB, TB; a
/// unit is 1024 of the one before, as Marzban's dashboard counts; KiB and
/// friends mean the same). `1.5GB` is allowed.
pub fn size(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let power = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 1,
        "M" | "MB" | "MIB" => 2,
        "G" | "GB" | "GIB" => 3,
        "T" | "TB" | "TIB" => 4,
        other => return Err(format!("unknown unit {other:?}; use B, KB, MB, GB or TB")),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 10GB or 1073741824"))?;
    let bytes = (number * 1024f64.powi(power)).round();
    if !(0.0..=i64::MAX as f64).contains(&bytes) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as i64)
}

/// Seconds: a number of days (`30`), or a number with a unit: s, m, h, d, w.
pub fn duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        _ => (text, 'd'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(format!("unknown unit in {text:?}; use s, m, h, d or w")),
    };
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30 (days), 12h or 2w"))?;
    number
        .checked_mul(scale)
        .filter(|s| *s >= 0)
        .ok_or_else(|| format!("{text:?} is out of range"))
}

/// A point in time: a date (`2026-12-31`, midnight UTC), a date and time
/// (ISO 8601, UTC unless it has an offset), or a duration from `now`
/// (`30` days, `12h`, see [`duration`]).
pub fn when(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Some(at) = crate::time_fmt::parse_iso_utc(text) {
        return Ok(at);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_format) {
        return Ok(date.midnight().assume_utc().unix_timestamp());
    }
    duration(text)
        .map(|d| now + d)
        .map_err(|_| format!("{text:?} is not a date (2026-12-31), a date and time, or days (30)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(size("1073741824"), Ok(1 << 30));
        assert_eq!(size("10GB"), Ok(10 << 30));
        assert_eq!(size("10 gib"), Ok(10 << 30));
        assert_eq!(size("1.5G"), Ok(3 << 29));
        assert_eq!(size("512MB"), Ok(512 << 20));
        assert_eq!(size("0"), Ok(0));
        assert!(size("10XB").unwrap_err().contains("unknown unit"));
        assert!(size("-1GB").is_err());
        assert!(size("GB").is_err());
        assert!(size("99999999999TB").unwrap_err().contains("out of range"));
    }

    #[test]
    fn durations_default_to_days() {
        assert_eq!(duration("30"), Ok(30 * 86_400));
        assert_eq!(duration("12h"), Ok(12 * 3600));
        assert_eq!(duration("2w"), Ok(14 * 86_400));
        assert!(duration("3y").is_err());
        assert!(duration("-1").is_err());
        assert!(duration("soon").is_err());
    }

    #[test]
    fn points_in_time_are_dates_datetimes_or_days_from_now() {
        assert_eq!(when("2024-05-01", 0), Ok(1_714_521_600));
        assert_eq!(when("2024-05-01T12:30:00", 0), Ok(1_714_566_600));
        assert_eq!(when("2024-05-01T14:30:00+02:00", 0), Ok(1_714_566_600));
        assert_eq!(when("30", 1000), Ok(1000 + 30 * 86_400));
        assert_eq!(when("1h", 1000), Ok(4600));
        assert!(when("next tuesday", 0).is_err());
    }
}
