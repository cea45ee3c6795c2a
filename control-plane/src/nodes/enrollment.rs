//! A new node and its one-time enrollment token, for the API, the CLI and
//! the local node alike. Only the token's hash is stored.

use sha2::{Digest, Sha256};

use crate::domain::{FieldError, validate};
use crate::store::{NewNode, Node, Store, StoreError, now};

pub struct NewEnrollment {
    pub node: Node,
    /// Shown once; the database keeps its hash.
    pub token: String,
    pub expires_at: i64,
}

/// Refuses a node `create` must not store, naming the field.
pub fn check(node: &NewNode) -> Result<(), FieldError> {
    validate::node_name(&node.name).map_err(|m| FieldError::new("name", m))?;
    validate::address(&node.address).map_err(|m| FieldError::new("address", m))?;
    validate::port(node.port).map_err(|m| FieldError::new("port", m))?;
    validate::port(node.api_port).map_err(|m| FieldError::new("api_port", m))?;
    validate::usage_coefficient(node.usage_coefficient)
        .map_err(|m| FieldError::new("usage_coefficient", m))
}

/// Stores `node` awaiting enrollment for `expire_minutes`; with
/// `add_as_new_host`, its address becomes a host of every inbound.
pub async fn create(
    store: &Store,
    node: NewNode,
    expire_minutes: i64,
    add_as_new_host: bool,
) -> Result<NewEnrollment, StoreError> {
    // Hex, so the token can never look like a command-line flag.
    let token = hex::encode(rand::random::<[u8; 32]>());
    let expires_at = now() + expire_minutes * 60;
    let host_tags: Vec<String> = if add_as_new_host {
        store
            .inbounds()
            .await?
            .iter()
            .map(|i| i.tag.clone())
            .collect()
    } else {
        Vec::new()
    };
    let node = store
        .create_node(node, &token_hash(&token), expires_at, &host_tags)
        .await?;
    Ok(NewEnrollment {
        node,
        token,
        expires_at,
    })
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What to run on the node's host.
pub fn command(public_url: &str, token: &str, ca_fingerprint: &str) -> String {
    format!(
        "nexpoint-node enroll --control-plane {public_url} --token {token} --ca-fingerprint {ca_fingerprint}"
    )
}
