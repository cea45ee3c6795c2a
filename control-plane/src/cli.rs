//! Command-line entry points. Exit statuses: 0 success, 1 failure, 2 usage
//! error, 3 not found, 4 already exists (see `output`).

mod admin_ops;
mod inspect;
mod node_write;
pub mod output;
mod units;
mod user_write;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::api::hash_password;
use crate::config::{DatabaseArgs, ServeArgs, SubscriptionArgs};
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
    /// Parses the command line through every settings layer; the warnings
    /// are for the log.
    pub fn parse_layered() -> anyhow::Result<nexpoint_config::Parsed<Self>> {
        nexpoint_config::parse("NEXPOINT_CONFIG")
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
    /// Read users directly from the database.
    #[command(subcommand)]
    User(UserCommand),
    /// Users' subscription links.
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// The internal CA and the certificates it issued.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// The settings file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply pending database migrations and exit (`serve` also does at start).
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print a shell completion script: `nexpoint completions bash > /etc/bash_completion.d/nexpoint`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Print a user's subscription URL; exit status 3 if there is no such user.
    GetLink {
        username: String,
        /// Base URL subscribers reach the control plane at; without it the
        /// link is relative (`/sub/...`).
        #[arg(long, env = "NEXPOINT_PUBLIC_URL")]
        public_url: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print the subscription document the user's app gets in FORMAT, as
    /// `/sub/{token}/{format}` serves it (with `serve`'s subscription
    /// settings, from the same flags and variables); exit status 3 if
    /// there is no such user (or, for outline, no Shadowsocks key).
    GetConfig {
        username: String,
        /// v2ray (base64 share links), v2ray-json, clash, clash-meta,
        /// sing-box or outline.
        #[arg(long, value_parser = admin_ops::subscription_format)]
        format: crate::subscription::format::Format,
        #[command(flatten)]
        subscription: Box<SubscriptionArgs>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// The CA, the control plane's certificate and every node's pinned
    /// certificate: fingerprints and expiry. (Nodes rotate theirs by
    /// themselves; `certs rotate` forces it.)
    Show {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Ask the running `nexpoint serve` to rotate a node's certificate (or
    /// every node's) over its live connection, without interrupting it: the
    /// node's task does it at its next pass. Exit status 3 if there is no
    /// such node, 1 if it is not enrolled or disabled.
    Rotate(node_write::RotateArgs),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users (newest first), optionally matching a search.
    List {
        /// Substring of the username or note.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Create a user as `POST /api/user` does (same checks, generated
    /// credentials, revision and `user_created` notification); exit status
    /// 4 if the name is taken (in any case), 2 for bad input, 3 if --owner
    /// does not exist.
    Create(Box<user_write::CreateArgs>),
    /// Give a user to another admin (`PUT /api/user/{username}/set-owner`);
    /// exit status 3 if the user or the admin does not exist.
    SetOwner {
        username: String,
        /// The new owner.
        admin: String,
        /// Base URL for the subscription URL in --json output.
        #[arg(long, env = "NEXPOINT_PUBLIC_URL")]
        public_url: Option<String>,
        /// The user as the API answers it (JSON).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Show one user; exit status 3 if there is none.
    Get {
        username: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print an example settings file for `nexpoint serve --config`: every
    /// setting, commented out, with its default.
    Example,
}

/// The example settings file, from the same definitions `serve` parses.
pub fn config_example() -> String {
    use clap::CommandFactory;
    let root = Cli::command();
    let serve = root
        .find_subcommand("serve")
        .expect("serve is a subcommand")
        .clone();
    nexpoint_config::example(
        &root,
        &serve,
        "Settings of `nexpoint serve --config FILE` (TOML). Generated by\n\
         `nexpoint config example`. Each key is also a flag (--key-name) and a\n\
         variable (below); the environment and flags win over this file.",
    )
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Add a node as `POST /api/node` does and print the command that
    /// enrolls it (its one-time token is shown only here). A running
    /// `nexpoint serve` starts dialing it within one node interval. Exit
    /// status 4 if the name is taken, 2 for bad input.
    Add(Box<node_write::AddArgs>),
    /// List nodes with their status.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Delete a node: its certificate is no longer trusted, and a running
    /// `nexpoint serve` drops its connection within one node interval; exit
    /// status 3 if there is none.
    Remove {
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Print an offline enrollment bundle for a node added before (`node
    /// add` or `POST /api/node`): one line that `nexpoint-node enroll --bundle`
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
    /// List admins.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Change an admin's password (from NEXPOINT_ADMIN_PASSWORD or its
    /// _FILE) and/or sudo rights; exit status 3 if there is none.
    Update {
        username: String,
        /// The new password; prefer the environment variable.
        #[arg(long, env = "NEXPOINT_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Grant (true) or revoke (false) full rights.
        #[arg(long, action = clap::ArgAction::Set)]
        sudo: Option<bool>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Delete an admin (their users stay, without owner); exit status 3 if
    /// there is none.
    Delete {
        username: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Create the sudo admin named by NEXPOINT_SUDO_USERNAME and
    /// NEXPOINT_SUDO_PASSWORD (or its _FILE), or give it that password.
    ImportFromEnv {
        #[command(flatten)]
        database: DatabaseArgs,
    },
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
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "nexpoint", &mut std::io::stdout());
            Ok(())
        }
        Command::Migrate { database } => {
            let store = inspect::open(&database).await?;
            store.close().await;
            println!("database is up to date");
            Ok(())
        }
        Command::User(command) => user_command(command).await,
        Command::Subscription(SubscriptionCommand::GetLink {
            username,
            public_url,
            database,
        }) => {
            with_store(&database, |s| {
                Box::pin(async move {
                    admin_ops::subscription_link(s, &username, public_url.as_deref()).await
                })
            })
            .await
        }
        Command::Subscription(SubscriptionCommand::GetConfig {
            username,
            format,
            subscription,
            database,
        }) => {
            let settings = subscription.settings().context("subscription settings")?;
            with_store(&database, |s| {
                Box::pin(async move {
                    admin_ops::subscription_config(s, &username, format, &settings).await
                })
            })
            .await
        }
        Command::Certs(CertsCommand::Rotate(args)) => {
            with_store(&args.database.clone(), |s| {
                Box::pin(async move { node_write::rotate(&args, s).await })
            })
            .await
        }
        Command::Node(NodeCommand::Add(args)) => {
            let pki = existing_pki(&args.database)?;
            with_store(&args.database.clone(), |s| {
                Box::pin(async move { node_write::add(*args, s, &pki).await })
            })
            .await
        }
        Command::Certs(CertsCommand::Show { json, database }) => {
            let pki = existing_pki(&database)?;
            with_store(&database, |s| {
                Box::pin(async move { admin_ops::certs_show(s, &pki, json).await })
            })
            .await
        }
        Command::Node(NodeCommand::Remove { name, database }) => {
            with_store(&database, |s| {
                Box::pin(async move { admin_ops::node_remove(s, &name).await })
            })
            .await
        }
        Command::Admin(AdminCommand::List { json, database }) => {
            with_store(&database, |s| {
                Box::pin(async move { inspect::admin_list(s, json).await })
            })
            .await
        }
        Command::Admin(AdminCommand::Update {
            username,
            password,
            sudo,
            database,
        }) => {
            if password.as_deref().is_none_or(str::is_empty) && sudo.is_none() {
                bail!("nothing to change: give --password (or NEXPOINT_ADMIN_PASSWORD) or --sudo");
            }
            with_store(&database, |s| {
                Box::pin(async move {
                    inspect::admin_update(s, &username, password.as_deref(), sudo).await
                })
            })
            .await
        }
        Command::Admin(AdminCommand::Delete { username, database }) => {
            with_store(&database, |s| {
                Box::pin(async move { inspect::admin_delete(s, &username).await })
            })
            .await
        }
        Command::Admin(AdminCommand::ImportFromEnv { database }) => {
            with_store(&database, |s| Box::pin(inspect::admin_import_from_env(s))).await
        }
        Command::Node(NodeCommand::List { json, database }) => {
            with_store(&database, |s| {
                Box::pin(async move { inspect::node_list(s, json).await })
            })
            .await
        }
        Command::Config(ConfigCommand::Example) => {
            print!("{}", config_example());
            Ok(())
        }
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
                Err(StoreError::Conflict(_)) => {
                    Err(inspect::already_exists(&format!("admin {username:?}")))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

async fn user_command(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create(args) => user_write::create(*args).await,
        UserCommand::SetOwner {
            username,
            admin,
            public_url,
            json,
            database,
        } => {
            with_store(&database, |s| {
                Box::pin(async move {
                    user_write::set_owner(s, &username, &admin, public_url.as_deref(), json).await
                })
            })
            .await
        }
        UserCommand::List {
            search,
            limit,
            json,
            database,
        } => {
            with_store(&database, |s| {
                Box::pin(async move { inspect::user_list(s, search, limit, json).await })
            })
            .await
        }
        UserCommand::Get {
            username,
            json,
            database,
        } => {
            with_store(&database, |s| {
                Box::pin(async move { inspect::user_get(s, &username, json).await })
            })
            .await
        }
    }
}

/// Opens the database, runs `f`, and closes it whatever `f` returned.
async fn with_store<F>(database: &DatabaseArgs, f: F) -> anyhow::Result<()>
where
    F: for<'a> FnOnce(
        &'a Store,
    ) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>,
{
    let store = inspect::open(database).await?;
    let result = f(&store).await;
    store.close().await;
    result
}

/// The control plane's CA, which only `serve` creates.
fn existing_pki(database: &DatabaseArgs) -> anyhow::Result<crate::pki::Pki> {
    if !database.data_dir.join("pki").exists() {
        bail!(
            "no control-plane CA under {}: run this where `nexpoint serve` keeps its data \
             (--data-dir)",
            database.data_dir.display()
        );
    }
    crate::pki::Pki::load_or_create(&database.data_dir).context("loading the control plane's CA")
}

/// Issues `name` a key and certificate and returns them as a bundle.
async fn node_bundle(name: &str, database: &DatabaseArgs) -> anyhow::Result<String> {
    let pki = existing_pki(database)?;
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
