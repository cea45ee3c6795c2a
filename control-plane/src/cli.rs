//! Command-line entry points.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::api::hash_password;
use crate::config::{DatabaseArgs, ServeArgs};
use crate::store::{NewAdmin, Store, StoreError};

#[derive(Debug, Parser)]
#[command(name = "nexpoint", version, about = "Nexpoint control plane")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane daemon.
    Serve(Box<ServeArgs>),
    /// Manage admins directly in the database.
    #[command(subcommand)]
    Admin(AdminCommand),
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
