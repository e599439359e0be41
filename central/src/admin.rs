//! Administration of a central database, for `tend central site …` and
//! `tend central user …`: sites and their agents' tokens, desk users and their
//! passwords. These open the database directly (the same one a running service
//! uses; SQLite and PostgreSQL both allow that) and print what they did.

use std::io::Write;

use anyhow::Context as _;
use tend_wire::model::WireTime;

use super::desk::auth::hash_password;
use super::store::{Database, Store};

/// `tend central site …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SiteCommand {
    /// Adds a site and prints its agents' token, once (only its hash is kept). The
    /// token creates and touches only this site's tickets.
    Add {
        /// The site id, as the site's agent names its tickets (`site` in the ticket).
        name: String,
    },
    /// Every site, with when it was added and whether its token is revoked.
    List,
    /// Ends a site's token at once (its tickets stay).
    Revoke {
        /// The site id.
        name: String,
    },
    /// Gives a site a new token (printed once); the old one stops working.
    Rotate {
        /// The site id.
        name: String,
    },
}

/// `tend central user …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum UserCommand {
    /// Adds a desk user; the password is the first line of standard input (typed on
    /// a terminal it is echoed: prefer a pipe or `--password-file FILE`), at least
    /// 10 characters. Stored as an argon2id hash.
    Add {
        /// The user's name, as the ticket timeline shows it.
        name: String,
        /// Read the password from this file (first line) instead of standard input.
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
    },
    /// Sets a desk user's password (read as for `add`); ends their sessions.
    Passwd {
        /// The user's name.
        name: String,
        /// Read the password from this file (first line) instead of standard input.
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
    },
    /// Removes a desk user and ends their sessions.
    Remove {
        /// The user's name.
        name: String,
    },
    /// Every desk user's name.
    List,
}

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

fn now() -> WireTime {
    WireTime::from_timestamp(jiff::Timestamp::now(), jiff::tz::Offset::UTC)
}

/// Runs a `site` command on `database`, printing to `out`.
pub async fn site(
    database: &Database,
    command: SiteCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = open(database).await?;
    let result = site_on(&store, command, out).await;
    store.close().await;
    result
}

async fn site_on(store: &Store, command: SiteCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        SiteCommand::Add { name } => {
            let token = store.add_site(&name, &now()).await?;
            writeln!(out, "site {name} added; its agents' token (shown only now):\n{token}")?;
        }
        SiteCommand::Rotate { name } => {
            let token = store.rotate_site(&name).await?;
            writeln!(
                out,
                "site {name} has a new token (shown only now; the old one is void):\n{token}"
            )?;
        }
        SiteCommand::Revoke { name } => {
            anyhow::ensure!(store.revoke_site(&name, &now()).await?, "no site {name:?}");
            writeln!(out, "site {name}: token revoked")?;
        }
        SiteCommand::List => {
            for site in store.sites().await? {
                match site.revoked_at {
                    Some(at) => {
                        writeln!(out, "{}\tadded {}\trevoked {at}", site.name, site.created_at)?
                    }
                    None => writeln!(out, "{}\tadded {}\tactive", site.name, site.created_at)?,
                }
            }
        }
    }
    Ok(())
}

/// Runs a `user` command on `database`, reading passwords from `input`, printing
/// to `out`.
pub async fn user(
    database: &Database,
    command: UserCommand,
    input: &mut impl std::io::BufRead,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = open(database).await?;
    let result = user_on(&store, command, input, out).await;
    store.close().await;
    result
}

async fn user_on(
    store: &Store,
    command: UserCommand,
    input: &mut impl std::io::BufRead,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, password_file } => {
            anyhow::ensure!(
                store.password_hash(&name).await?.is_none(),
                "desk user {name:?} exists (`tend central user passwd {name}` changes the password)"
            );
            let hash = new_hash(password_file.as_deref(), input).await?;
            anyhow::ensure!(
                store.put_user(&name, &hash, &now(), false).await?,
                "desk user {name:?} exists"
            );
            writeln!(out, "desk user {name}: added")?;
        }
        UserCommand::Passwd { name, password_file } => {
            anyhow::ensure!(store.password_hash(&name).await?.is_some(), "no desk user {name:?}");
            let hash = new_hash(password_file.as_deref(), input).await?;
            store.put_user(&name, &hash, &now(), true).await?;
            writeln!(out, "desk user {name}: password changed (their sessions ended)")?;
        }
        UserCommand::Remove { name } => {
            anyhow::ensure!(store.remove_user(&name).await?, "no desk user {name:?}");
            writeln!(out, "desk user {name}: removed (their sessions ended)")?;
        }
        UserCommand::List => {
            for name in store.users().await? {
                writeln!(out, "{name}")?;
            }
        }
    }
    Ok(())
}

/// The argon2 hash of the password read as [`read_password`] does.
async fn new_hash(
    file: Option<&std::path::Path>,
    input: &mut impl std::io::BufRead,
) -> anyhow::Result<String> {
    let password = read_password(file, input)?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// The first line of `file`, or of `input`; at least [`MIN_PASSWORD`] characters.
fn read_password(
    file: Option<&std::path::Path>,
    input: &mut impl std::io::BufRead,
) -> anyhow::Result<String> {
    let mut line = String::new();
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the password from {}", path.display()))?;
            line = text.lines().next().unwrap_or_default().to_owned();
        }
        None => {
            input.read_line(&mut line).context("reading the password from standard input")?;
        }
    }
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD,
        "the password must have at least {MIN_PASSWORD} characters (first line of standard input or --password-file)"
    );
    Ok(password)
}

async fn open(database: &Database) -> anyhow::Result<Store> {
    Store::open(database)
        .await
        .with_context(|| format!("opening the central database ({})", database.describe()))
}
