//! What Marzban's Jinja2 subscription templates expect of their context:
//! enums that render as their names with a `.value`, datetimes with
//! `strftime` and `.timestamp()`, `now()`, and the `filesizeformat` filter
//! with Jinja2's output.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Kwargs, Object, ObjectRepr, Value};
use minijinja::{Error, ErrorKind, State};

/// A Marzban enum (`user.status`): renders as its name, `.value` is the name.
#[derive(Debug)]
pub(super) struct EnumName(pub(super) &'static str);

impl Object for EnumName {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "value" | "name" => Some(Value::from(self.0)),
            _ => None,
        }
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A point in time (UTC): renders as `YYYY-MM-DD HH:MM:SS`, has
/// `.timestamp()`, `.strftime(fmt)` and `.year` ... `.second`.
#[derive(Debug)]
pub(super) struct DateTime(pub(super) i64);

impl DateTime {
    fn parts(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::from_unix_timestamp(self.0).ok()
    }

    pub(super) fn strftime(&self, format: &str) -> String {
        let Some(t) = self.parts() else {
            return self.0.to_string();
        };
        let mut out = String::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('Y') => out.push_str(&format!("{:04}", t.year())),
                Some('m') => out.push_str(&format!("{:02}", u8::from(t.month()))),
                Some('d') => out.push_str(&format!("{:02}", t.day())),
                Some('H') => out.push_str(&format!("{:02}", t.hour())),
                Some('M') => out.push_str(&format!("{:02}", t.minute())),
                Some('S') => out.push_str(&format!("{:02}", t.second())),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        out
    }
}

impl Object for DateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let t = self.parts()?;
        Some(Value::from(match key.as_str()? {
            "year" => i64::from(t.year()),
            "month" => i64::from(u8::from(t.month())),
            "day" => i64::from(t.day()),
            "hour" => i64::from(t.hour()),
            "minute" => i64::from(t.minute()),
            "second" => i64::from(t.second()),
            _ => return None,
        }))
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "timestamp" => Ok(Value::from(self.0 as f64)),
            "strftime" => {
                let format = args.first().and_then(|v| v.as_str()).ok_or_else(|| {
                    Error::new(ErrorKind::MissingArgument, "strftime takes a format")
                })?;
                Ok(Value::from(self.strftime(format)))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.strftime("%Y-%m-%d %H:%M:%S"))
    }
}

/// `now()`: Marzban's `datetime.utcnow`, fixed at the request's time.
#[derive(Debug)]
pub(super) struct Now(pub(super) i64);

impl Object for Now {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn call(self: &Arc<Self>, _state: &mut State<'_, '_>, _args: &[Value]) -> Result<Value, Error> {
        Ok(Value::from_object(DateTime(self.0)))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&DateTime(self.0).strftime("%Y-%m-%d %H:%M:%S"))
    }
}

/// Jinja2's `filesizeformat`: decimal units (`kB`) unless `binary` (`KiB`).
pub(super) fn filesizeformat(
    value: Value,
    binary: Option<bool>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let binary = match kwargs.get::<Option<bool>>("binary")? {
        Some(b) => b,
        None => binary.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let bytes = f64::try_from(value).unwrap_or(0.0);
    let (base, prefixes) = if binary {
        (
            1024.0,
            ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"],
        )
    } else {
        (1000.0, ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"])
    };
    if bytes == 1.0 {
        return Ok("1 Byte".into());
    }
    if bytes < base {
        return Ok(format!("{} Bytes", bytes as i64));
    }
    let mut unit = base;
    for prefix in prefixes {
        unit *= base;
        if bytes < unit || prefix == prefixes[prefixes.len() - 1] {
            return Ok(format!("{:.1} {prefix}", base * bytes / unit));
        }
    }
    unreachable!("the loop returns at the last prefix")
}

pub(super) fn optional_int(value: &Value) -> Option<i64> {
    if value.is_none() || value.is_undefined() {
        return None;
    }
    i64::try_from(value.clone())
        .ok()
        .or_else(|| f64::try_from(value.clone()).ok().map(|f| f as i64))
}
