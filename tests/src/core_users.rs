//! Which users the core itself holds, asked through its own gRPC API
//! (HandlerService), independently of the node agent.
//!
//! V2Ray 4.x has no call that lists an inbound's users, so each question is
//! an operation the core answers without changing anything when the answer
//! is the expected one:
//! - [`CoreUsers::holds`]: AddUser, which the core refuses with "already
//!   exists" for a user it holds. For a user it does not hold the probe adds
//!   one (with a throwaway credential): a finding the test must fail on.
//! - [`CoreUsers::lacks`]: RemoveUser, which the core refuses with "not
//!   found" for a user it does not hold. For a user it holds the probe
//!   removes it: again a finding to fail on.
//!
//! The messages are encoded here by hand (a few length-delimited protobuf
//! fields) with V2Ray 4's type names.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use nexpoint_proto::xray::proxyman::AlterInboundRequest;
use nexpoint_proto::xray::proxyman::handler_service_client::HandlerServiceClient;
use nexpoint_proto::xray::serial::TypedMessage;
use tonic::transport::Channel;

use crate::links::Protocol;

pub struct CoreUsers {
    client: HandlerServiceClient<Channel>,
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (string, bytes, message).
fn field(number: u32, data: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(number << 3 | 2), out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn typed_message(type_name: &str, value: Vec<u8>) -> TypedMessage {
    TypedMessage {
        r#type: type_name.to_string(),
        value,
    }
}

/// `TypedMessage` encoded as a field value (inside `User.account`).
fn encode_typed(type_name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    field(1, type_name.as_bytes(), &mut out);
    field(2, value, &mut out);
    out
}

impl CoreUsers {
    pub async fn connect(api_port: u16) -> Result<Self> {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{api_port}"))?
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .connect()
                .await
                .with_context(|| format!("connecting to the core API on 127.0.0.1:{api_port}"))?;
        Ok(Self {
            client: HandlerServiceClient::new(channel),
        })
    }

    async fn alter(&mut self, tag: &str, operation: TypedMessage) -> Result<(), tonic::Status> {
        self.client
            .alter_inbound(AlterInboundRequest {
                tag: tag.to_string(),
                operation: Some(operation),
            })
            .await
            .map(drop)
    }

    /// Whether inbound `tag` (of `protocol`) holds the user `email`.
    pub async fn holds(&mut self, tag: &str, protocol: Protocol, email: &str) -> Result<bool> {
        // Every account type V2Ray 4 has here has its credential as field 1.
        let (account_type, credential) = match protocol {
            Protocol::Vmess => (
                "v2ray.core.proxy.vmess.Account",
                uuid::Uuid::new_v4().to_string(),
            ),
            Protocol::Vless => (
                "v2ray.core.proxy.vless.Account",
                uuid::Uuid::new_v4().to_string(),
            ),
            Protocol::Trojan => (
                "v2ray.core.proxy.trojan.Account",
                uuid::Uuid::new_v4().simple().to_string(),
            ),
            Protocol::Shadowsocks => bail!("shadowsocks users are not probed"),
        };
        let mut account = Vec::new();
        field(1, credential.as_bytes(), &mut account);
        let mut user = Vec::new();
        field(2, email.as_bytes(), &mut user);
        field(3, &encode_typed(account_type, &account), &mut user);
        let mut operation = Vec::new();
        field(1, &user, &mut operation);
        match self
            .alter(
                tag,
                typed_message(
                    "v2ray.core.app.proxyman.command.AddUserOperation",
                    operation,
                ),
            )
            .await
        {
            Err(status) if status.message().contains("already exists") => Ok(true),
            Ok(()) => Ok(false),
            Err(status) => bail!("AddUser {email} on {tag}: {status}"),
        }
    }

    /// Whether inbound `tag` lacks the user `email`.
    pub async fn lacks(&mut self, tag: &str, email: &str) -> Result<bool> {
        let mut operation = Vec::new();
        field(1, email.as_bytes(), &mut operation);
        match self
            .alter(
                tag,
                typed_message(
                    "v2ray.core.app.proxyman.command.RemoveUserOperation",
                    operation,
                ),
            )
            .await
        {
            Err(status)
                if status.message().contains("not found")
                    && !status.message().contains("handler not found") =>
            {
                Ok(true)
            }
            Ok(()) => Ok(false),
            Err(status) => bail!("RemoveUser {email} on {tag}: {status}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_length_delimited_fields() {
        let mut out = Vec::new();
        field(2, b"1.a", &mut out);
        assert_eq!(out, [0x12, 3, b'1', b'.', b'a']);
        let mut long = Vec::new();
        varint(300, &mut long);
        assert_eq!(long, [0xAC, 0x02]);
    }
}
