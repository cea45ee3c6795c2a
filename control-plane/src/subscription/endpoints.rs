//! What every subscription format renders: one [`Endpoint`] per protocol of
//! the user, inbound she is in, and enabled host of that inbound, with the
//! host's overrides applied. Formats differ only in how they write these.
//!
//! Host fields follow Marzban: the remark takes variables (`{USERNAME}`,
//! `{DATA_LEFT}`, ...); address, SNI and Host may be comma lists, one entry
//! picked at random per fetch; a `*` in SNI or Host becomes a random label
//! per fetch (so a CDN sees a different name each time).

use rand::Rng;

use crate::domain::{Inbound, ProxyProtocol, UserStatus};
use crate::store::{Host, User};

/// The user's secret for one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Vmess { id: String },
    Vless { id: String, flow: String },
    Trojan { password: String },
    Shadowsocks { method: String, password: String },
}

impl Credentials {
    pub fn protocol(&self) -> ProxyProtocol {
        match self {
            Self::Vmess { .. } => ProxyProtocol::Vmess,
            Self::Vless { .. } => ProxyProtocol::Vless,
            Self::Trojan { .. } => ProxyProtocol::Trojan,
            Self::Shadowsocks { .. } => ProxyProtocol::Shadowsocks,
        }
    }
}

/// One way for the user's client to reach one inbound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub remark: String,
    pub address: String,
    pub port: u16,
    pub credentials: Credentials,
    /// Transport: tcp, ws, grpc, http, httpupgrade, ...
    pub network: String,
    /// Raw TCP header obfuscation: none or http.
    pub header_type: String,
    /// HTTP Host header for ws/http transports; empty for none.
    pub host: String,
    /// ws/http path; empty for none.
    pub path: String,
    /// none, tls or reality.
    pub security: String,
    /// TLS server name; empty for the client's default (the address).
    pub sni: String,
    pub alpn: Vec<String>,
    /// uTLS fingerprint; empty for none.
    pub fingerprint: String,
    pub allow_insecure: bool,
    pub mux: bool,
    /// The host's fragment setting (Marzban's `length,interval,packets`, or
    /// Xray `fragment` JSON), for formats that carry it.
    pub fragment: Option<String>,
    /// The host's noise setting (Marzban's `rand:10-20,10-16&str:...`, or
    /// Xray `noises` JSON), for formats that carry it.
    pub noise: Option<String>,
}

impl Endpoint {
    /// Plain TCP without TLS, host header, path or client options: what a
    /// host with no overrides advertises for a plain inbound.
    pub fn new(
        remark: impl Into<String>,
        address: impl Into<String>,
        port: u16,
        credentials: Credentials,
    ) -> Self {
        Self {
            remark: remark.into(),
            address: address.into(),
            port,
            credentials,
            network: "tcp".into(),
            header_type: "none".into(),
            host: String::new(),
            path: String::new(),
            security: "none".into(),
            sni: String::new(),
            alpn: Vec::new(),
            fingerprint: String::new(),
            allow_insecure: false,
            mux: false,
            fragment: None,
            noise: None,
        }
    }

    pub fn protocol(&self) -> ProxyProtocol {
        self.credentials.protocol()
    }

    pub fn tls(&self) -> bool {
        self.security == "tls" || self.security == "reality"
    }
}

/// Every endpoint of `user`, in protocol, inbound and host order.
pub fn endpoints(
    user: &User,
    inbounds: &[Inbound],
    hosts: &[Host],
    now: i64,
    rng: &mut impl Rng,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for protocol in user.proxies.protocols() {
        let Some(credentials) = credentials(user, protocol) else {
            continue;
        };
        let excluded = user.excluded_inbounds.get(protocol.as_str());
        for inbound in inbounds.iter().filter(|i| i.protocol == protocol) {
            if excluded.is_some_and(|ex| ex.contains(&inbound.tag)) {
                continue;
            }
            for host in hosts
                .iter()
                .filter(|h| h.inbound_tag == inbound.tag && !h.is_disabled)
            {
                out.push(endpoint(user, inbound, host, &credentials, now, rng));
            }
        }
    }
    unique_remarks(&mut out);
    out
}

/// Apps list servers by remark, and some formats key proxies by it: a
/// remark seen before gets ` 2`, ` 3`, ... (two inbounds of one protocol and
/// transport under the same host remark, say one with TLS and one without).
fn unique_remarks(endpoints: &mut [Endpoint]) {
    let mut seen = std::collections::HashSet::new();
    for e in endpoints.iter_mut() {
        if seen.insert(e.remark.clone()) {
            continue;
        }
        let base = e.remark.clone();
        let mut n = 2;
        while !seen.insert(format!("{base} {n}")) {
            n += 1;
        }
        e.remark = format!("{base} {n}");
    }
}

fn credentials(user: &User, protocol: ProxyProtocol) -> Option<Credentials> {
    let p = &user.proxies;
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    Some(match protocol {
        ProxyProtocol::Vmess => Credentials::Vmess {
            id: text(&p.vmess.as_ref()?.id),
        },
        ProxyProtocol::Vless => {
            let v = p.vless.as_ref()?;
            Credentials::Vless {
                id: text(&v.id),
                flow: v.flow.clone(),
            }
        }
        ProxyProtocol::Trojan => Credentials::Trojan {
            password: text(&p.trojan.as_ref()?.password),
        },
        ProxyProtocol::Shadowsocks => {
            let s = p.shadowsocks.as_ref()?;
            Credentials::Shadowsocks {
                method: s.method.clone(),
                password: text(&s.password),
            }
        }
    })
}

fn endpoint(
    user: &User,
    inbound: &Inbound,
    host: &Host,
    credentials: &Credentials,
    now: i64,
    rng: &mut impl Rng,
) -> Endpoint {
    let chosen = |over: &Option<String>, default: &str, rng: &mut _| {
        let value = over
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(default);
        salted(&pick(value, rng), rng)
    };
    let security = if host.security == "inbound_default" || host.security.is_empty() {
        inbound.tls.clone()
    } else {
        host.security.clone()
    };
    let sni = chosen(&host.sni, &inbound.sni, rng);
    let mut host_header = chosen(&host.host, &inbound.host, rng);
    if host.use_sni_as_host && !sni.is_empty() {
        host_header = sni.clone();
    }
    let address = pick(&host.address, rng);
    Endpoint {
        remark: remark(&host.remark, user, inbound, &address, now),
        port: host
            .port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(inbound.port),
        address,
        credentials: credentials.clone(),
        network: inbound.network.clone(),
        header_type: inbound.header_type.clone(),
        host: host_header,
        path: host
            .path
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(&inbound.path)
            .to_owned(),
        sni,
        alpn: host
            .alpn
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        fingerprint: host.fingerprint.clone(),
        allow_insecure: host.allowinsecure.unwrap_or(false),
        mux: host.mux_enable,
        fragment: host.fragment_setting.clone().filter(|s| !s.is_empty()),
        noise: host.noise_setting.clone().filter(|s| !s.is_empty()),
        security,
    }
}

/// A ws/httpupgrade path's Xray early-data parameter taken out:
/// `/path?ed=2048` -> (`/path`, Some(2048)); other query parameters stay.
/// Clients other than Xray take the size as a setting of their own.
pub fn split_early_data(path: &str) -> (String, Option<u32>) {
    let Some((base, query)) = path.split_once('?') else {
        return (path.to_owned(), None);
    };
    let mut early_data = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(
            |pair| match pair.strip_prefix("ed=").map(str::parse::<u32>) {
                Some(Ok(n)) => {
                    early_data = Some(n);
                    false
                }
                _ => true,
            },
        )
        .collect();
    if early_data.is_none() {
        return (path.to_owned(), None);
    }
    let path = if rest.iter().all(|p| p.is_empty()) {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (path, early_data)
}

/// One entry of a comma list, at random.
fn pick(list: &str, rng: &mut impl Rng) -> String {
    let entries: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    match entries.len() {
        0 => String::new(),
        n => entries[rng.gen_range(0..n)].to_owned(),
    }
}

/// Every `*` replaced by a fresh random label of 8 hex digits.
fn salted(value: &str, rng: &mut impl Rng) -> String {
    if !value.contains('*') {
        return value.to_owned();
    }
    value
        .split('*')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part.to_owned()
            } else {
                format!("{:08x}{part}", rng.next_u32())
            }
        })
        .collect()
}

const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Bytes as Marzban shows them: `1.5 GB`, `300 MB`, `∞` for unlimited.
pub fn readable_size(bytes: Option<i64>) -> String {
    let Some(bytes) = bytes.filter(|b| *b > 0) else {
        return "∞".into();
    };
    let b = bytes as f64;
    if b >= GB {
        format!("{:.2} GB", b / GB)
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.2} MB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// Whole days until `expire`, `None` without one (0 once passed).
pub fn days_left(expire: Option<i64>, now: i64) -> Option<i64> {
    expire
        .filter(|e| *e > 0)
        .map(|e| ((e - now).max(0) + 86_399) / 86_400)
}

fn status_emoji(status: UserStatus) -> &'static str {
    match status {
        UserStatus::Active => "✅",
        UserStatus::Expired => "⌛️",
        UserStatus::Limited => "🪫",
        UserStatus::Disabled => "❌",
        UserStatus::OnHold => "🔌",
    }
}

/// The host's remark with Marzban's variables filled in.
pub fn remark(template: &str, user: &User, inbound: &Inbound, address: &str, now: i64) -> String {
    let limit = user.data_limit.filter(|l| *l > 0);
    let left = limit.map(|l| (l - user.used_traffic).max(0));
    let days = days_left(user.expire, now);
    let expire_date = user
        .expire
        .filter(|e| *e > 0)
        .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
        .map(|d| d.date().to_string())
        .unwrap_or_else(|| "∞".into());
    let time_left = match user.expire.filter(|e| *e > 0) {
        None => "∞".to_owned(),
        Some(e) => {
            let secs = (e - now).max(0);
            match (secs / 86_400, (secs % 86_400) / 3_600, (secs % 3_600) / 60) {
                (0, 0, m) => format!("{m}m"),
                (0, h, m) => format!("{h}h {m}m"),
                (d, h, _) => format!("{d}d {h}h"),
            }
        }
    };
    let percent = limit
        .map(|l| format!("{:.0}%", user.used_traffic as f64 * 100.0 / l as f64))
        .unwrap_or_else(|| "∞".into());
    template
        .replace("{SERVER_IP}", address)
        .replace("{USERNAME}", &user.username)
        .replace("{DATA_USAGE}", &readable_size(Some(user.used_traffic)))
        .replace("{DATA_LEFT}", &readable_size(left))
        .replace("{DATA_LIMIT}", &readable_size(limit))
        .replace(
            "{DAYS_LEFT}",
            &days.map_or_else(|| "∞".into(), |d| d.to_string()),
        )
        .replace("{EXPIRE_DATE}", &expire_date)
        .replace("{TIME_LEFT}", &time_left)
        .replace("{USAGE_PERCENTAGE}", &percent)
        .replace("{STATUS_EMOJI}", status_emoji(user.status))
        .replace("{STATUS_TEXT}", user.status.as_str())
        .replace("{PROTOCOL}", inbound.protocol.as_str())
        .replace("{TRANSPORT}", &inbound.network)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn comma_lists_pick_one_entry() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            seen.insert(pick("a.example, b.example ,c.example", &mut rng));
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            ["a.example", "b.example", "c.example"]
        );
        assert_eq!(pick("", &mut rng), "");
    }

    #[test]
    fn stars_become_fresh_labels() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = salted("*.cdn.example", &mut rng);
        let b = salted("*.cdn.example", &mut rng);
        assert_ne!(a, b);
        for s in [&a, &b] {
            let (label, rest) = s.split_once('.').unwrap();
            assert_eq!(rest, "cdn.example");
            assert_eq!(label.len(), 8);
            assert!(label.chars().all(|c| c.is_ascii_hexdigit()));
        }
        assert_eq!(salted("plain.example", &mut rng), "plain.example");
    }

    #[test]
    fn repeated_remarks_are_numbered() {
        let mut endpoints: Vec<Endpoint> = ["a", "a", "b", "a", "a 2"]
            .iter()
            .map(|r| {
                Endpoint::new(
                    *r,
                    "x",
                    1,
                    Credentials::Trojan {
                        password: "p".into(),
                    },
                )
            })
            .collect();
        unique_remarks(&mut endpoints);
        let remarks: Vec<&str> = endpoints.iter().map(|e| e.remark.as_str()).collect();
        assert_eq!(remarks, ["a", "a 2", "b", "a 3", "a 2 2"]);
    }

    #[test]
    fn sizes_and_days_read_like_marzban() {
        assert_eq!(readable_size(None), "∞");
        assert_eq!(readable_size(Some(0)), "∞");
        assert_eq!(readable_size(Some(512)), "512 B");
        assert_eq!(readable_size(Some(1_572_864)), "1.50 MB");
        assert_eq!(readable_size(Some(5 * 1024 * 1024 * 1024)), "5.00 GB");
        assert_eq!(days_left(None, 0), None);
        assert_eq!(days_left(Some(86_400), 0), Some(1));
        assert_eq!(days_left(Some(86_401), 0), Some(2));
        assert_eq!(days_left(Some(10), 20), Some(0));
    }
}
