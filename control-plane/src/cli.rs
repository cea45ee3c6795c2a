//! Command-line entry points.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::api::hash_password;
use crate::config::{DatabaseArgs, ServeArgs};
use crate::store::{NewAdmin, Store, StoreError};

#[derive(Debug, Parser)]
#[command(name = "nexpoint", version, about = "Nexpoint control plane")]
pub struct Cli {
    /// Log lines as text for people or JSON (one object a line) for collectors.
    #[arg(long, global = true, env = "NEXPOINT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line, with secrets also read from `*_FILE`
    /// files and systemd credentials (see `config::secrets`).
    pub fn parse_with_secret_files() -> anyhow::Result<Self> {
        use clap::{CommandFactory, FromArgMatches};
        let matches = crate::config::secrets::with_secret_files(Self::command())?.get_matches();
        Ok(Self::from_arg_matches(&matches)?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// Installs the global subscriber: stderr, filtered by `filter_var`
    /// (default `info`), colour only on a terminal.
    pub fn init(self, filter_var: &str) {
        use std::io::IsTerminal;
        let filter = tracing_subscriber::EnvFilter::try_from_env(filter_var)
            .unwrap_or_else(|_| "info".into());
        let builder = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter);
        match self {
            Self::Text => builder
                .with_ansi(
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                )
                .init(),
            Self::Json => builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .init(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane daemon.
    Serve(Box<ServeArgs>),
    /// Manage admins directly in the database.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage nodes directly in the database.
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Print an offline enrollment bundle for a node added before (with
    /// `POST /api/node`): one line that `nexpoint-node enroll --bundle`
    /// accepts, for hosts that cannot reach the control plane while they are
    /// set up. It issues the node a new key and certificate, replacing any
    /// earlier enrollment. The bundle holds the node's private key: treat it
    /// as a secret.
    Bundle {
        /// The node's name.
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin.
    Create {
        #[arg(long)]
        username: String,
        /// The password; prefer the environment variable to keep it out of shell history.
        #[arg(long, env = "NEXPOINT_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        /// Give the admin full rights (nodes, core, other admins).
        #[arg(long)]
        sudo: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(*args).await,
        Command::Node(NodeCommand::Bundle { name, database }) => {
            println!("{}", node_bundle(&name, &database).await?);
            Ok(())
        }
        Command::Admin(AdminCommand::Create {
            username,
            password,
            sudo,
            database,
        }) => {
            crate::domain::validate::username(&username)
                .map_err(|m| anyhow::anyhow!("invalid --username: {m}"))?;
            if password.is_empty() {
                bail!("--password must not be empty");
            }
            std::fs::create_dir_all(&database.data_dir).with_context(|| {
                format!("creating data directory {}", database.data_dir.display())
            })?;
            let store = Store::connect(&database.url()).await?;
            let hash = hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
            let created = store
                .create_admin(NewAdmin {
                    username: &username,
                    hashed_password: &hash,
                    is_sudo: sudo,
                })
                .await;
            store.close().await;
            match created {
                Ok(admin) => {
                    println!(
                        "created {}admin {}",
                        if admin.is_sudo { "sudo " } else { "" },
                        admin.username
                    );
                    Ok(())
                }
                Err(StoreError::Conflict(_)) => bail!("admin {username:?} already exists"),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Issues `name` a key and certificate and returns them as a bundle.
async fn node_bundle(name: &str, database: &DatabaseArgs) -> anyhow::Result<String> {
    if !database.data_dir.join("pki").exists() {
        bail!(
            "no control-plane CA under {}: run this where `nexpoint serve` keeps its data \
             (--data-dir)",
            database.data_dir.display()
        );
    }
    let pki = crate::pki::Pki::load_or_create(&database.data_dir)
        .context("loading the control plane's CA")?;
    let store = Store::connect(&database.url()).await?;
    let result = async {
        let node = match store.node_by_name(name).await {
            Err(StoreError::NotFound) => {
                bail!("no node named {name:?}; add it first (POST /api/node)")
            }
            other => other?,
        };
        // The CA decides the certificate's name; the CSR only carries the key.
        let (key, csr) = nexpoint_certs::node_key_and_csr("nexpoint-node")?;
        let issued = crate::nodes::rotation::issue(&pki, node.id, &csr)?;
        store.install_node_certificate(node.id, &issued).await?;
        Ok(nexpoint_certs::NodeBundle {
            node_id: node.id,
            node_name: node.name,
            control_plane: String::new(),
            ca_certificate: pki.ca.cert_pem().to_owned(),
            certificate: issued.pem,
            key,
            control_plane_certificate: pki.client.cert_pem.clone(),
        }
        .encode())
    }
    .await;
    store.close().await;
    result
}
