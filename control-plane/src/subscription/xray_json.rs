//! The `v2ray-json` format: a JSON array of complete Xray client configs, one
//! per endpoint, each with its `"remarks"` (v2rayN, v2rayNG, Streisand and
//! Happ list them by it).
//!
//! Every config has a SOCKS inbound on 127.0.0.1:10808 and an HTTP one on
//! 127.0.0.1:10809; the proxy outbound (tagged `proxy`, first, so the
//! default), `direct` (freedom) and `block` (blackhole); and routing that
//! sends private and loopback destinations `direct` by explicit CIDRs (no
//! `geoip:` / `geosite:` rules: a core without the geo files rejects them).
//!
//! Hosts with a fragment or noise setting get one more freedom outbound,
//! tagged `fragment`, carrying Xray's `fragment` and `noises` settings; the
//! proxy dials through it (`sockopt.dialerProxy`). Both settings are taken as
//! JSON (Xray's own syntax) or in Marzban's compact text (`length,interval,
//! packets`, and `rand:10-20,10-16&str:...`), which the hosts API stores;
//! anything else is ignored with a warning.
//!
//! V2Ray 4.34 accepts the output too (tested below): it ignores the Xray-only
//! fields (`flow`, `fingerprint`, `sockopt.dialerProxy`, freedom `fragment`
//! and `noises`) but rejects the gRPC and httpupgrade transports it lacks.

use serde_json::{Map, Value, json};

use super::endpoints::{Credentials, Endpoint};

const SOCKS_PORT: u16 = 10808;
const HTTP_PORT: u16 = 10809;
const FRAGMENT_TAG: &str = "fragment";

/// Destinations that never go through the proxy: loopback, RFC 1918, link
/// local, CGNAT and their IPv6 counterparts.
const DIRECT_CIDRS: [&str; 10] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// The `v2ray-json` body: one client config per endpoint, pretty-printed.
pub fn render(endpoints: &[Endpoint]) -> String {
    let configs: Vec<Value> = endpoints.iter().map(config).collect();
    serde_json::to_string_pretty(&configs).expect("JSON values always serialize")
}

/// The complete client config of one endpoint.
fn config(e: &Endpoint) -> Value {
    let dialer = dialer_outbound(e);
    let mut outbounds = vec![proxy_outbound(e, dialer.is_some())];
    outbounds.extend(dialer);
    outbounds.push(json!({"tag": "direct", "protocol": "freedom", "settings": {}}));
    outbounds.push(json!({"tag": "block", "protocol": "blackhole", "settings": {}}));
    json!({
        "remarks": e.remark,
        "log": {"loglevel": "warning"},
        "inbounds": [
            inbound("socks", "socks", SOCKS_PORT, json!({"auth": "noauth", "udp": true})),
            inbound("http", "http", HTTP_PORT, json!({})),
        ],
        "outbounds": outbounds,
        "routing": {
            "domainStrategy": "AsIs",
            "rules": [{"type": "field", "ip": DIRECT_CIDRS, "outboundTag": "direct"}],
        },
    })
}

fn inbound(tag: &str, protocol: &str, port: u16, settings: Value) -> Value {
    json!({
        "tag": tag,
        "listen": "127.0.0.1",
        "port": port,
        "protocol": protocol,
        "settings": settings,
        "sniffing": {"enabled": true, "destOverride": ["http", "tls"]},
    })
}

fn proxy_outbound(e: &Endpoint, dial_through_fragment: bool) -> Value {
    let (protocol, settings) = match &e.credentials {
        Credentials::Vmess { id } => (
            "vmess",
            vnext(e, json!({"id": id, "alterId": 0, "security": "auto"})),
        ),
        Credentials::Vless { id, flow } => {
            let mut user = json!({"id": id, "encryption": "none"});
            // Vision only works on raw TCP with TLS/REALITY and no HTTP header.
            if !flow.is_empty() && e.network == "tcp" && e.tls() && e.header_type != "http" {
                user["flow"] = json!(flow);
            }
            ("vless", vnext(e, user))
        }
        Credentials::Trojan { password } => (
            "trojan",
            servers(json!({"address": e.address, "port": e.port, "password": password})),
        ),
        Credentials::Shadowsocks { method, password } => (
            "shadowsocks",
            servers(json!({
                "address": e.address,
                "port": e.port,
                "method": method,
                "password": password,
            })),
        ),
    };
    let mut outbound = json!({
        "tag": "proxy",
        "protocol": protocol,
        "settings": settings,
        "streamSettings": stream_settings(e, dial_through_fragment),
    });
    if e.mux {
        outbound["mux"] = json!({"enabled": true, "concurrency": 8});
    }
    outbound
}

fn vnext(e: &Endpoint, user: Value) -> Value {
    json!({"vnext": [{"address": e.address, "port": e.port, "users": [user]}]})
}

fn servers(server: Value) -> Value {
    json!({ "servers": [server] })
}

fn stream_settings(e: &Endpoint, dial_through_fragment: bool) -> Value {
    let mut s = Map::new();
    s.insert("network".into(), json!(e.network));
    let security = match e.security.as_str() {
        "tls" | "reality" => e.security.as_str(),
        _ => "none",
    };
    s.insert("security".into(), json!(security));
    match security {
        "tls" => {
            s.insert("tlsSettings".into(), tls_settings(e));
        }
        "reality" => {
            s.insert("realitySettings".into(), reality_settings(e));
        }
        _ => {}
    }
    if let Some((key, settings)) = transport_settings(e) {
        s.insert(key.into(), settings);
    }
    if dial_through_fragment {
        s.insert("sockopt".into(), json!({ "dialerProxy": FRAGMENT_TAG }));
    }
    Value::Object(s)
}

fn tls_settings(e: &Endpoint) -> Value {
    let mut t = Map::new();
    if !e.sni.is_empty() {
        t.insert("serverName".into(), json!(e.sni));
    }
    t.insert("allowInsecure".into(), json!(e.allow_insecure));
    if !e.alpn.is_empty() {
        t.insert("alpn".into(), json!(e.alpn));
    }
    if !e.fingerprint.is_empty() {
        t.insert("fingerprint".into(), json!(e.fingerprint));
    }
    Value::Object(t)
}

/// REALITY needs a uTLS fingerprint; Xray rejects a client without one.
fn reality_settings(e: &Endpoint) -> Value {
    let mut r = Map::new();
    if !e.sni.is_empty() {
        r.insert("serverName".into(), json!(e.sni));
    }
    let fingerprint = if e.fingerprint.is_empty() {
        "chrome"
    } else {
        e.fingerprint.as_str()
    };
    r.insert("fingerprint".into(), json!(fingerprint));
    Value::Object(r)
}

fn or_root(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// The `*Settings` object of the transport, if it has one to set.
fn transport_settings(e: &Endpoint) -> Option<(&'static str, Value)> {
    let hosts: Vec<&str> = if e.host.is_empty() {
        vec![]
    } else {
        vec![e.host.as_str()]
    };
    match e.network.as_str() {
        "tcp" | "raw" if e.header_type == "http" => {
            let mut request = json!({
                "version": "1.1",
                "method": "GET",
                "path": [or_root(&e.path)],
            });
            if !hosts.is_empty() {
                request["headers"] = json!({ "Host": hosts });
            }
            Some((
                "tcpSettings",
                json!({"header": {"type": "http", "request": request}}),
            ))
        }
        "ws" => {
            let mut ws = json!({ "path": or_root(&e.path) });
            if !e.host.is_empty() {
                ws["headers"] = json!({ "Host": e.host });
            }
            Some(("wsSettings", ws))
        }
        "grpc" => Some((
            "grpcSettings",
            json!({"serviceName": e.path, "multiMode": false}),
        )),
        "http" | "h2" => {
            let mut h2 = json!({ "path": or_root(&e.path) });
            if !hosts.is_empty() {
                h2["host"] = json!(hosts);
            }
            Some(("httpSettings", h2))
        }
        "httpupgrade" => {
            let mut hu = json!({ "path": or_root(&e.path) });
            if !e.host.is_empty() {
                hu["host"] = json!(e.host);
            }
            Some(("httpupgradeSettings", hu))
        }
        _ => None,
    }
}

/// The freedom outbound the proxy dials through, when the host sets a
/// fragment or noise that parses.
fn dialer_outbound(e: &Endpoint) -> Option<Value> {
    let fragment = e
        .fragment
        .as_deref()
        .and_then(|raw| setting(e, "fragment", raw, parse_fragment));
    let noises = e
        .noise
        .as_deref()
        .and_then(|raw| setting(e, "noise", raw, parse_noises));
    if fragment.is_none() && noises.is_none() {
        return None;
    }
    let mut settings = Map::new();
    if let Some(fragment) = fragment {
        settings.insert("fragment".into(), fragment);
    }
    if let Some(noises) = noises {
        settings.insert("noises".into(), noises);
    }
    Some(json!({
        "tag": FRAGMENT_TAG,
        "protocol": "freedom",
        "settings": settings,
    }))
}

/// A parsed setting, or `None` (with a warning) when it does not parse.
fn setting(e: &Endpoint, what: &str, raw: &str, parse: fn(&str) -> Option<Value>) -> Option<Value> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let parsed = parse(raw);
    if parsed.is_none() {
        tracing::warn!(
            remark = %e.remark,
            setting = raw,
            "ignoring invalid {what} setting in the v2ray-json subscription"
        );
    }
    parsed
}

/// `{"packets": .., "length": .., "interval": ..}` as JSON, or Marzban's
/// `length,interval,packets`.
fn parse_fragment(raw: &str) -> Option<Value> {
    if raw.starts_with('{') {
        return serde_json::from_str::<Value>(raw)
            .ok()
            .filter(Value::is_object);
    }
    let parts: Vec<&str> = raw.split(',').map(str::trim).collect();
    let [length, interval, packets] = parts[..] else {
        return None;
    };
    (is_range(length) && is_range(interval) && (packets == "tlshello" || is_range(packets)))
        .then(|| json!({"packets": packets, "length": length, "interval": interval}))
}

/// Xray `noises`: a JSON array of noise objects (or one object), or
/// Marzban's `type:packet[,delay]` items joined by `&`.
fn parse_noises(raw: &str) -> Option<Value> {
    if raw.starts_with('[') || raw.starts_with('{') {
        return match serde_json::from_str::<Value>(raw).ok()? {
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                Some(Value::Array(items))
            }
            object @ Value::Object(_) => Some(json!([object])),
            _ => None,
        };
    }
    raw.split('&')
        .map(parse_noise)
        .collect::<Option<Vec<Value>>>()
        .map(Value::Array)
}

fn parse_noise(item: &str) -> Option<Value> {
    let (kind, rest) = item.split_once(':')?;
    if !matches!(kind, "rand" | "str" | "hex" | "base64") {
        return None;
    }
    let (packet, delay) = match rest.rsplit_once(',') {
        Some((packet, delay)) if is_range(delay) => (packet, Some(delay)),
        _ => (rest, None),
    };
    if packet.is_empty() || (kind == "rand" && !is_range(packet)) {
        return None;
    }
    let mut noise = json!({"type": kind, "packet": packet});
    if let Some(delay) = delay {
        noise["delay"] = json!(delay);
    }
    Some(noise)
}

/// `N` or `N-M`.
fn is_range(s: &str) -> bool {
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('-') {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(s),
    }
}

#[cfg(test)]
mod tests;
