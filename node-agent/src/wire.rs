//! The core-specific names and numbers of the Xray/V2Ray API messages.
//!
//! Field numbers are shared, but a TypedMessage's `type` is the core's own
//! protobuf full name (`xray.*` vs `v2ray.core.*`; the wrong one fails with
//! `Serial: Unknown type`), and the shadowsocks cipher enum is numbered
//! differently by the two cores.

use nexpoint_proto::xray::accounts::{
    SecurityConfig, SecurityType, Shadowsocks2022Account, ShadowsocksAccount, TrojanAccount,
    VlessAccount, VmessAccount,
};
use nexpoint_proto::xray::protocol::User;
use nexpoint_proto::xray::proxyman::{AddUserOperation, RemoveUserOperation};
use nexpoint_proto::xray::serial::TypedMessage;
use prost::Message;

use crate::core_kind::CoreKind;
use crate::inbound_users::{Credential, USER_LEVEL};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shadowsocks method {method:?} is not supported by {kind}")]
    UnsupportedCipher { kind: CoreKind, method: String },
    #[error("{kind} has no multi-user shadowsocks 2022")]
    NoShadowsocks2022 { kind: CoreKind },
}

/// The message types the agent sends, named without their core prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    AddUserOperation,
    RemoveUserOperation,
    VmessAccount,
    VlessAccount,
    TrojanAccount,
    ShadowsocksAccount,
    Shadowsocks2022Account,
}

impl WireType {
    fn suffix(self) -> &'static str {
        match self {
            WireType::AddUserOperation => "app.proxyman.command.AddUserOperation",
            WireType::RemoveUserOperation => "app.proxyman.command.RemoveUserOperation",
            WireType::VmessAccount => "proxy.vmess.Account",
            WireType::VlessAccount => "proxy.vless.Account",
            WireType::TrojanAccount => "proxy.trojan.Account",
            WireType::ShadowsocksAccount => "proxy.shadowsocks.Account",
            WireType::Shadowsocks2022Account => "proxy.shadowsocks_2022.Account",
        }
    }

    /// The exact full name the core expects in `TypedMessage.type`.
    pub fn full_name(self, kind: CoreKind) -> String {
        let prefix = match kind {
            CoreKind::Xray => "xray.",
            CoreKind::V2Ray => "v2ray.core.",
        };
        format!("{prefix}{}", self.suffix())
    }
}

fn typed(kind: CoreKind, wire_type: WireType, message: &impl Message) -> TypedMessage {
    TypedMessage {
        r#type: wire_type.full_name(kind),
        value: message.encode_to_vec(),
    }
}

/// The cipher enum value for a shadowsocks method name.
pub fn shadowsocks_cipher(kind: CoreKind, method: &str) -> Result<i32, WireError> {
    let method_lc = method.to_ascii_lowercase();
    let number = match (kind, method_lc.as_str()) {
        (CoreKind::Xray, "aes-128-gcm") => 5,
        (CoreKind::Xray, "aes-256-gcm") => 6,
        (CoreKind::Xray, "chacha20-poly1305" | "chacha20-ietf-poly1305") => 7,
        (CoreKind::Xray, "xchacha20-poly1305" | "xchacha20-ietf-poly1305") => 8,
        (CoreKind::V2Ray, "aes-128-gcm") => 1,
        (CoreKind::V2Ray, "aes-256-gcm") => 2,
        (CoreKind::V2Ray, "chacha20-poly1305" | "chacha20-ietf-poly1305") => 3,
        (CoreKind::V2Ray, "none" | "plain") => 4,
        _ => {
            return Err(WireError::UnsupportedCipher {
                kind,
                method: method.to_string(),
            });
        }
    };
    Ok(number)
}

/// The account TypedMessage for a credential.
pub fn account(kind: CoreKind, credential: &Credential) -> Result<TypedMessage, WireError> {
    Ok(match credential {
        Credential::Vmess { id } => typed(
            kind,
            WireType::VmessAccount,
            &VmessAccount {
                id: id.clone(),
                // AEAD only; V2Ray 4.x reads it, Xray has no such field.
                alter_id: 0,
                security_settings: Some(SecurityConfig {
                    r#type: SecurityType::Auto as i32,
                }),
            },
        ),
        Credential::Vless { id, flow } => typed(
            kind,
            WireType::VlessAccount,
            &VlessAccount {
                id: id.clone(),
                flow: flow.clone(),
                // Servers read only id and flow.
                encryption: String::new(),
            },
        ),
        Credential::Trojan { password } => typed(
            kind,
            WireType::TrojanAccount,
            &TrojanAccount {
                password: password.clone(),
            },
        ),
        Credential::Shadowsocks { method, password } => typed(
            kind,
            WireType::ShadowsocksAccount,
            &ShadowsocksAccount {
                password: password.clone(),
                cipher_type: shadowsocks_cipher(kind, method)?,
                iv_check: false,
            },
        ),
        Credential::Shadowsocks2022 { key } => {
            if kind != CoreKind::Xray {
                return Err(WireError::NoShadowsocks2022 { kind });
            }
            typed(
                kind,
                WireType::Shadowsocks2022Account,
                &Shadowsocks2022Account { key: key.clone() },
            )
        }
    })
}

/// `AlterInboundRequest.operation` adding a user.
pub fn add_user_operation(
    kind: CoreKind,
    email: &str,
    credential: &Credential,
) -> Result<TypedMessage, WireError> {
    let operation = AddUserOperation {
        user: Some(User {
            level: USER_LEVEL,
            email: email.to_string(),
            account: Some(account(kind, credential)?),
        }),
    };
    Ok(typed(kind, WireType::AddUserOperation, &operation))
}

/// `AlterInboundRequest.operation` removing a user.
pub fn remove_user_operation(kind: CoreKind, email: &str) -> TypedMessage {
    typed(
        kind,
        WireType::RemoveUserOperation,
        &RemoveUserOperation {
            email: email.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_per_kind() {
        let cases = [
            (
                WireType::AddUserOperation,
                "xray.app.proxyman.command.AddUserOperation",
                "v2ray.core.app.proxyman.command.AddUserOperation",
            ),
            (
                WireType::RemoveUserOperation,
                "xray.app.proxyman.command.RemoveUserOperation",
                "v2ray.core.app.proxyman.command.RemoveUserOperation",
            ),
            (
                WireType::VmessAccount,
                "xray.proxy.vmess.Account",
                "v2ray.core.proxy.vmess.Account",
            ),
            (
                WireType::VlessAccount,
                "xray.proxy.vless.Account",
                "v2ray.core.proxy.vless.Account",
            ),
            (
                WireType::TrojanAccount,
                "xray.proxy.trojan.Account",
                "v2ray.core.proxy.trojan.Account",
            ),
            (
                WireType::ShadowsocksAccount,
                "xray.proxy.shadowsocks.Account",
                "v2ray.core.proxy.shadowsocks.Account",
            ),
            (
                WireType::Shadowsocks2022Account,
                "xray.proxy.shadowsocks_2022.Account",
                "v2ray.core.proxy.shadowsocks_2022.Account",
            ),
        ];
        for (wire_type, xray, v2ray) in cases {
            assert_eq!(wire_type.full_name(CoreKind::Xray), xray);
            assert_eq!(wire_type.full_name(CoreKind::V2Ray), v2ray);
        }
    }

    #[test]
    fn cipher_numbers_differ_between_cores() {
        let x = |m| shadowsocks_cipher(CoreKind::Xray, m).unwrap();
        let v = |m| shadowsocks_cipher(CoreKind::V2Ray, m).unwrap();
        assert_eq!(
            (x("aes-128-gcm"), x("aes-256-gcm"), x("chacha20-poly1305")),
            (5, 6, 7)
        );
        assert_eq!(x("chacha20-ietf-poly1305"), 7);
        assert_eq!(x("xchacha20-ietf-poly1305"), 8);
        assert_eq!(
            (v("aes-128-gcm"), v("aes-256-gcm"), v("chacha20-poly1305")),
            (1, 2, 3)
        );
        assert_eq!(v("none"), 4);
        assert!(shadowsocks_cipher(CoreKind::V2Ray, "rc4-md5").is_err());
    }

    #[test]
    fn remove_operation_bytes() {
        let op = remove_user_operation(CoreKind::V2Ray, "1.a");
        assert_eq!(
            op.r#type,
            "v2ray.core.app.proxyman.command.RemoveUserOperation"
        );
        assert_eq!(op.value, b"\x0a\x031.a");
    }

    #[test]
    fn vmess_add_operation_bytes() {
        let op = add_user_operation(CoreKind::V2Ray, "e", &Credential::Vmess { id: "u".into() })
            .unwrap();
        assert_eq!(
            op.r#type,
            "v2ray.core.app.proxyman.command.AddUserOperation"
        );
        let account_type = b"v2ray.core.proxy.vmess.Account";
        // Account: id "u" (field 1), security_settings {type AUTO=2} (field 3).
        let account_value = b"\x0a\x01u\x1a\x02\x08\x02";
        let mut typed_account = vec![0x0a, account_type.len() as u8];
        typed_account.extend_from_slice(account_type);
        typed_account.extend_from_slice(&[0x12, account_value.len() as u8]);
        typed_account.extend_from_slice(account_value);
        // User: level 0 omitted, email "e" (field 2), account (field 3).
        let mut user = b"\x12\x01e".to_vec();
        user.extend_from_slice(&[0x1a, typed_account.len() as u8]);
        user.extend_from_slice(&typed_account);
        let mut expected = vec![0x0a, user.len() as u8];
        expected.extend_from_slice(&user);
        assert_eq!(op.value, expected);
    }

    #[test]
    fn account_bytes_per_protocol() {
        let vless = account(
            CoreKind::Xray,
            &Credential::Vless {
                id: "u".into(),
                flow: "xtls-rprx-vision".into(),
            },
        )
        .unwrap();
        assert_eq!(vless.r#type, "xray.proxy.vless.Account");
        assert_eq!(vless.value, b"\x0a\x01u\x12\x10xtls-rprx-vision");

        let trojan = account(
            CoreKind::V2Ray,
            &Credential::Trojan {
                password: "p".into(),
            },
        )
        .unwrap();
        assert_eq!(trojan.r#type, "v2ray.core.proxy.trojan.Account");
        assert_eq!(trojan.value, b"\x0a\x01p");

        let ss = Credential::Shadowsocks {
            method: "aes-256-gcm".into(),
            password: "p".into(),
        };
        assert_eq!(
            account(CoreKind::Xray, &ss).unwrap().value,
            b"\x0a\x01p\x10\x06"
        );
        assert_eq!(
            account(CoreKind::V2Ray, &ss).unwrap().value,
            b"\x0a\x01p\x10\x02"
        );

        let ss22 = Credential::Shadowsocks2022 { key: "k".into() };
        let typed = account(CoreKind::Xray, &ss22).unwrap();
        assert_eq!(typed.r#type, "xray.proxy.shadowsocks_2022.Account");
        assert_eq!(typed.value, b"\x0a\x01k");
        assert!(account(CoreKind::V2Ray, &ss22).is_err());
    }

    /// Length-delimited field: tag byte, one-byte length, bytes.
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 128, "one-byte varint length only");
        let mut out = vec![tag, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    /// `TypedMessage { type = 1; value = 2; }` as bytes.
    fn typed_bytes(type_name: &str, value: &[u8]) -> Vec<u8> {
        let mut out = field(0x0a, type_name.as_bytes());
        out.extend(field(0x12, value));
        out
    }

    #[test]
    fn xray_vless_add_operation_bytes() {
        let op = add_user_operation(
            CoreKind::Xray,
            "7.bob",
            &Credential::Vless {
                id: "u".into(),
                flow: "xtls-rprx-vision".into(),
            },
        )
        .unwrap();
        assert_eq!(op.r#type, "xray.app.proxyman.command.AddUserOperation");
        let account = typed_bytes(
            "xray.proxy.vless.Account",
            b"\x0a\x01u\x12\x10xtls-rprx-vision",
        );
        // User { level 0 (default, omitted), email = 2, account = 3 }.
        let mut user = field(0x12, b"7.bob");
        user.extend(field(0x1a, &account));
        assert_eq!(op.value, field(0x0a, &user));
    }

    #[test]
    fn alter_inbound_request_bytes_per_kind() {
        use nexpoint_proto::xray::proxyman::AlterInboundRequest;
        for (kind, type_name) in [
            (
                CoreKind::Xray,
                "xray.app.proxyman.command.RemoveUserOperation",
            ),
            (
                CoreKind::V2Ray,
                "v2ray.core.app.proxyman.command.RemoveUserOperation",
            ),
        ] {
            let request = AlterInboundRequest {
                tag: "vm".into(),
                operation: Some(remove_user_operation(kind, "1.a")),
            };
            // tag = 1, operation = 2 (TypedMessage), RemoveUserOperation.email = 1.
            let mut expected = field(0x0a, b"vm");
            expected.extend(field(0x12, &typed_bytes(type_name, b"\x0a\x031.a")));
            assert_eq!(request.encode_to_vec(), expected, "{kind}");
        }
    }

    #[test]
    fn vmess_account_bytes_are_the_same_on_both_cores_but_not_the_type() {
        let credential = Credential::Vmess { id: "u".into() };
        let xray = account(CoreKind::Xray, &credential).unwrap();
        let v2ray = account(CoreKind::V2Ray, &credential).unwrap();
        assert_eq!(xray.r#type, "xray.proxy.vmess.Account");
        assert_eq!(v2ray.r#type, "v2ray.core.proxy.vmess.Account");
        // id = 1; alter_id = 2 is 0 and so absent (V2Ray 4.x: AEAD only);
        // security_settings = 3 { type = AUTO (2) }.
        assert_eq!(xray.value, b"\x0a\x01u\x1a\x02\x08\x02");
        assert_eq!(v2ray.value, xray.value);
    }

    #[test]
    fn shadowsocks_account_bytes_per_kind_and_cipher() {
        let cases = [
            ("aes-128-gcm", 5, 1),
            ("aes-256-gcm", 6, 2),
            ("chacha20-ietf-poly1305", 7, 3),
            ("CHACHA20-POLY1305", 7, 3),
        ];
        for (method, xray_number, v2ray_number) in cases {
            let credential = Credential::Shadowsocks {
                method: method.into(),
                password: "p".into(),
            };
            let xray = account(CoreKind::Xray, &credential).unwrap();
            let v2ray = account(CoreKind::V2Ray, &credential).unwrap();
            assert_eq!(xray.r#type, "xray.proxy.shadowsocks.Account");
            assert_eq!(v2ray.r#type, "v2ray.core.proxy.shadowsocks.Account");
            // password = 1, cipher_type = 2 (varint), iv_check = 3 false (absent).
            assert_eq!(
                xray.value,
                [0x0a, 0x01, b'p', 0x10, xray_number],
                "{method}"
            );
            assert_eq!(
                v2ray.value,
                [0x0a, 0x01, b'p', 0x10, v2ray_number],
                "{method}"
            );
        }
    }

    #[test]
    fn what_one_core_lacks_is_an_error_not_a_wrong_message() {
        // V2Ray 4.x has no XChaCha20 shadowsocks and no shadowsocks 2022;
        // "none" is V2Ray-only here.
        assert_eq!(
            shadowsocks_cipher(CoreKind::V2Ray, "xchacha20-ietf-poly1305"),
            Err(WireError::UnsupportedCipher {
                kind: CoreKind::V2Ray,
                method: "xchacha20-ietf-poly1305".into()
            })
        );
        assert!(shadowsocks_cipher(CoreKind::Xray, "none").is_err());
        assert_eq!(
            add_user_operation(
                CoreKind::V2Ray,
                "e",
                &Credential::Shadowsocks2022 { key: "k".into() }
            ),
            Err(WireError::NoShadowsocks2022 {
                kind: CoreKind::V2Ray
            })
        );
        let error = account(
            CoreKind::V2Ray,
            &Credential::Shadowsocks {
                method: "rc4-md5".into(),
                password: "p".into(),
            },
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "shadowsocks method \"rc4-md5\" is not supported by v2ray"
        );
    }
}
