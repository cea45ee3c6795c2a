//! Renders the full core config from the control plane's template: the users
//! as clients of their inbounds, plus the API, stats and policy the agent
//! needs to manage users live and read traffic counters.

use nexpoint_proto::agent::UserSpec;
use serde_json::{Map, Value, json};

use crate::core_kind::CoreKind;
use crate::encoded_users::EncodedUsers;
use crate::inbound_users::{
    ClientsByTag, Credential, ManagedInbound, Protocol, USER_LEVEL, client_of, clients_by_tag,
    managed_inbounds,
};
use crate::rendered_config::{ClientList, RenderedConfig};

/// Tag of the dokodemo-door inbound that reaches the core's gRPC API.
pub const API_INBOUND_TAG: &str = "nexpoint-api";
/// `api.tag`: the implicit outbound that routes into the API services.
pub const API_OUTBOUND_TAG: &str = "api";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("core config template is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("core config template must be a JSON object")]
    NotAnObject,
    #[error("core config template: {0}")]
    Shape(&'static str),
}

/// A template that parsed, with the inbounds whose users the agent manages.
#[derive(Debug, Clone)]
pub struct Template {
    json: Value,
    pub inbounds: Vec<ManagedInbound>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let json: Value = serde_json::from_str(text)?;
        if !json.is_object() {
            return Err(ConfigError::NotAnObject);
        }
        if json.get("inbounds").is_some_and(|v| !v.is_array()) {
            return Err(ConfigError::Shape("\"inbounds\" must be an array"));
        }
        let inbounds = managed_inbounds(&json);
        Ok(Self { json, inbounds })
    }

    /// Numeric ports the template's inbounds listen on, so the API port the
    /// agent picks never collides with one of them.
    pub fn inbound_ports(&self) -> Vec<u16> {
        self.json
            .get("inbounds")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|inbound| inbound.get("port"))
            .filter_map(|port| match port {
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .collect()
    }

    pub fn clients(&self, users: &[UserSpec]) -> ClientsByTag {
        clients_by_tag(&self.inbounds, users)
    }

    /// The config to run: clients filled in, API and stats added. The
    /// client lists are not built here: they stream from `users` when the
    /// result is serialized, so 100,000 users never exist as JSON values.
    pub fn render<'a>(
        &'a self,
        users: &'a EncodedUsers,
        kind: CoreKind,
        api_port: u16,
    ) -> RenderedConfig<'a> {
        let mut config = self.json.clone();
        let root = config.as_object_mut().expect("checked in parse");

        let inbounds = root
            .entry("inbounds")
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .expect("checked in parse");
        inbounds.retain(|i| i.get("tag").and_then(Value::as_str) != Some(API_INBOUND_TAG));
        let mut client_lists = Vec::new();
        let mut kept = Vec::with_capacity(inbounds.len() + 1);
        for mut inbound in inbounds.drain(..) {
            let tag = inbound.get("tag").and_then(Value::as_str);
            let Some(managed) = self.inbounds.iter().find(|m| Some(m.tag.as_str()) == tag) else {
                kept.push(inbound);
                continue;
            };
            match fill_inbound(&mut inbound, managed, users, kind) {
                Fill::Clients => client_lists.push(ClientList {
                    inbound_index: kept.len(),
                    inbound: managed,
                    users,
                    kind,
                }),
                Fill::Complete => {}
                Fill::LeftOut => continue,
            }
            kept.push(inbound);
        }
        kept.push(json!({
            "tag": API_INBOUND_TAG,
            "listen": "127.0.0.1",
            "port": api_port,
            "protocol": "dokodemo-door",
            "settings": {"address": "127.0.0.1"},
        }));
        *inbounds = kept;

        root.insert(
            "api".into(),
            json!({
                "tag": API_OUTBOUND_TAG,
                "services": ["HandlerService", "StatsService", "LoggerService"],
            }),
        );
        root.insert("stats".into(), json!({}));
        enable_stats_policy(root);
        route_api_first(root);
        RenderedConfig::new(config, client_lists)
    }
}

/// What a managed inbound becomes in the rendered config.
enum Fill {
    /// Its `settings.clients` (an empty placeholder here) streams in later.
    Clients,
    /// Complete as it is: V2Ray's single-user shadowsocks.
    Complete,
    /// It cannot run and is left out: a V2Ray shadowsocks inbound with no
    /// user and no password.
    LeftOut,
}

fn fill_inbound(
    inbound: &mut Value,
    managed: &ManagedInbound,
    users: &EncodedUsers,
    kind: CoreKind,
) -> Fill {
    let Some(inbound) = inbound.as_object_mut() else {
        return Fill::Complete;
    };
    let settings = object_entry(inbound, "settings");
    if managed.protocol == Protocol::Shadowsocks && kind == CoreKind::V2Ray {
        return fill_single_user_shadowsocks(settings, managed, users);
    }
    settings.insert("clients".into(), Value::Array(Vec::new()));
    if managed.protocol == Protocol::Vless {
        settings
            .entry("decryption")
            .or_insert_with(|| Value::String("none".into()));
    }
    Fill::Clients
}

/// V2Ray 4.x shadowsocks serves one user, configured directly in settings:
/// the first by email. The others are not served on this inbound.
fn fill_single_user_shadowsocks(
    settings: &mut Map<String, Value>,
    managed: &ManagedInbound,
    users: &EncodedUsers,
) -> Fill {
    settings.remove("clients");
    let mut clients = 0;
    let mut first = None;
    for user in users.iter() {
        let Some(credential) = client_of(managed, &user) else {
            continue;
        };
        clients += 1;
        if first.is_none()
            && let Credential::Shadowsocks { method, password } = credential
        {
            first = Some((user.email, method, password));
        }
    }
    if clients > 1 {
        tracing::warn!(
            inbound = %managed.tag,
            served = first.as_ref().map(|f| f.0.as_str()).unwrap_or_default(),
            not_served = clients - 1,
            "V2Ray shadowsocks is single-user: only the first user (by email) is served"
        );
    }
    match first {
        Some((email, method, password)) => {
            settings.insert("method".into(), Value::String(method));
            settings.insert("password".into(), Value::String(password));
            settings.insert("email".into(), Value::String(email));
            settings.insert("level".into(), Value::from(USER_LEVEL));
            Fill::Complete
        }
        None if settings.contains_key("password") => Fill::Complete,
        None => {
            tracing::info!(inbound = %managed.tag, "shadowsocks inbound has no user; left out");
            Fill::LeftOut
        }
    }
}

fn object_entry<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = map.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}

fn enable_stats_policy(root: &mut Map<String, Value>) {
    let policy = object_entry(root, "policy");
    let levels = object_entry(policy, "levels");
    let level = object_entry(levels, &USER_LEVEL.to_string());
    level.insert("statsUserUplink".into(), json!(true));
    level.insert("statsUserDownlink".into(), json!(true));
    let system = object_entry(policy, "system");
    for key in [
        "statsInboundUplink",
        "statsInboundDownlink",
        "statsOutboundUplink",
        "statsOutboundDownlink",
    ] {
        system.insert(key.into(), json!(true));
    }
}

fn route_api_first(root: &mut Map<String, Value>) {
    let routing = object_entry(root, "routing");
    let rules = routing.entry("rules").or_insert_with(|| json!([]));
    if !rules.is_array() {
        *rules = json!([]);
    }
    let rules = rules.as_array_mut().expect("just made an array");
    rules.insert(
        0,
        json!({"type": "field", "inboundTag": [API_INBOUND_TAG], "outboundTag": API_OUTBOUND_TAG}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexpoint_proto::agent::{ShadowsocksAccount, TrojanAccount, VlessAccount, VmessAccount};

    const TEMPLATE: &str = r#"{
        "log": {"loglevel": "warning"},
        "inbounds": [
            {"tag": "vm", "protocol": "vmess", "port": 1001, "settings": {"clients": [{"id": "stale"}]}},
            {"tag": "vl", "protocol": "vless", "port": 1002, "settings": {}},
            {"tag": "tr", "protocol": "trojan", "port": 1003},
            {"tag": "ss", "protocol": "shadowsocks", "port": 1004, "settings": {"network": "tcp"}},
            {"tag": "socks", "protocol": "socks", "port": 1005, "settings": {"auth": "noauth"}}
        ],
        "outbounds": [{"protocol": "freedom", "tag": "direct"}],
        "routing": {"rules": [{"type": "field", "ip": ["10.0.0.0/8"], "outboundTag": "direct"}]},
        "policy": {"levels": {"0": {"handshake": 4}}}
    }"#;

    fn user(email: &str, tags: &[&str]) -> UserSpec {
        UserSpec {
            email: email.into(),
            vmess: Some(VmessAccount {
                id: format!("vm-{email}"),
            }),
            vless: Some(VlessAccount {
                id: format!("vl-{email}"),
                flow: String::new(),
            }),
            trojan: Some(TrojanAccount {
                password: format!("tr-{email}"),
            }),
            shadowsocks: Some(ShadowsocksAccount {
                password: format!("ss-{email}"),
                method: "chacha20-ietf-poly1305".into(),
            }),
            inbound_tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn render(kind: CoreKind, users: &[UserSpec]) -> Value {
        let template = Template::parse(TEMPLATE).unwrap();
        let users: EncodedUsers = users.iter().cloned().collect();
        serde_json::to_value(template.render(&users, kind, 4321)).unwrap()
    }

    fn inbound<'a>(config: &'a Value, tag: &str) -> &'a Value {
        config["inbounds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["tag"] == tag)
            .unwrap_or_else(|| panic!("no inbound {tag}"))
    }

    #[test]
    fn adds_api_stats_policy_and_first_routing_rule() {
        let config = render(CoreKind::V2Ray, &[]);
        assert_eq!(
            config["api"],
            json!({"tag": "api", "services": ["HandlerService", "StatsService", "LoggerService"]})
        );
        assert_eq!(config["stats"], json!({}));
        assert_eq!(
            inbound(&config, API_INBOUND_TAG),
            &json!({"tag": "nexpoint-api", "listen": "127.0.0.1", "port": 4321,
                    "protocol": "dokodemo-door", "settings": {"address": "127.0.0.1"}})
        );
        let rules = config["routing"]["rules"].as_array().unwrap();
        assert_eq!(
            rules[0],
            json!({"type": "field", "inboundTag": ["nexpoint-api"], "outboundTag": "api"})
        );
        assert_eq!(rules.len(), 2, "the template's own rule stays");
        let level = &config["policy"]["levels"]["0"];
        assert_eq!(level["statsUserUplink"], true);
        assert_eq!(level["statsUserDownlink"], true);
        assert_eq!(level["handshake"], 4, "template policy is kept");
        assert_eq!(config["policy"]["system"]["statsInboundUplink"], true);
        assert_eq!(config["policy"]["system"]["statsOutboundDownlink"], true);
        assert!(!config.to_string().contains("geoip"));
    }

    #[test]
    fn rendering_twice_does_not_duplicate_the_api() {
        let template = Template::parse(TEMPLATE).unwrap();
        let none = EncodedUsers::default();
        let once = serde_json::to_string(&template.render(&none, CoreKind::Xray, 1)).unwrap();
        let twice = Template::parse(&once).unwrap();
        let config = serde_json::to_value(twice.render(&none, CoreKind::Xray, 2)).unwrap();
        let api_inbounds = config["inbounds"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["tag"] == API_INBOUND_TAG)
            .count();
        assert_eq!(api_inbounds, 1);
    }

    #[test]
    fn v2ray_clients_per_tag() {
        let users = [user("1.a", &["vm", "vl", "tr"]), user("2.b", &["vm"])];
        let config = render(CoreKind::V2Ray, &users);
        assert_eq!(
            inbound(&config, "vm")["settings"]["clients"],
            json!([
                {"id": "vm-1.a", "alterId": 0, "email": "1.a", "level": 0},
                {"id": "vm-2.b", "alterId": 0, "email": "2.b", "level": 0},
            ])
        );
        assert_eq!(
            inbound(&config, "vl")["settings"],
            json!({"clients": [{"id": "vl-1.a", "flow": "", "email": "1.a", "level": 0}],
                   "decryption": "none"})
        );
        assert_eq!(
            inbound(&config, "tr")["settings"]["clients"],
            json!([{"password": "tr-1.a", "email": "1.a", "level": 0}])
        );
        assert_eq!(
            inbound(&config, "socks")["settings"],
            json!({"auth": "noauth"})
        );
    }

    #[test]
    fn xray_vmess_has_no_alter_id_and_shadowsocks_is_multi_user() {
        let users = [user("2.b", &["vm", "ss"]), user("1.a", &["ss"])];
        let config = render(CoreKind::Xray, &users);
        assert_eq!(
            inbound(&config, "vm")["settings"]["clients"],
            json!([{"id": "vm-2.b", "email": "2.b", "level": 0}])
        );
        assert_eq!(
            inbound(&config, "ss")["settings"]["clients"],
            json!([
                {"method": "chacha20-ietf-poly1305", "password": "ss-1.a", "email": "1.a", "level": 0},
                {"method": "chacha20-ietf-poly1305", "password": "ss-2.b", "email": "2.b", "level": 0},
            ])
        );
    }

    #[test]
    fn v2ray_shadowsocks_serves_the_first_user_by_email() {
        let users = [user("2.b", &["ss"]), user("1.a", &["ss"])];
        let config = render(CoreKind::V2Ray, &users);
        assert_eq!(
            inbound(&config, "ss")["settings"],
            json!({"network": "tcp", "method": "chacha20-ietf-poly1305", "password": "ss-1.a",
                   "email": "1.a", "level": 0})
        );
    }

    #[test]
    fn v2ray_shadowsocks_without_users_is_left_out() {
        let config = render(CoreKind::V2Ray, &[user("1.a", &["vm"])]);
        assert!(
            config["inbounds"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["tag"] != "ss")
        );
    }

    /// How clients were built before they were streamed: one `Value` each.
    fn client_value(email: &str, credential: &Credential, kind: CoreKind) -> Value {
        let mut client = match credential {
            Credential::Vmess { id } => {
                let mut c = json!({"id": id});
                if kind == CoreKind::V2Ray {
                    c["alterId"] = json!(0);
                }
                c
            }
            Credential::Vless { id, flow } => json!({"id": id, "flow": flow}),
            Credential::Trojan { password } => json!({"password": password}),
            Credential::Shadowsocks { method, password } => {
                json!({"method": method, "password": password})
            }
            Credential::Shadowsocks2022 { key } => json!({"password": key}),
        };
        client["email"] = json!(email);
        client["level"] = json!(USER_LEVEL);
        client
    }

    #[test]
    fn streamed_clients_print_exactly_as_a_value_tree_would() {
        let template = Template::parse(&TEMPLATE.replace(
            r#""port": 1004, "settings": {"network": "tcp"}"#,
            r#""port": 1004, "settings": {"method": "2022-blake3-aes-128-gcm"}"#,
        ))
        .unwrap();
        let listed = [
            user("3.c", &["vm", "vl", "tr", "ss"]),
            user("1.a", &["vm", "ss"]),
            user("2.b", &["vl", "tr", "unknown"]),
        ];
        let users: EncodedUsers = listed.iter().cloned().collect();
        for kind in [CoreKind::V2Ray, CoreKind::Xray] {
            let rendered = template.render(&users, kind, 4321);
            let mut tree = rendered.skeleton().clone();
            let clients = template.clients(&listed);
            for inbound in tree["inbounds"].as_array_mut().unwrap() {
                let Some(tag) = inbound["tag"].as_str().map(str::to_owned) else {
                    continue;
                };
                if let Some(settings) = inbound["settings"].as_object_mut()
                    && settings.contains_key("clients")
                {
                    let list = clients[&tag]
                        .iter()
                        .map(|(email, credential)| client_value(email, credential, kind))
                        .collect();
                    settings.insert("clients".into(), Value::Array(list));
                }
            }
            let streamed = serde_json::to_string_pretty(&rendered).unwrap();
            assert_eq!(streamed, serde_json::to_string_pretty(&tree).unwrap());
            assert!(streamed.contains(r#""email": "3.c""#), "{streamed}");
        }
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(matches!(Template::parse("{"), Err(ConfigError::Json(_))));
        assert!(matches!(
            Template::parse("[]"),
            Err(ConfigError::NotAnObject)
        ));
        assert!(matches!(
            Template::parse(r#"{"inbounds": {}}"#),
            Err(ConfigError::Shape(_))
        ));
    }
}
