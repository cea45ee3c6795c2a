//! The subscription page: what `GET /sub/{token}` answers a browser
//! (`Accept: text/html`), and the home page.
//!
//! Both are minijinja (Jinja2) templates. The built-in ones are compiled in
//! (`control-plane/templates/`); an operator overrides either by putting
//! `subscription/index.html` or `home/index.html` in the templates directory,
//! Marzban's layout (`CUSTOM_TEMPLATES_DIRECTORY`), so Marzban subscription
//! templates carry over. Their context has Marzban's `user` object:
//! `username`, `status`, `used_traffic`, `lifetime_used_traffic`,
//! `data_limit`, `data_limit_reset_strategy`, `expire`, `links`,
//! `subscription_url`, `note`, `online_at`, `sub_updated_at`,
//! `sub_last_user_agent`, `created_at`, `on_hold_expire_duration`,
//! `on_hold_timeout` and `auto_delete_in_days`. As in Marzban, `status` and
//! `data_limit_reset_strategy` render as their names and have a `.value`
//! (compare `user.status.value == 'active'`), `now()` is the current time
//! with `.timestamp()`, and the filters `filesizeformat`, `bytesformat`,
//! `datetime` and `urlencode` exist. The rest of the context (`links` with
//! their QR codes, `usage`, `expiry`, `apps`, `t` for the strings of `lang`,
//! ...) is what the built-in page uses.
//!
//! Every template is rendered with HTML auto-escaping on, whatever its name.

use std::collections::BTreeMap;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, UndefinedBehavior};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::domain::{ResetStrategy, UserStatus};
use crate::store::User;
use crate::subscription::endpoints::{days_left, readable_size};

mod marzban_compat;
use marzban_compat::{DateTime, EnumName, Now, filesizeformat, optional_int};

/// Where an operator's subscription page lives inside the templates directory.
pub const SUBSCRIPTION_TEMPLATE: &str = "subscription/index.html";
/// Where an operator's home page lives inside the templates directory.
pub const HOME_TEMPLATE: &str = "home/index.html";

const BUILTIN_SUBSCRIPTION: &str = include_str!("../../templates/subscription/index.html");
const BUILTIN_HOME: &str = include_str!("../../templates/home/index.html");
const TRANSLATIONS: &str = include_str!("../../templates/subscription/i18n.json");

/// What the subscription page shows.
pub struct PageContext<'a> {
    pub user: &'a crate::store::User,
    /// (remark, share link) of each working endpoint, in order.
    pub links: &'a [(String, String)],
    /// The absolute subscription URL (what apps import).
    pub subscription_url: &'a str,
    /// The raw Accept-Language header, "" if none.
    pub accept_language: &'a str,
    pub now: i64,
    /// Operator templates; None for the built-in page.
    pub templates_dir: Option<&'a std::path::Path>,
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A template failed to load, compile or render. `template` names the
    /// file (the operator's path, or `built-in <name>`); `message` has
    /// minijinja's reason and line.
    #[error("template {template}: {message}")]
    Template { template: String, message: String },
}

impl PageError {
    fn template(template: String, err: &Error) -> Self {
        // minijinja's Display has kind, detail and `(in name:line)`; an
        // error inside an included template is in the source chain.
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            source = inner.source();
        }
        PageError::Template { template, message }
    }
}

/// The languages of the built-in page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Fa,
    Ru,
    Zh,
}

impl Lang {
    pub const ALL: [Lang; 4] = [Lang::En, Lang::Fa, Lang::Ru, Lang::Zh];

    /// The ISO 639-1 code: `en`, `fa`, `ru` or `zh`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fa => "fa",
            Lang::Ru => "ru",
            Lang::Zh => "zh",
        }
    }

    /// The writing direction: `rtl` for Persian, `ltr` otherwise.
    pub fn dir(self) -> &'static str {
        match self {
            Lang::Fa => "rtl",
            _ => "ltr",
        }
    }

    /// The language of a BCP 47 tag (`fa-IR`, `zh-Hans-CN`, `ru`), by its
    /// primary subtag; `*` is the default.
    fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split(['-', '_']).next()?.trim().to_ascii_lowercase();
        Some(match primary.as_str() {
            "en" | "*" => Lang::En,
            "fa" | "fas" | "per" => Lang::Fa,
            "ru" | "rus" => Lang::Ru,
            "zh" | "zho" | "chi" => Lang::Zh,
            _ => return None,
        })
    }

    /// `s` with the digits this language writes: Persian digits (and
    /// decimal and percent signs) for `fa`, unchanged otherwise.
    pub fn digits(self, s: &str) -> String {
        if self != Lang::Fa {
            return s.to_owned();
        }
        let chars: Vec<char> = s.chars().collect();
        let digit = |i: usize| chars.get(i).is_some_and(|c| c.is_ascii_digit());
        chars
            .iter()
            .enumerate()
            .map(|(i, &c)| match c {
                '0'..='9' => char::from_u32(0x06F0 + (c as u32 - '0' as u32)).unwrap_or(c),
                '.' if i > 0 && digit(i - 1) && digit(i + 1) => '\u{066B}',
                '%' => '\u{066A}',
                _ => c,
            })
            .collect()
    }

    /// The CLDR plural category of a whole number `n`.
    fn plural(self, n: i64) -> &'static str {
        match self {
            Lang::En => {
                if n == 1 {
                    "one"
                } else {
                    "other"
                }
            }
            Lang::Ru => {
                let (n10, n100) = (n.abs() % 10, n.abs() % 100);
                if n10 == 1 && n100 != 11 {
                    "one"
                } else if (2..=4).contains(&n10) && !(12..=14).contains(&n100) {
                    "few"
                } else {
                    "many"
                }
            }
            Lang::Fa | Lang::Zh => "other",
        }
    }
}

/// The page language for an `Accept-Language` header: the supported
/// language with the highest q-value (the first of equals), English when
/// none is acceptable.
pub fn language(accept_language: &str) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for item in accept_language.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let mut q = 1.0_f32;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            if key.trim().eq_ignore_ascii_case("q") {
                q = value.trim().parse().unwrap_or(0.0);
            }
        }
        if q.is_nan() || q <= 0.0 {
            continue;
        }
        let Some(lang) = Lang::from_tag(tag) else {
            continue;
        };
        if best.is_none_or(|(best_q, _)| q > best_q) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, lang)| lang)
}

/// The page's strings in `lang`, English where a translation is missing.
fn strings(lang: Lang) -> &'static BTreeMap<String, String> {
    static TABLE: OnceLock<BTreeMap<String, BTreeMap<String, String>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut all: BTreeMap<String, BTreeMap<String, String>> =
            serde_json::from_str(TRANSLATIONS).expect("templates/subscription/i18n.json is valid");
        let en = all.get("en").cloned().unwrap_or_default();
        for table in all.values_mut() {
            for (key, value) in &en {
                table.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        all
    });
    table
        .get(lang.code())
        .or_else(|| table.get("en"))
        .expect("i18n.json has English")
}

fn tr(lang: Lang, key: &str) -> String {
    strings(lang)
        .get(key)
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

/// `key_<plural category>` (falling back to `key_other`) with `{n}` filled in.
fn tr_count(lang: Lang, key: &str, n: i64) -> String {
    let table = strings(lang);
    let pattern = table
        .get(&format!("{key}_{}", lang.plural(n)))
        .or_else(|| table.get(&format!("{key}_other")))
        .cloned()
        .unwrap_or_default();
    pattern.replace("{n}", &lang.digits(&n.to_string()))
}

/// A byte count as the page shows it (0 is "0 B", not "∞").
fn size(bytes: i64) -> String {
    if bytes <= 0 {
        "0 B".into()
    } else {
        readable_size(Some(bytes))
    }
}

/// What the usage line says: "used / limit", or "used / Unlimited".
pub fn usage_text(user: &User, lang: Lang) -> String {
    let limit = match user.data_limit.filter(|l| *l > 0) {
        Some(limit) => lang.digits(&size(limit)),
        None => tr(lang, "unlimited"),
    };
    format!(
        "\u{2068}{}\u{2069} / \u{2068}{}\u{2069}",
        lang.digits(&size(user.used_traffic)),
        limit
    )
}

fn usage(user: &User, lang: Lang) -> Value {
    let mut usage = BTreeMap::from([
        ("text", Value::from(usage_text(user, lang))),
        ("used", Value::from(lang.digits(&size(user.used_traffic)))),
    ]);
    match user.data_limit.filter(|l| *l > 0) {
        None => {
            usage.insert("unlimited", Value::from(true));
        }
        Some(limit) => {
            let used = user.used_traffic.max(0);
            let percent = (used.saturating_mul(100) / limit).clamp(0, 100);
            let level = match percent {
                0..70 => "ok",
                70..90 => "warn",
                _ => "danger",
            };
            let percent_text = lang.digits(&format!("{percent}%"));
            let left = lang.digits(&size((limit - used).max(0)));
            usage.extend([
                ("unlimited", Value::from(false)),
                ("limit", Value::from(lang.digits(&size(limit)))),
                ("percent", Value::from(percent)),
                ("level", Value::from(level)),
                (
                    "percent_text",
                    Value::from(tr(lang, "percent_used").replace("{p}", &percent_text)),
                ),
                (
                    "left_text",
                    Value::from(tr(lang, "remaining").replace("{size}", &left)),
                ),
            ]);
        }
    }
    Value::from(usage)
}

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MONTHS_RU: [&str; 12] = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
];
const MONTHS_FA: [&str; 12] = [
    "فروردین",
    "اردیبهشت",
    "خرداد",
    "تیر",
    "مرداد",
    "شهریور",
    "مهر",
    "آبان",
    "آذر",
    "دی",
    "بهمن",
    "اسفند",
];

/// The Solar Hijri (Jalali) date of a Gregorian one, as Iran's calendar has it.
pub fn jalali(year: i32, month: u8, day: u8) -> (i32, u8, u8) {
    const DAYS_BEFORE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let (gy, gm, gd) = (i64::from(year), usize::from(month), i64::from(day));
    let gy2 = if gm > 2 { gy + 1 } else { gy };
    let mut days = 355_666 + 365 * gy + (gy2 + 3) / 4 - (gy2 + 99) / 100
        + (gy2 + 399) / 400
        + gd
        + DAYS_BEFORE[gm.clamp(1, 12) - 1];
    let mut jy = -1595 + 33 * (days / 12_053);
    days %= 12_053;
    jy += 4 * (days / 1461);
    days %= 1461;
    if days > 365 {
        jy += (days - 1) / 365;
        days = (days - 1) % 365;
    }
    let (jm, jd) = if days < 186 {
        (1 + days / 31, 1 + days % 31)
    } else {
        (7 + (days - 186) / 30, 1 + (days - 186) % 30)
    };
    (jy as i32, jm as u8, jd as u8)
}

fn date_of(timestamp: i64) -> Option<time::Date> {
    time::OffsetDateTime::from_unix_timestamp(timestamp)
        .ok()
        .map(|d| d.date())
}

/// A date as people of `lang` write it (UTC), and for Persian the
/// Gregorian date besides the Jalali one.
fn local_date(timestamp: i64, lang: Lang) -> (String, Option<String>) {
    let Some(date) = date_of(timestamp) else {
        return (timestamp.to_string(), None);
    };
    let (y, m, d) = (date.year(), u8::from(date.month()), date.day());
    let iso = format!("{y:04}-{m:02}-{d:02}");
    match lang {
        Lang::En => (format!("{} {d}, {y}", MONTHS_EN[usize::from(m) - 1]), None),
        Lang::Ru => (format!("{d} {} {y}", MONTHS_RU[usize::from(m) - 1]), None),
        Lang::Zh => (format!("{y}年{m}月{d}日"), None),
        Lang::Fa => {
            let (jy, jm, jd) = jalali(y, m, d);
            let text = format!("{jd} {} {jy}", MONTHS_FA[usize::from(jm).clamp(1, 12) - 1]);
            (lang.digits(&text), Some(iso))
        }
    }
}

fn expiry(user: &User, lang: Lang, now: i64) -> Value {
    let mut out = BTreeMap::from([
        ("alt", Value::from(())),
        ("detail", Value::from(())),
        ("expired", Value::from(false)),
        ("days_left", Value::from(())),
    ]);
    let expire = user.expire.filter(|e| *e > 0);
    match expire {
        Some(expire) => {
            let (date, alt) = local_date(expire, lang);
            out.insert("text", Value::from(date));
            out.insert("alt", Value::from(alt));
            out.insert("never", Value::from(false));
            let detail = if expire <= now {
                out.insert("expired", Value::from(true));
                tr(lang, "expired")
            } else {
                let days = days_left(Some(expire), now).unwrap_or(0);
                out.insert("days_left", Value::from(days));
                tr_count(lang, "days_left", days)
            };
            out.insert("detail", Value::from(detail));
        }
        None if user.status == UserStatus::OnHold
            && user.on_hold_expire_duration.is_some_and(|d| d > 0) =>
        {
            let days = (user.on_hold_expire_duration.unwrap_or(0) + 86_399) / 86_400;
            out.insert("text", Value::from(tr(lang, "on_hold")));
            out.insert(
                "detail",
                Value::from(
                    tr(lang, "on_hold_period").replace("{days}", &tr_count(lang, "days", days)),
                ),
            );
            out.insert("never", Value::from(false));
        }
        None => {
            out.insert("text", Value::from(tr(lang, "never")));
            out.insert("detail", Value::from(tr(lang, "no_expiry")));
            out.insert("never", Value::from(true));
        }
    }
    Value::from(out)
}

/// Percent-encoding for a URL inside a query value (encodeURIComponent).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// An app the page offers one-tap import into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportApp {
    pub id: &'static str,
    pub name: &'static str,
    pub platforms: &'static str,
    /// The deep link that imports the subscription; `None` where the app has
    /// no URL scheme (the page copies the URL instead).
    pub href: Option<String>,
}

/// The import buttons for `url`, each with the app's documented URL scheme.
pub fn import_apps(url: &str, name: &str) -> Vec<ImportApp> {
    let (u, n) = (encode(url), encode(name));
    let app = |id, name, platforms, href: Option<String>| ImportApp {
        id,
        name,
        platforms,
        href,
    };
    vec![
        app(
            "v2rayng",
            "v2rayNG",
            "Android",
            Some(format!("v2rayng://install-sub?url={u}#{n}")),
        ),
        app(
            "hiddify",
            "Hiddify",
            "Android · iOS · Windows · macOS · Linux",
            Some(format!("hiddify://import/{url}#{n}")),
        ),
        app(
            "sing-box",
            "sing-box",
            "SFA · SFI · SFM",
            Some(format!("sing-box://import-remote-profile?url={u}#{n}")),
        ),
        app(
            "clash-meta",
            "Clash Meta",
            "Android · Windows · macOS · Linux",
            Some(format!("clash://install-config?url={u}&name={n}")),
        ),
        app(
            "streisand",
            "Streisand",
            "iOS · macOS",
            Some(format!("streisand://import/{url}#{n}")),
        ),
        app(
            "happ",
            "Happ",
            "iOS · Android",
            Some(format!("happ://add/{url}")),
        ),
        app(
            "shadowrocket",
            "Shadowrocket",
            "iOS",
            Some(format!("sub://{}#{n}", STANDARD.encode(url))),
        ),
        app("v2rayn", "v2rayN", "Windows · Linux · macOS", None),
    ]
}

/// `data` as a QR code: an inline `<svg>` (no XML declaration) of at least
/// 200×200 with its quiet zone, `None` when `data` is too long for one.
pub fn qr_svg(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build();
    let start = svg.find("<svg")?;
    Some(svg[start..].to_owned())
}

/// The environment every page renders in: HTML escaping for all templates,
/// and Marzban's helpers.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_filter("filesizeformat", filesizeformat);
    env.add_filter("bytesformat", |value: Value| -> String {
        readable_size(optional_int(&value))
    });
    env.add_filter(
        "datetime",
        |value: Value, format: Option<String>| -> String {
            match optional_int(&value) {
                Some(ts) => DateTime(ts).strftime(format.as_deref().unwrap_or("%Y-%m-%d %H:%M:%S")),
                None => String::new(),
            }
        },
    );
    env.add_filter("urlencode", |value: Value| -> String {
        encode(&value.to_string())
    });
    env
}

/// The built-in pages, compiled once.
fn builtin() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = environment();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template(SUBSCRIPTION_TEMPLATE, BUILTIN_SUBSCRIPTION)
            .expect("the built-in subscription page compiles");
        env.add_template(HOME_TEMPLATE, BUILTIN_HOME)
            .expect("the built-in home page compiles");
        env
    })
}

/// Renders `name`: the operator's file when `templates_dir` has it, the
/// built-in page otherwise.
fn render_template(
    templates_dir: Option<&Path>,
    name: &str,
    context: Value,
) -> Result<String, PageError> {
    let custom: Option<PathBuf> = templates_dir
        .map(|dir| dir.join(name))
        .filter(|path| path.is_file());
    match (custom, templates_dir) {
        (Some(path), Some(dir)) => {
            // A fresh environment each time: an edited template shows on the
            // next request, and `{% include %}` / `{% extends %}` resolve in
            // the operator's directory.
            let mut env = environment();
            env.set_loader(minijinja::path_loader(dir));
            let label = path.display().to_string();
            env.get_template(name)
                .and_then(|t| t.render(context))
                .map_err(|e| PageError::template(label, &e))
        }
        _ => builtin()
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| PageError::template(format!("built-in {name}"), &e)),
    }
}

/// The subscription page for `ctx.user` in the language of
/// `ctx.accept_language`.
pub fn render(ctx: &PageContext) -> Result<String, PageError> {
    render_template(ctx.templates_dir, SUBSCRIPTION_TEMPLATE, context(ctx))
}

/// The home page (`GET /`).
pub fn render_home(templates_dir: Option<&Path>) -> Result<String, PageError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let context = Value::from(BTreeMap::from([("now", Value::from_object(Now(now)))]));
    render_template(templates_dir, HOME_TEMPLATE, context)
}

fn context(ctx: &PageContext) -> Value {
    let lang = language(ctx.accept_language);
    let user = ctx.user;
    let t: BTreeMap<String, String> = strings(lang).clone();
    let status = user.status.as_str();

    let links: Vec<Value> = ctx
        .links
        .iter()
        .map(|(remark, url)| {
            Value::from(BTreeMap::from([
                ("remark", Value::from(remark.as_str())),
                ("url", Value::from(url.as_str())),
                ("qr", Value::from(qr_svg(url).map(Value::from_safe_string))),
            ]))
        })
        .collect();

    let apps: Vec<Value> = import_apps(ctx.subscription_url, &user.username)
        .into_iter()
        .map(|app| {
            Value::from(BTreeMap::from([
                ("id", Value::from(app.id)),
                ("name", Value::from(app.name)),
                ("platforms", Value::from(app.platforms)),
                ("href", Value::from(app.href)),
            ]))
        })
        .collect();

    let reset_label = match user.data_limit_reset_strategy {
        ResetStrategy::NoReset => None,
        _ if user.data_limit.filter(|l| *l > 0).is_none() => None,
        other => Some(tr(lang, &format!("reset_{}", other.as_str()))),
    };

    let datetime = |ts: Option<i64>| Value::from(ts.map(|ts| Value::from_object(DateTime(ts))));
    let marzban_user = Value::from(BTreeMap::from([
        ("username", Value::from(user.username.as_str())),
        ("status", Value::from_object(EnumName(status))),
        ("used_traffic", Value::from(user.used_traffic)),
        (
            "lifetime_used_traffic",
            Value::from(user.lifetime_used_traffic),
        ),
        ("data_limit", Value::from(user.data_limit)),
        (
            "data_limit_reset_strategy",
            Value::from_object(EnumName(user.data_limit_reset_strategy.as_str())),
        ),
        ("expire", Value::from(user.expire)),
        (
            "links",
            Value::from(
                ctx.links
                    .iter()
                    .map(|(_, url)| Value::from(url.as_str()))
                    .collect::<Vec<_>>(),
            ),
        ),
        ("subscription_url", Value::from(ctx.subscription_url)),
        ("note", Value::from(user.note.clone())),
        ("online_at", datetime(user.online_at)),
        ("sub_updated_at", datetime(user.sub_updated_at)),
        (
            "sub_last_user_agent",
            Value::from(user.sub_last_user_agent.clone()),
        ),
        ("created_at", datetime(Some(user.created_at))),
        (
            "on_hold_expire_duration",
            Value::from(user.on_hold_expire_duration),
        ),
        ("on_hold_timeout", datetime(user.on_hold_timeout)),
        ("auto_delete_in_days", Value::from(user.auto_delete_in_days)),
    ]));

    Value::from(BTreeMap::from([
        ("lang", Value::from(lang.code())),
        ("dir", Value::from(lang.dir())),
        ("t", Value::from(t)),
        ("user", marzban_user),
        ("status", Value::from(status)),
        (
            "status_label",
            Value::from(tr(lang, &format!("status_{status}"))),
        ),
        ("usage", usage(user, lang)),
        ("expiry", expiry(user, lang, ctx.now)),
        ("reset_label", Value::from(reset_label)),
        ("links", Value::from(links)),
        ("subscription_url", Value::from(ctx.subscription_url)),
        (
            "subscription_qr",
            Value::from(qr_svg(ctx.subscription_url).map(Value::from_safe_string)),
        ),
        ("apps", Value::from(apps)),
        ("now", Value::from_object(Now(ctx.now))),
    ]))
}

#[cfg(test)]
mod tests;
