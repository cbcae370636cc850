//! `hub user …` and `hub audit …`: the operator's commands for people and the audit log. They
//! work on the database directly (a running hub need not be up) and leave audit records as `cli`.

use anyhow::{Context, Result};
use clap::Subcommand;
use hub_api::credentials::lockout;
use hub_core::Role;
use hub_storage::{AuditEntry, AuditFilter, NewUser, Storage};

use crate::{config, open_db, tenant_named};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (with a one-time password printed alone on the last line) and optionally a
    /// role in a tenant.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// With --role: the tenant to join.
        #[arg(long, requires = "role")]
        tenant: Option<String>,
        /// owner, admin, analyst or viewer.
        #[arg(long, requires = "tenant")]
        role: Option<String>,
        /// Platform-wide: tenants, users, every tenant as owner.
        #[arg(long)]
        operator: bool,
        /// May publish plugins to the marketplace.
        #[arg(long)]
        publisher: bool,
        #[command(flatten)]
        db: config::ServeArgs,
    },
    /// List users (all, or a tenant's members with their roles).
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        db: config::ServeArgs,
    },
    /// Set a user's role in a tenant (`none` removes the membership).
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        tenant: String,
        /// owner, admin, analyst, viewer or none.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        db: config::ServeArgs,
    },
    /// Give a user a one-time password (printed alone on the last line), unlock the account and
    /// end its sessions.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        db: config::ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest audit records, oldest first (a tenant's, or the whole deployment's).
    Tail {
        #[arg(long)]
        tenant: Option<String>,
        /// How many records.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: usize,
        /// Keep printing new records every second until interrupted.
        #[arg(long)]
        follow: bool,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: config::ServeArgs,
    },
}

/// Records an action taken by a command (actor `cli`) in the audit log.
pub(crate) async fn audit_cli(
    storage: &dyn Storage,
    tenant: Option<hub_core::TenantId>,
    action: &str,
    target: String,
    before: Option<String>,
    after: Option<String>,
) -> Result<()> {
    storage
        .audit()
        .append_audit(&AuditEntry {
            at_ms: hub_core::time::now_ms(),
            tenant,
            actor: "cli".into(),
            action: action.into(),
            target: Some(target),
            outcome: "ok".into(),
            before,
            after,
            ..Default::default()
        })
        .await?;
    Ok(())
}

pub async fn run_user(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Create {
            email,
            name,
            tenant,
            role,
            operator,
            publisher,
            db,
        } => {
            let email = email.trim().to_lowercase();
            anyhow::ensure!(
                email.split('@').filter(|p| !p.is_empty()).count() == 2,
                "--email: '{email}' is not an email address"
            );
            let role = role
                .map(|r| Role::parse(&r))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--role: {e}"))?;
            let (storage, _) = open_db(db).await?;
            let t = match &tenant {
                Some(t) => Some(tenant_named(storage.as_ref(), t).await?),
                None => None,
            };
            let password = hub_api::credentials::passwords::one_time_password();
            let hash = hub_api::credentials::passwords::hash_password_async(password.clone()).await;
            let now = hub_core::time::now_ms();
            let access = storage.access();
            let user = access
                .create_user(
                    &NewUser {
                        email: email.clone(),
                        display_name: name.unwrap_or_else(|| email.clone()),
                        password_hash: Some(hash),
                        must_change_password: true,
                        operator,
                        publisher,
                    },
                    now,
                )
                .await?;
            if let (Some(t), Some(role)) = (&t, role) {
                access
                    .set_membership(user.id, t.id, Some(role), now)
                    .await?;
            }
            audit_cli(
                storage.as_ref(),
                t.as_ref().map(|t| t.id),
                "user.create",
                format!("user:{email}"),
                None,
                role.map(|r| format!(r#"{{"role":"{r}"}}"#)),
            )
            .await?;
            storage.close().await;
            println!(
                "created user {email}{}{} with a one-time password (change it at first login):",
                match (&t, role) {
                    (Some(t), Some(r)) => format!(", {r} of '{}'", t.name),
                    _ => String::new(),
                },
                if operator { ", operator" } else { "" }
            );
            println!("{password}");
        }
        UserCommand::List { tenant, db } => {
            let (storage, _) = open_db(db).await?;
            let now = hub_core::time::now_ms();
            let rows: Vec<(hub_storage::User, String)> = match tenant {
                Some(t) => {
                    let t = tenant_named(storage.as_ref(), &t).await?;
                    storage
                        .access()
                        .members(t.id)
                        .await?
                        .into_iter()
                        .map(|(u, r)| (u, r.to_string()))
                        .collect()
                }
                None => {
                    let mut rows = Vec::new();
                    for u in storage.access().list_users().await? {
                        let ms = storage.access().memberships(u.id).await?;
                        let roles = ms
                            .iter()
                            .map(|m| format!("{}:{}", m.tenant_name, m.role))
                            .collect::<Vec<_>>()
                            .join(",");
                        rows.push((u, roles));
                    }
                    rows
                }
            };
            println!(
                "{:>5}  {:<32}  {:<24}  {:<8}  {:<24}  roles",
                "id", "email", "name", "state", "last login"
            );
            let emails: Vec<String> = rows.iter().map(|(u, _)| u.email.clone()).collect();
            let locked = lockout::locked(storage.as_ref(), &emails, now).await?;
            for ((u, roles), locked) in rows.into_iter().zip(locked) {
                let state = if locked {
                    "locked"
                } else if u.must_change_password {
                    "new-pw"
                } else {
                    "active"
                };
                let flags = [(u.operator, "operator"), (u.publisher, "publisher")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, f)| *f)
                    .collect::<Vec<_>>();
                println!(
                    "{:>5}  {:<32}  {:<24}  {:<8}  {:<24}  {}{}",
                    u.id,
                    u.email,
                    u.display_name,
                    state,
                    u.last_login_at_ms
                        .map(hub_core::time::to_rfc3339)
                        .unwrap_or("-".into()),
                    roles,
                    if flags.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", flags.join(","))
                    }
                );
            }
            storage.close().await;
        }
        UserCommand::SetRole {
            email,
            tenant,
            role,
            db,
        } => {
            let role = match role.as_str() {
                "none" => None,
                r => Some(Role::parse(r).map_err(|e| anyhow::anyhow!("--role: {e}"))?),
            };
            let (storage, _) = open_db(db).await?;
            let t = tenant_named(storage.as_ref(), &tenant).await?;
            let access = storage.access();
            let user = access
                .user_by_email(&email)
                .await?
                .with_context(|| format!("no user {email} (hub user create --email {email})"))?;
            let members = access.members(t.id).await?;
            let was = members
                .iter()
                .find(|(u, _)| u.id == user.id)
                .map(|(_, r)| *r);
            anyhow::ensure!(
                !hub_api::leaves_no_owner(&members, user.id, role),
                "{email} is the last owner of '{}'; make another owner first",
                t.name
            );
            access
                .set_membership(user.id, t.id, role, hub_core::time::now_ms())
                .await?;
            if role.is_none() {
                access
                    .revoke_user_sessions(user.id, None, hub_core::time::now_ms())
                    .await?;
            }
            let show = |r: Option<Role>| r.map(|r| r.to_string()).unwrap_or("none".into());
            audit_cli(
                storage.as_ref(),
                Some(t.id),
                "member.role",
                format!("user:{}", user.email),
                Some(format!(r#"{{"role":"{}"}}"#, show(was))),
                Some(format!(r#"{{"role":"{}"}}"#, show(role))),
            )
            .await?;
            storage.close().await;
            println!(
                "{} in '{}': {} -> {}",
                user.email,
                t.name,
                show(was),
                show(role)
            );
        }
        UserCommand::ResetPassword { email, db } => {
            let (storage, _) = open_db(db).await?;
            let access = storage.access();
            let user = access
                .user_by_email(&email)
                .await?
                .with_context(|| format!("no user {email}"))?;
            let password = hub_api::credentials::passwords::one_time_password();
            let hash = hub_api::credentials::passwords::hash_password_async(password.clone()).await;
            access.set_password(user.id, &hash, true).await?;
            access
                .revoke_user_sessions(user.id, None, hub_core::time::now_ms())
                .await?;
            // As an admin's reset does: the owner of the new password is not held back by the
            // failures that may have led to the reset.
            lockout::clear(storage.as_ref(), &user.email, None).await?;
            audit_cli(
                storage.as_ref(),
                None,
                "user.password_reset",
                format!("user:{}", user.email),
                None,
                None,
            )
            .await?;
            storage.close().await;
            println!(
                "{} has a new one-time password (change it at first login):",
                user.email
            );
            println!("{password}");
        }
    }
    Ok(())
}

fn line(r: &hub_storage::AuditRecord, tenants: &[hub_storage::Tenant], json: bool) -> String {
    let e = &r.entry;
    let tenant = e
        .tenant
        .and_then(|t| tenants.iter().find(|x| x.id == t))
        .map(|t| t.name.as_str())
        .unwrap_or("-");
    if json {
        return serde_json::json!({
            "id": r.id, "at": hub_core::time::to_rfc3339(e.at_ms), "tenant": tenant, "actor": e.actor,
            "action": e.action, "target": e.target, "source": e.source, "outcome": e.outcome,
            "before": e.before.as_deref().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()),
            "after": e.after.as_deref().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()),
        })
        .to_string();
    }
    let change = match (&e.before, &e.after) {
        (None, None) => String::new(),
        (b, a) => format!(
            "  {} -> {}",
            b.as_deref().unwrap_or("-"),
            a.as_deref().unwrap_or("-")
        ),
    };
    format!(
        "{}  {:<10}  {:<28}  {:<22}  {:<6}  {}{}{}",
        hub_core::time::to_rfc3339(e.at_ms),
        tenant,
        e.actor,
        e.action,
        e.outcome,
        e.target.as_deref().unwrap_or("-"),
        e.source
            .as_deref()
            .map(|s| format!(" from {s}"))
            .unwrap_or_default(),
        change
    )
}

pub async fn run_audit(command: AuditCommand) -> Result<()> {
    let AuditCommand::Tail {
        tenant,
        lines,
        follow,
        json,
        db,
    } = command;
    let (storage, _) = open_db(db).await?;
    let tenant = match tenant {
        Some(t) => Some(tenant_named(storage.as_ref(), &t).await?.id),
        None => None,
    };
    let tenants = storage.tenants().list_tenants().await?;
    let mut records = storage
        .audit()
        .list_audit(tenant, &AuditFilter::default(), lines.clamp(1, 10_000))
        .await?;
    records.reverse();
    let mut last = records.last().map(|r| r.id).unwrap_or(0);
    for r in &records {
        println!("{}", line(r, &tenants, json));
    }
    if !follow {
        storage.close().await;
        return Ok(());
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let mut newer: Vec<_> = storage
            .audit()
            .list_audit(tenant, &AuditFilter::default(), 1000)
            .await?
            .into_iter()
            .filter(|r| r.id > last)
            .collect();
        newer.reverse();
        for r in &newer {
            println!("{}", line(r, &tenants, json));
            last = r.id;
        }
    }
}
