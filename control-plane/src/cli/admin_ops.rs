//! Commands for nodes, certificates and subscription links, read from (or,
//! for `node remove`, written to) the database directly, as `inspect` does.

use serde::Serialize;

use super::output::{not_found, print_rows};
use crate::store::{Store, StoreError};
use crate::time_fmt;

/// Deletes a node: the control plane stops trusting its certificate at
/// once (a running daemon's node task ends at its next pass).
pub async fn node_remove(store: &Store, name: &str) -> anyhow::Result<()> {
    let node = match store.node_by_name(name).await {
        Err(StoreError::NotFound) => return Err(not_found(format!("no node named {name:?}"))),
        other => other?,
    };
    store.delete_node(node.id).await?;
    println!("removed node {name} (id {})", node.id);
    Ok(())
}

#[derive(Serialize)]
struct CertRow {
    subject: String,
    fingerprint: Option<String>,
    expires_at: Option<i64>,
}

/// The CA, the control plane's client certificate and every node's pinned
/// certificate, with fingerprints and expiry.
pub async fn certs_show(store: &Store, pki: &crate::pki::Pki, json: bool) -> anyhow::Result<()> {
    let mut rows = vec![
        CertRow {
            subject: "ca".into(),
            fingerprint: Some(pki.ca.fingerprint()),
            expires_at: nexpoint_certs::certificate_not_after(pki.ca.cert_pem()).ok(),
        },
        CertRow {
            subject: "control-plane".into(),
            fingerprint: nexpoint_certs::fingerprint_pem(&pki.client.cert_pem).ok(),
            expires_at: nexpoint_certs::certificate_not_after(&pki.client.cert_pem).ok(),
        },
    ];
    for node in store.nodes().await? {
        rows.push(CertRow {
            subject: format!("node {}", node.name),
            fingerprint: node.certificate_fingerprint,
            expires_at: node.certificate_not_after,
        });
    }
    print_rows(json, &rows, &["SUBJECT", "EXPIRES", "FINGERPRINT"], |c| {
        vec![
            c.subject.clone(),
            c.expires_at.map_or("-".into(), time_fmt::iso_utc),
            c.fingerprint.clone().unwrap_or_else(|| "-".into()),
        ]
    })
}

/// The user's subscription URL, under `public_url` (relative without one).
pub async fn subscription_link(
    store: &Store,
    username: &str,
    public_url: Option<&str>,
) -> anyhow::Result<()> {
    let user = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| not_found(format!("no user named {username:?}")))?;
    let secret = store.setting("subscription_secret").await?.ok_or_else(|| {
        anyhow::anyhow!("no subscription secret yet: start `nexpoint serve` once first")
    })?;
    let token = crate::subscription::token::issue_for(&user, &secret);
    let prefix = public_url.unwrap_or("").trim_end_matches('/');
    println!("{prefix}/sub/{token}");
    Ok(())
}

/// The subscription document the user's app gets in `format`, rendered as
/// `/sub/{token}/{format}` renders it (without counting as a fetch).
pub async fn subscription_config(
    store: &Store,
    username: &str,
    format: crate::subscription::format::Format,
    settings: &crate::subscription::SubscriptionSettings,
) -> anyhow::Result<()> {
    use crate::subscription::handler::{NO_ACCESS_KEY, document};
    let user = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| not_found(format!("no user named {username:?}")))?;
    let inbounds = store.inbounds().await?;
    let hosts = store.enabled_hosts().await?;
    let now = crate::store::now();
    let (body, _) = document(
        &user,
        &inbounds,
        &hosts,
        now,
        format,
        &settings.inactive_remarks,
    )
    .ok_or_else(|| not_found(format!("{username}: {NO_ACCESS_KEY}")))?;
    print!("{body}");
    if !body.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// A `--format` value: one of the formats `/sub/{token}/{format}` serves.
pub fn subscription_format(text: &str) -> Result<crate::subscription::format::Format, String> {
    use crate::subscription::format::Format;
    Format::parse(text).ok_or_else(|| {
        let known: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
        format!("unknown format {text:?}; one of: {}", known.join(", "))
    })
}
