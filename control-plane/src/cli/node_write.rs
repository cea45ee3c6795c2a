//! `node add` and `certs rotate`: node changes made in the database for the
//! running daemon to carry out. Its node tasks follow the stored nodes
//! (`NodeManager::reconcile`), so an added node gets a task that waits for
//! its enrollment, and a rotation request is honoured by the node's task
//! over its live session at its next pass.

use std::time::Duration;

use clap::Args;
use serde::Serialize;

use super::output::{api_failure, not_found, print_rows};
use crate::api::{ApiError, CreatedNode};
use crate::config::DatabaseArgs;
use crate::nodes::enrollment;
use crate::store::{NewNode, Node, Store, StoreError};
use crate::time_fmt;

/// Flags of `nexpoint node add`; the defaults are `POST /api/node`'s.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The node's name (unique, in any case).
    pub name: String,
    /// The host name or IP address the control plane dials the node at.
    #[arg(long)]
    pub address: String,
    /// The node agent's mutual-TLS port.
    #[arg(long, default_value_t = 62050)]
    pub port: i64,
    /// Marzban's api_port, kept for compatibility.
    #[arg(long, default_value_t = 62051)]
    pub api_port: i64,
    /// Multiplies the traffic counted on this node.
    #[arg(long, default_value_t = 1.0)]
    pub usage_coefficient: f64,
    /// Do not add the node's address as a host of every inbound (the API's
    /// `add_as_new_host: false`).
    #[arg(long)]
    pub no_host: bool,
    /// The URL nodes reach the control plane at, for the enrollment
    /// command; default: http://<--listen>, as `serve` does.
    #[arg(long, env = "NEXPOINT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// `serve`'s listen address, read only to default --public-url.
    #[arg(long, env = "NEXPOINT_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: String,
    /// Lifetime of the enrollment token, in minutes.
    #[arg(
        long,
        env = "NEXPOINT_ENROLLMENT_TOKEN_EXPIRE_MINUTES",
        default_value_t = 1440
    )]
    pub enrollment_expire_minutes: i64,
    /// The node as `POST /api/node` answers it (JSON), with the token.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

pub async fn add(args: AddArgs, store: &Store, pki: &crate::pki::Pki) -> anyhow::Result<()> {
    let node = NewNode {
        name: args.name,
        address: args.address,
        port: args.port,
        api_port: args.api_port,
        usage_coefficient: args.usage_coefficient,
    };
    let flag = |field: &str| match field {
        "name" => Some("NAME"),
        "address" => Some("--address"),
        "port" => Some("--port"),
        "api_port" => Some("--api-port"),
        "usage_coefficient" => Some("--usage-coefficient"),
        _ => None,
    };
    enrollment::check(&node)
        .map_err(|e| api_failure(ApiError::validation(e.field, e.message), flag))?;
    if args.enrollment_expire_minutes <= 0 {
        return Err(super::output::usage(
            "invalid --enrollment-expire-minutes: must be greater than 0",
        ));
    }
    let created = enrollment::create(store, node, args.enrollment_expire_minutes, !args.no_host)
        .await
        .map_err(|e| api_failure(e.into(), flag))?;
    let public_url = args
        .public_url
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let (name, id) = (created.node.name.clone(), created.node.id);
    let answer = CreatedNode::new(
        created,
        public_url.trim_end_matches('/'),
        &pki.ca.fingerprint(),
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    println!("added node {name} (id {id}); enroll it by running this on its host:");
    println!("{}", answer.enrollment_command());
    Ok(())
}

/// Flags of `nexpoint certs rotate`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true))]
pub struct RotateArgs {
    /// The node whose certificate to rotate.
    #[arg(group = "which")]
    pub node: Option<String>,
    /// Every enrolled node that is not disabled.
    #[arg(long, group = "which")]
    pub all: bool,
    /// Wait until the daemon has rotated them and print the new
    /// fingerprints; exit status 1 if it has not within --timeout.
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Serialize)]
struct Rotation {
    node: String,
    id: i64,
    requested_at: i64,
    /// The fingerprint when requested; the new one with --wait.
    fingerprint: Option<String>,
    rotated: bool,
}

/// Why a node's task cannot rotate its certificate, if it cannot.
fn unrotatable(node: &Node) -> Option<&'static str> {
    if node.certificate_fingerprint.is_none() {
        Some("is not enrolled yet")
    } else if node.status == "disabled" {
        Some("is disabled (its task does not run)")
    } else {
        None
    }
}

/// Marks the nodes' certificates for rotation by the running daemon.
pub async fn rotate(args: &RotateArgs, store: &Store) -> anyhow::Result<()> {
    let nodes = match &args.node {
        Some(name) => {
            let node = match store.node_by_name(name).await {
                Err(StoreError::NotFound) => {
                    return Err(not_found(format!("no node named {name:?}")));
                }
                other => other?,
            };
            if let Some(why) = unrotatable(&node) {
                anyhow::bail!("node {name:?} {why}");
            }
            vec![node]
        }
        None => store
            .nodes()
            .await?
            .into_iter()
            .filter(|n| unrotatable(n).is_none())
            .collect(),
    };
    let mut rows = Vec::with_capacity(nodes.len());
    for node in nodes {
        rows.push(Rotation {
            requested_at: store.request_node_rotation(node.id).await?,
            node: node.name,
            id: node.id,
            fingerprint: node.certificate_fingerprint,
            rotated: false,
        });
    }
    if args.wait {
        wait_rotated(store, &mut rows, Duration::from_secs(args.timeout)).await?;
    }
    print_rows(args.json, &rows, &["NODE", "STATUS", "FINGERPRINT"], |r| {
        vec![
            r.node.clone(),
            if r.rotated {
                "rotated".into()
            } else {
                format!("requested {}", time_fmt::iso_utc(r.requested_at))
            },
            r.fingerprint.clone().unwrap_or_default(),
        ]
    })
}

/// How often --wait looks at the database.
const POLL: Duration = Duration::from_millis(250);

/// Waits until every request is carried out: cleared, with a new
/// certificate pinned.
async fn wait_rotated(
    store: &Store,
    rows: &mut [Rotation],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        for row in rows.iter_mut().filter(|r| !r.rotated) {
            let node = match store.node(row.id).await {
                Err(StoreError::NotFound) => anyhow::bail!("node {:?} was deleted", row.node),
                other => other?,
            };
            if node
                .rotation_requested_at
                .is_none_or(|at| at > row.requested_at)
            {
                row.rotated = node.certificate_fingerprint != row.fingerprint;
                row.fingerprint = node.certificate_fingerprint;
            }
        }
        let waiting: Vec<&str> = rows
            .iter()
            .filter(|r| !r.rotated)
            .map(|r| r.node.as_str())
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "not rotated within {timeout:?}: {} (is `nexpoint serve` running, and the node \
                 connected? the request stays for the daemon)",
                waiting.join(", ")
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
