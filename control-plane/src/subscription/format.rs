//! Which format a subscription is served in: an explicit `/sub/{token}/{format}`,
//! else the page for browsers, else the first User-Agent rule that matches,
//! else base64 share links. The rules are data: Marzban's defaults below, or
//! a JSON file an operator provides (`--subscription-rules`).

use std::path::Path;

use regex::Regex;
use serde::Deserialize;

/// A subscription format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Format {
    /// Base64 share links, one per line.
    #[serde(rename = "v2ray")]
    Links,
    /// A JSON array of complete Xray client configs.
    #[serde(rename = "v2ray-json")]
    XrayJson,
    #[serde(rename = "clash")]
    Clash,
    #[serde(rename = "clash-meta")]
    ClashMeta,
    #[serde(rename = "sing-box")]
    SingBox,
    #[serde(rename = "outline")]
    Outline,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Links,
        Format::XrayJson,
        Format::Clash,
        Format::ClashMeta,
        Format::SingBox,
        Format::Outline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Links => "v2ray",
            Format::XrayJson => "v2ray-json",
            Format::Clash => "clash",
            Format::ClashMeta => "clash-meta",
            Format::SingBox => "sing-box",
            Format::Outline => "outline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// One User-Agent rule as an operator writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// A regular expression matched against the whole User-Agent (anchor it
    /// with `^` to match its start). With `min_version`, its first capture
    /// group is the client's version.
    pub pattern: String,
    pub format: Format,
    /// Only clients at this version or newer (dotted numbers).
    #[serde(default)]
    pub min_version: Option<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Regex,
    format: Format,
    min_version: Option<Vec<u64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("subscription rules {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("subscription rules {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("subscription rule #{index}: pattern {pattern:?}: {source}")]
    Pattern {
        index: usize,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error(
        "subscription rule #{index}: min_version {version:?} is not dotted numbers, or the pattern has no capture group for the version"
    )]
    Version { index: usize, version: String },
}

/// The User-Agent rules, in order.
#[derive(Debug, Clone)]
pub struct FormatRules {
    rules: Vec<Rule>,
}

/// Marzban's rules (see the subscription spec). The v2ray-json rules are
/// Marzban's "when enabled" set: these clients import full Xray configs.
pub const DEFAULT_RULES: &str = r#"[
  {"pattern": "^([Cc]lash-verge|[Cc]lash[-.]?[Mm]eta|[Ff][Ll][Cc]lash|[Mm]ihomo)", "format": "clash-meta"},
  {"pattern": "^([Cc]lash|[Ss]tash)", "format": "clash"},
  {"pattern": "^(SFA|SFI|SFM|SFT|[Kk]aring|[Hh]iddify[Nn]ext)", "format": "sing-box"},
  {"pattern": "^(SS|SSR|SSD|SSS|Outline|Shadowsocks|SSconf)", "format": "outline"},
  {"pattern": "^v2rayN/(\\d+(?:\\.\\d+)*)", "format": "v2ray-json", "min_version": "6.40"},
  {"pattern": "^v2rayNG/(\\d+(?:\\.\\d+)*)", "format": "v2ray-json", "min_version": "1.8.29"},
  {"pattern": "^[Ss]treisand", "format": "v2ray-json"},
  {"pattern": "^Happ/(\\d+(?:\\.\\d+)*)", "format": "v2ray-json", "min_version": "1.63.1"}
]"#;

fn version(s: &str) -> Option<Vec<u64>> {
    s.split('.').map(|p| p.parse().ok()).collect()
}

impl Default for FormatRules {
    fn default() -> Self {
        Self::from_json(DEFAULT_RULES, "built-in").expect("the built-in rules are valid")
    }
}

impl FormatRules {
    pub fn from_specs(specs: Vec<RuleSpec>) -> Result<Self, RulesError> {
        let mut rules = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            let pattern = Regex::new(&spec.pattern).map_err(|source| RulesError::Pattern {
                index,
                pattern: spec.pattern.clone(),
                source,
            })?;
            let min_version = match spec.min_version {
                None => None,
                Some(v) => match version(&v) {
                    Some(parsed) if pattern.captures_len() > 1 => Some(parsed),
                    _ => return Err(RulesError::Version { index, version: v }),
                },
            };
            rules.push(Rule {
                pattern,
                format: spec.format,
                min_version,
            });
        }
        Ok(Self { rules })
    }

    fn from_json(json: &str, path: &str) -> Result<Self, RulesError> {
        let specs: Vec<RuleSpec> =
            serde_json::from_str(json).map_err(|source| RulesError::Parse {
                path: path.into(),
                source,
            })?;
        Self::from_specs(specs)
    }

    /// Rules from a JSON file: an array of `{"pattern", "format", "min_version"?}`.
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let json = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&json, &path.display().to_string())
    }

    /// The format for a client sending `user_agent`; base64 links when no
    /// rule matches.
    pub fn select(&self, user_agent: &str) -> Format {
        for rule in &self.rules {
            let Some(captures) = rule.pattern.captures(user_agent) else {
                continue;
            };
            let Some(min) = &rule.min_version else {
                return rule.format;
            };
            let seen = captures.get(1).and_then(|m| version(m.as_str()));
            if seen.is_some_and(|seen| &seen >= min) {
                return rule.format;
            }
        }
        Format::Links
    }
}

/// Whether the request is a browser's: it asks for HTML.
pub fn wants_html(accept: &str) -> bool {
    accept
        .split(',')
        .any(|part| part.trim().starts_with("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marzbans_rules_pick_the_formats_clients_expect() {
        let rules = FormatRules::default();
        for (ua, format) in [
            ("clash-verge/v1.3.8", Format::ClashMeta),
            ("ClashMeta/1.0", Format::ClashMeta),
            ("clash.meta", Format::ClashMeta),
            ("FlClash/0.8", Format::ClashMeta),
            ("mihomo/1.19", Format::ClashMeta),
            ("ClashForWindows/0.20", Format::Clash),
            ("Stash/2.4", Format::Clash),
            ("SFA/1.9.0", Format::SingBox),
            ("HiddifyNext/2.0", Format::SingBox),
            ("karing/1.0", Format::SingBox),
            ("Outline/1.0", Format::Outline),
            ("Shadowsocks/1.0", Format::Outline),
            ("v2rayN/6.40", Format::XrayJson),
            ("v2rayN/7.1.2", Format::XrayJson),
            ("v2rayN/6.39", Format::Links),
            ("v2rayNG/1.8.29", Format::XrayJson),
            ("v2rayNG/1.8.5", Format::Links),
            ("v2rayNG/1.10.0", Format::XrayJson),
            ("Streisand/1", Format::XrayJson),
            ("Happ/1.63.1", Format::XrayJson),
            ("Happ/1.63.0", Format::Links),
            ("curl/8.0", Format::Links),
            ("", Format::Links),
            // Anchored: a name later in the string does not count.
            ("Mozilla/5.0 clash", Format::Links),
        ] {
            assert_eq!(rules.select(ua), format, "{ua:?}");
        }
    }

    #[test]
    fn operator_rules_replace_the_defaults_and_bad_ones_are_named() {
        let rules = FormatRules::from_json(
            r#"[{"pattern": "^MyApp", "format": "sing-box"}]"#,
            "rules.json",
        )
        .unwrap();
        assert_eq!(rules.select("MyApp/2"), Format::SingBox);
        assert_eq!(rules.select("clash-verge/1"), Format::Links);

        let bad =
            FormatRules::from_json(r#"[{"pattern": "(", "format": "clash"}]"#, "r").unwrap_err();
        assert!(bad.to_string().contains("rule #0"), "{bad}");
        let unknown =
            FormatRules::from_json(r#"[{"pattern": "x", "format": "nope"}]"#, "r").unwrap_err();
        assert!(unknown.to_string().contains("unknown variant"), "{unknown}");
        let no_group = FormatRules::from_json(
            r#"[{"pattern": "^x", "format": "clash", "min_version": "1"}]"#,
            "r",
        )
        .unwrap_err();
        assert!(no_group.to_string().contains("capture group"), "{no_group}");
    }

    #[test]
    fn formats_round_trip_and_browsers_are_recognized() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(Format::parse("yaml"), None);
        assert!(wants_html("text/html,application/xhtml+xml;q=0.9"));
        assert!(!wants_html("*/*"));
        assert!(!wants_html("application/json"));
    }
}
