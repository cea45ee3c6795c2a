use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::auth::SudoAdmin;
use super::extract::Json;
use super::openapi::Detail;
use super::system::Ordered;
use super::{ApiError, AppState};
use crate::store::{Host, NewHost};

pub const SECURITIES: [&str; 3] = ["inbound_default", "none", "tls"];
pub const ALPNS: [&str; 7] = [
    "",
    "h3",
    "h2",
    "http/1.1",
    "h3,h2,http/1.1",
    "h3,h2",
    "h2,http/1.1",
];
pub const FINGERPRINTS: [&str; 11] = [
    "",
    "chrome",
    "firefox",
    "safari",
    "ios",
    "android",
    "edge",
    "360",
    "qq",
    "random",
    "randomized",
];

/// Marzban's ProxyHost as clients send it; null means the default.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ProxyHostInput {
    /// May use {USERNAME}, {PROTOCOL}, {TRANSPORT}, ... variables.
    remark: String,
    /// Comma-separated for a random pick; `*` is a random salt.
    address: String,
    port: Option<i64>,
    sni: Option<String>,
    host: Option<String>,
    path: Option<String>,
    /// inbound_default (default), none or tls.
    security: Option<String>,
    alpn: Option<String>,
    fingerprint: Option<String>,
    allowinsecure: Option<bool>,
    is_disabled: Option<bool>,
    mux_enable: Option<bool>,
    /// length,interval,packets, e.g. "10-100,100-200,tlshello".
    fragment_setting: Option<String>,
    /// packet,delay items joined by &, e.g. "rand:10-20,100-200".
    noise_setting: Option<String>,
    random_user_agent: Option<bool>,
    use_sni_as_host: Option<bool>,
}

/// Marzban's ProxyHost.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProxyHost {
    remark: String,
    address: String,
    port: Option<i64>,
    sni: Option<String>,
    host: Option<String>,
    path: Option<String>,
    security: String,
    alpn: String,
    fingerprint: String,
    allowinsecure: Option<bool>,
    is_disabled: bool,
    mux_enable: bool,
    fragment_setting: Option<String>,
    noise_setting: Option<String>,
    random_user_agent: bool,
    use_sni_as_host: bool,
}

impl From<Host> for ProxyHost {
    fn from(h: Host) -> Self {
        Self {
            remark: h.remark,
            address: h.address,
            port: h.port,
            sni: h.sni,
            host: h.host,
            path: h.path,
            security: h.security,
            alpn: h.alpn,
            fingerprint: h.fingerprint,
            allowinsecure: h.allowinsecure,
            is_disabled: h.is_disabled,
            mux_enable: h.mux_enable,
            fragment_setting: h.fragment_setting,
            noise_setting: h.noise_setting,
            random_user_agent: h.random_user_agent,
            use_sni_as_host: h.use_sni_as_host,
        }
    }
}

type HostsByTag = Ordered<Vec<ProxyHost>>;

/// Every inbound tag of the core config, each with its hosts (maybe none).
async fn hosts_by_tag(state: &AppState) -> Result<HostsByTag, ApiError> {
    let hosts = state.store.hosts().await?;
    let by_tag = state
        .store
        .inbounds()
        .await?
        .iter()
        .map(|inbound| {
            let of_tag = hosts
                .iter()
                .filter(|h| h.inbound_tag == inbound.tag)
                .cloned()
                .map(ProxyHost::from)
                .collect();
            (inbound.tag.clone(), of_tag)
        })
        .collect();
    Ok(Ordered(by_tag))
}

#[utoipa::path(get, path = "/hosts", tag = "System",
    responses((status = 200, body = HashMap<String, Vec<ProxyHost>>,
        description = "Hosts by inbound tag, every tag of the core config listed"),
        (status = 401, body = Detail), (status = 403, body = Detail)))]
pub async fn list(
    State(state): State<AppState>,
    _: SudoAdmin,
) -> Result<Json<HostsByTag>, ApiError> {
    Ok(Json(hosts_by_tag(&state).await?))
}

#[utoipa::path(put, path = "/hosts", tag = "System",
    request_body = HashMap<String, Vec<ProxyHostInput>>,
    responses((status = 200, body = HashMap<String, Vec<ProxyHost>>),
        (status = 400, body = Detail, description = "An inbound tag that does not exist"),
        (status = 403, body = Detail), (status = 422, body = Detail)))]
/// Replaces the hosts of each inbound tag given; tags left out keep theirs.
pub async fn replace(
    State(state): State<AppState>,
    _: SudoAdmin,
    Json(body): Json<BTreeMap<String, Vec<ProxyHostInput>>>,
) -> Result<Json<HostsByTag>, ApiError> {
    let mut changes = Vec::with_capacity(body.len());
    for (tag, hosts) in body {
        let hosts = hosts
            .into_iter()
            .enumerate()
            .map(|(i, h)| checked(h).map_err(|(field, m)| located(field, &m, &tag, i)))
            .collect::<Result<Vec<_>, _>>()?;
        changes.push((tag, hosts));
    }
    let inbounds = state.store.inbounds().await?;
    if let Some((tag, _)) = changes
        .iter()
        .find(|(tag, _)| !inbounds.iter().any(|i| &i.tag == tag))
    {
        return Err(ApiError::BadRequest(format!("Inbound {tag} doesn't exist")));
    }
    state.store.replace_hosts(&changes).await?;
    tracing::info!(tags = changes.len(), "hosts replaced");
    Ok(Json(hosts_by_tag(&state).await?))
}

fn located(field: &'static str, message: &str, tag: &str, index: usize) -> ApiError {
    ApiError::validation(field, format!("{message} (host {index} of {tag:?})"))
}

type Invalid = (&'static str, String);

fn checked(h: ProxyHostInput) -> Result<NewHost, Invalid> {
    let text = |field: &'static str, value: Option<String>, max: usize| {
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err((field, format!("must be at most {max} characters")));
        }
        Ok(value)
    };
    let one_of = |field: &'static str, value: Option<String>, allowed: &[&str], default: &str| {
        let value = value.unwrap_or_else(|| default.to_owned());
        if allowed.contains(&value.as_str()) {
            Ok(value)
        } else {
            Err((field, format!("must be one of {allowed:?}")))
        }
    };
    let remark = text("remark", Some(h.remark), 256)?.unwrap_or_default();
    format_variables(&remark).map_err(|m| ("remark", m))?;
    let address = text("address", Some(h.address), 256)?.unwrap_or_default();
    if address.trim().is_empty() {
        return Err(("address", "must not be empty".into()));
    }
    format_variables(&address).map_err(|m| ("address", m))?;
    if h.port.is_some_and(|p| !(1..=65535).contains(&p)) {
        return Err(("port", "must be between 1 and 65535".into()));
    }
    let fragment_setting =
        text("fragment_setting", h.fragment_setting, 100)?.filter(|v| !v.is_empty());
    if fragment_setting.as_deref().is_some_and(|v| !is_fragment(v)) {
        return Err((
            "fragment_setting",
            "must be length,interval,packets like 10-100,100-200,tlshello".into(),
        ));
    }
    let noise_setting = text("noise_setting", h.noise_setting, 2000)?.filter(|v| !v.is_empty());
    if noise_setting.as_deref().is_some_and(|v| !is_noise(v)) {
        return Err((
            "noise_setting",
            "must be packet,delay items joined by & like rand:10-20,100-200".into(),
        ));
    }
    Ok(NewHost {
        remark,
        address,
        port: h.port,
        sni: text("sni", h.sni, 1000)?,
        host: text("host", h.host, 1000)?,
        path: text("path", h.path, 256)?,
        security: one_of("security", h.security, &SECURITIES, "inbound_default")?,
        alpn: one_of("alpn", h.alpn, &ALPNS, "")?,
        fingerprint: one_of("fingerprint", h.fingerprint, &FINGERPRINTS, "")?,
        allowinsecure: h.allowinsecure,
        is_disabled: h.is_disabled.unwrap_or(false),
        mux_enable: h.mux_enable.unwrap_or(false),
        fragment_setting,
        noise_setting,
        random_user_agent: h.random_user_agent.unwrap_or(false),
        use_sni_as_host: h.use_sni_as_host.unwrap_or(false),
    })
}

/// Python str.format syntax, as Marzban checks it: `{name}` fields, `{{` and
/// `}}` escapes, no stray braces.
fn format_variables(s: &str) -> Result<(), String> {
    let invalid = || Err("Invalid formatting variables".to_owned());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => loop {
                match chars.next() {
                    Some('}') => break,
                    Some('{') | None => return invalid(),
                    Some(_) => {}
                }
            },
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '}' => return invalid(),
            _ => {}
        }
    }
    Ok(())
}

/// `N` or `N-M` with 1 to `max` digits each.
fn is_range(s: &str, max: usize) -> bool {
    let digits = |p: &str| (1..=max).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('-') {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(s),
    }
}

/// Xray fragment: length,interval,packets (packets: tlshello, N or N-M).
fn is_fragment(s: &str) -> bool {
    let parts: Vec<&str> = s.split(',').collect();
    let [length, interval, packets] = parts[..] else {
        return false;
    };
    is_range(length, 4) && is_range(interval, 3) && (packets == "tlshello" || is_range(packets, 1))
}

/// Xray noise items joined by `&`: `rand:RANGE[,DELAY]`, or `str:`, `hex:`,
/// `base64:` with a payload (which, as in Marzban's pattern, may contain
/// anything, so it ends the check).
fn is_noise(s: &str) -> bool {
    for prefix in ["str:", "hex:", "base64:"] {
        if let Some(payload) = s.strip_prefix(prefix) {
            return !payload.is_empty();
        }
    }
    let Some(rest) = s.strip_prefix("rand:") else {
        return false;
    };
    let (item, next) = match rest.split_once('&') {
        Some((item, next)) => (item, Some(next)),
        None => (rest, None),
    };
    let item_ok = match item.split_once(',') {
        Some((size, delay)) => is_range(size, 4) && is_range(delay, 4),
        None => is_range(item, 4),
    };
    item_ok && next.is_none_or(is_noise)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_variables_follow_python() {
        for ok in [
            "",
            "plain",
            "{USERNAME} [{PROTOCOL}]",
            "{{literal}}",
            "a}}b{{c",
            "{x:>3}",
        ] {
            assert!(format_variables(ok).is_ok(), "{ok}");
        }
        for bad in ["{", "}", "a{b", "a}b", "{a{b}}", "{{{"] {
            assert!(format_variables(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fragments() {
        for ok in ["10-100,100-200,tlshello", "1,1,1", "1000-2000,10-20,1-3"] {
            assert!(is_fragment(ok), "{ok}");
        }
        for bad in [
            "",
            "10-100,100-200",
            "10-100,1000,tlshello",
            "a,b,c",
            "1,1,12",
            "1,1,1,1",
        ] {
            assert!(!is_fragment(bad), "{bad}");
        }
    }

    #[test]
    fn noises() {
        for ok in [
            "rand:10-20,100-200",
            "rand:10",
            "rand:10-20&rand:1,5",
            "str:hello",
            "rand:1-2&str:x&anything",
            "base64:aGk=",
        ] {
            assert!(is_noise(ok), "{ok}");
        }
        for bad in [
            "",
            "rand:",
            "rand:1-2&",
            "str:",
            "noise:1",
            "rand:12345",
            "rand:1,2,3",
        ] {
            assert!(!is_noise(bad), "{bad}");
        }
    }
}
