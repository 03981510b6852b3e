//! `retentionos-api` command line: `serve`, `migrate`, `tenant ...`, `user ...`, `secrets ...`.

use clap::{Parser, Subcommand};
use shared::{
    accounts,
    audit::Actor,
    db,
    tenants::{self, KeyKind, Mode},
    Config,
};
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(name = "retentionos-api", version, about = "RetentionOS HTTP API")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API on API_ADDR.
    Serve,
    /// Create the database if missing and apply pending migrations.
    Migrate,
    /// Make sure the demo tenant ("Demo") exists with a published flow, and issue a fresh
    /// test-mode publishable key for the `/demo` page (prints JSON; a new tenant's keys too).
    Demo {
        /// Development only: connect the demo tenant's test mode to the local Stripe sandbox
        /// at STRIPE_API_BASE (`rtos-stripe-sandbox`; a loopback http:// URL) with a sandbox
        /// key and webhook secret, unless its test mode already has Stripe settings (kept:
        /// the sandbox takes any test key). `scripts/run` passes it.
        #[arg(long)]
        stripe_sandbox: bool,
    },
    /// Manage tenants and their keys.
    Tenant {
        #[command(subcommand)]
        action: TenantCmd,
    },
    /// Dashboard users.
    User {
        #[command(subcommand)]
        action: UserCmd,
    },
    /// Secrets at rest: master-key rotation, token signing secrets.
    Secrets {
        #[command(subcommand)]
        action: SecretsCmd,
    },
    /// Print the OpenAPI document (what `GET /openapi.json` serves), with `servers` from
    /// PUBLIC_BASE_URL. Needs no database.
    Openapi,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a dashboard user of a tenant. With --password-stdin the password is read from
    /// standard input (first line); without it a one-time set-password link is printed
    /// (valid 72 hours). Prints JSON.
    Create {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["owner", "admin", "analyst"])]
        role: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Re-encrypt every stored secret under the current MASTER_KEY (reading with it or with
    /// MASTER_KEY_PREVIOUS), in batches; idempotent and restartable. Prints counts; exits
    /// non-zero if anything could not be decrypted (then keep the previous key).
    RotateMaster {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch_size: i64,
    },
    /// Give every tenant and mode without a customer-token signing secret one (not
    /// printed; POST /v1/widget_tokens signs with it). For tenants created before signing
    /// secrets existed; running it again issues none.
    IssueSigningSecrets,
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant; prints its secret and publishable keys and its customer-token
    /// signing secrets for test and live mode (once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// List tenants (JSON).
    List,
    /// List a tenant's keys (never the plaintext).
    Keys {
        #[arg(long)]
        tenant: Uuid,
    },
    /// Issue a new key and retire the current ones of that kind and mode.
    RotateKey {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long, value_parser = ["secret", "publishable"])]
        kind: String,
        #[arg(long, value_parser = ["test", "live"])]
        mode: String,
        /// Seconds the old key keeps working.
        #[arg(long, default_value_t = 0)]
        grace_seconds: i64,
    },
    /// Issue a new customer-token signing secret (printed once) and retire the current one.
    RotateSigningSecret {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long, value_parser = ["test", "live"])]
        mode: String,
        /// Seconds the old secret keeps verifying tokens.
        #[arg(long, default_value_t = 0)]
        grace_seconds: i64,
    },
    /// Revoke one key.
    RevokeKey {
        #[arg(long)]
        tenant: Uuid,
        #[arg(long)]
        key: Uuid,
    },
}

/// Runs a non-serving command against the configured database.
pub async fn run_admin(config: Config, cmd: Command) -> anyhow::Result<()> {
    if matches!(cmd, Command::Openapi) {
        let doc = crate::openapi_document(&config.public_base_url);
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let url = config.database_url.expose().to_string();
    if matches!(cmd, Command::Migrate) {
        db::ensure_database(&url).await?;
    }
    let pool = db::lazy_pool(&url, &config.pool, "retentionos-cli")?;
    let master = shared::crypto::MasterKey::from_config(&config)?;
    match cmd {
        Command::Serve => unreachable!("handled by main"),
        Command::Openapi => unreachable!("handled above"),
        Command::Migrate => {
            db::migrate(&pool).await?;
            println!("migrations applied");
        }
        Command::Demo { stripe_sandbox } => {
            let out = demo(&pool, &master, &config, stripe_sandbox).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::User {
            action:
                UserCmd::Create {
                    tenant,
                    email,
                    role,
                    password_stdin,
                },
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim_end_matches(['\r', '\n']).to_string())
            } else {
                None
            };
            let role = accounts::Role::parse(&role).expect("clap checked the role");
            let mut tx = pool.begin().await?;
            let user = accounts::create_user(
                &mut tx,
                tenant,
                &email,
                role,
                password.as_deref(),
                &Actor::cli(),
            )
            .await?;
            let link = match password {
                Some(_) => None,
                None => {
                    let token =
                        accounts::issue_link(&mut tx, user.id, accounts::LinkPurpose::SetPassword)
                            .await?;
                    Some(crate::dashboard::link_url(&config, "set-password", &token))
                }
            };
            tx.commit().await?;
            let out = serde_json::json!({
                "id": user.id, "tenant_id": user.tenant_id, "email": user.email,
                "role": user.role.as_str(), "set_password_link": link,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Tenant { action } => {
            let out = match action {
                TenantCmd::Create { name } => {
                    let t = tenants::create_tenant_as(
                        &pool,
                        &master,
                        &name,
                        false,
                        Some(&Actor::cli()),
                    )
                    .await?;
                    serde_json::json!({ "tenant": t.tenant, "keys": t.keys,
                        "token_signing_secrets": t.token_signing_secrets,
                        "note": "Keys and signing secrets are shown once; store them now." })
                }
                TenantCmd::List => serde_json::to_value(tenants::list_tenants(&pool).await?)?,
                TenantCmd::Keys { tenant } => {
                    serde_json::to_value(tenants::list_keys(&pool, tenant).await?)?
                }
                TenantCmd::RotateKey {
                    tenant,
                    kind,
                    mode,
                    grace_seconds,
                } => {
                    let kind = KeyKind::parse(&kind).expect("validated by clap");
                    let mode = Mode::parse(&mode).expect("validated by clap");
                    serde_json::to_value(
                        tenants::rotate_key(
                            &pool,
                            &Actor::cli(),
                            tenant,
                            kind,
                            mode,
                            grace_seconds,
                        )
                        .await?,
                    )?
                }
                TenantCmd::RotateSigningSecret {
                    tenant,
                    mode,
                    grace_seconds,
                } => {
                    let mode = Mode::parse(&mode).expect("validated by clap");
                    serde_json::to_value(
                        shared::signing_secrets::rotate(
                            &pool,
                            &master,
                            &Actor::cli(),
                            tenant,
                            mode,
                            grace_seconds,
                        )
                        .await?,
                    )?
                }
                TenantCmd::RevokeKey { tenant, key } => {
                    if !tenants::revoke_key(&pool, &Actor::cli(), tenant, None, key).await? {
                        anyhow::bail!("tenant {tenant} has no key {key}");
                    }
                    serde_json::json!({ "id": key, "revoked": true })
                }
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Secrets {
            action: SecretsCmd::RotateMaster { batch_size },
        } => {
            let report =
                shared::secrets::rotate_master(&pool, &master, &Actor::cli(), batch_size).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report.unreadable() > 0 {
                anyhow::bail!(
                    "{} ciphertexts could not be decrypted with MASTER_KEY or MASTER_KEY_PREVIOUS; keep the previous key configured",
                    report.unreadable()
                );
            }
        }
        Command::Secrets {
            action: SecretsCmd::IssueSigningSecrets,
        } => {
            let issued =
                shared::signing_secrets::issue_missing(&pool, &master, &Actor::cli(), None).await?;
            println!("{}", serde_json::json!({ "issued": issued }));
        }
    }
    Ok(())
}

const DEMO_FLOW: &str = r#"{
  "name": "Demo cancel flow", "language": "en", "is_default": true,
  "steps": [
    {"id": "survey", "type": "survey", "title": "Why are you leaving?", "reasons": [
      {"code": "too_expensive", "label": "It's too expensive", "follow_up": "What price would work for you?"},
      {"code": "missing_features", "label": "It's missing features I need"},
      {"code": "not_using", "label": "I'm not using it enough"},
      {"code": "other", "label": "Something else"}]},
    {"id": "feedback", "type": "feedback", "title": "Anything we could do better?"},
    {"id": "offers", "type": "offer", "title": "Before you go", "offers": [
      {"id": "disc20", "type": "discount", "title": "20% off for 3 months", "description": "Stay and save on your next three invoices.",
       "reason_codes": ["too_expensive"], "discount": {"percent_off": 20, "duration": "repeating", "duration_in_months": 3}},
      {"id": "pause2", "type": "pause", "title": "Pause for 2 months", "description": "Keep your data; billing resumes later.", "pause": {"months": 2}}]},
    {"id": "confirm", "type": "confirm", "title": "Cancel your subscription?", "body": "You keep access until the end of the billing period."}
  ]
}"#;

/// The demo tenant's dashboard owner (development only).
pub const DEMO_USER: &str = "demo@retentionos.test";

async fn demo(
    pool: &sqlx::PgPool,
    master: &shared::crypto::MasterKey,
    config: &Config,
    stripe_sandbox: bool,
) -> anyhow::Result<serde_json::Value> {
    if stripe_sandbox {
        if config.is_production() {
            anyhow::bail!("--stripe-sandbox is for development only (APP_ENV=production)");
        }
        if !shared::config::is_loopback_http_base(&config.stripe_api_base) {
            anyhow::bail!(
                "--stripe-sandbox needs STRIPE_API_BASE to be the local sandbox (a loopback http:// URL, as rtos-stripe-sandbox prints), not {:?}",
                config.stripe_api_base
            );
        }
    }
    let existing =
        sqlx::query_scalar!("SELECT id FROM tenants WHERE demo ORDER BY created_at LIMIT 1")
            .fetch_optional(pool)
            .await?;
    let (tenant, created) = match existing {
        Some(id) => (id, None),
        None => {
            let t =
                tenants::create_tenant_as(pool, master, "Demo", true, Some(&Actor::cli())).await?;
            (t.tenant.id, Some(t.keys))
        }
    };
    let flows = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM flows WHERE tenant_id = $1 AND mode = 'test' AND deleted_at IS NULL AND published_version IS NOT NULL"#,
        tenant,
    )
    .fetch_one(pool)
    .await?;
    if flows == 0 {
        let def = shared::flows::parse_flow(serde_json::from_str(DEMO_FLOW)?)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.param, e.message))?;
        def.validate()
            .map_err(|e| anyhow::anyhow!("{}: {}", e.param, e.message))?;
        let value = serde_json::to_value(&def)?;
        let id = Uuid::now_v7();
        let mut tx = pool.begin().await?;
        sqlx::query!(
            "INSERT INTO flows (id, tenant_id, mode, name, language, ranking_score, is_default, draft, published_version) VALUES ($1, $2, 'test', $3, $4, 0, true, $5, 1)",
            id,
            tenant,
            &def.name,
            &def.language,
            &value,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO flow_versions (tenant_id, mode, flow_id, version, definition) VALUES ($1, 'test', $2, 1, $3)",
            tenant,
            id,
            &value,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    // A demo tenant from before signing secrets needs one to sign the page's tokens.
    shared::signing_secrets::issue_missing(pool, master, &Actor::cli(), Some(tenant)).await?;
    // Publishable keys are public; the demo page needs one, so a fresh one is issued.
    let pk = tenants::rotate_key(
        pool,
        &Actor::cli(),
        tenant,
        KeyKind::Publishable,
        Mode::Test,
        0,
    )
    .await?;
    // Outside production, a dashboard owner with a fresh password each run (set through a
    // one-time link like any user's, so the old password and its sessions end).
    let dashboard = if config.is_production() {
        None
    } else {
        let existing = sqlx::query_scalar!(
            "SELECT id FROM dashboard_users WHERE email = $1 AND tenant_id = $2",
            DEMO_USER,
            tenant,
        )
        .fetch_optional(pool)
        .await?;
        let mut tx = pool.begin().await?;
        let user_id = match existing {
            Some(id) => id,
            None => {
                accounts::create_user(
                    &mut tx,
                    tenant,
                    DEMO_USER,
                    accounts::Role::Owner,
                    None,
                    &Actor::cli(),
                )
                .await?
                .id
            }
        };
        let token =
            accounts::issue_link(&mut tx, user_id, accounts::LinkPurpose::SetPassword).await?;
        tx.commit().await?;
        let password = shared::crypto::random_token(20);
        accounts::redeem_link(pool, &token, &password, None).await?;
        Some(serde_json::json!({
            "url": format!("{}/app", crate::dashboard::base_url(config)),
            "email": DEMO_USER,
            "password": password,
        }))
    };
    let stripe = if stripe_sandbox {
        Some(connect_sandbox(pool, master, tenant, &config.stripe_api_base).await?)
    } else {
        None
    };
    Ok(serde_json::json!({
        "tenant_id": tenant,
        "publishable_key": pk.key,
        "new_tenant_keys": created,
        "dashboard": dashboard,
        "stripe": stripe,
    }))
}

/// Gives the demo tenant's test mode Stripe settings for the sandbox (`demo
/// --stripe-sandbox`): a random `sk_test_sandbox_…` key and `whsec_sandbox_…` secret,
/// stored encrypted and audited like `PUT /v1/settings/stripe`. Settings already there are
/// kept (a developer's own test key works against the sandbox too, which takes any key).
async fn connect_sandbox(
    pool: &sqlx::PgPool,
    master: &shared::crypto::MasterKey,
    tenant: Uuid,
    api_base: &str,
) -> anyhow::Result<serde_json::Value> {
    use shared::crypto::{Aad, Column};
    let mut tx = pool.begin().await?;
    // Serialises two `demo` runs: the second sees the first one's row.
    sqlx::query_scalar!("SELECT id FROM tenants WHERE id = $1 FOR UPDATE", tenant)
        .fetch_optional(&mut *tx)
        .await?;
    let existing = sqlx::query_scalar!(
        "SELECT api_key_last4 FROM stripe_settings WHERE tenant_id = $1 AND mode = 'test'",
        tenant,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(last4) = existing {
        tx.commit().await?;
        return Ok(serde_json::json!({
            "mode": "test", "api_base": api_base, "connected": "kept", "api_key_last4": last4,
        }));
    }
    let key = format!("sk_test_sandbox_{}", shared::crypto::random_token(24));
    let whsec = format!("whsec_sandbox_{}", shared::crypto::random_token(24));
    let last4: String = key[key.len() - 4..].to_string();
    sqlx::query!(
        "INSERT INTO stripe_settings (tenant_id, mode, api_key_enc, api_key_last4, webhook_secrets_enc)
         VALUES ($1, 'test', $2, $3, $4)",
        tenant,
        master.encrypt(&key, &Aad::new(Column::StripeApiKey, tenant, Mode::Test)),
        &last4,
        serde_json::json!([master.encrypt(
            &whsec,
            &Aad::new(Column::StripeWebhookSecret, tenant, Mode::Test)
        )]),
    )
    .execute(&mut *tx)
    .await?;
    shared::audit::record(
        &mut tx,
        &Actor::cli(),
        shared::audit::Change {
            tenant_id: Some(tenant),
            mode: Some(Mode::Test),
            action: "stripe_settings.update",
            target_type: "stripe_settings",
            target_id: Some("test".into()),
            before: None,
            after: Some(serde_json::json!({"api_key_last4": last4, "webhook_secrets": 1})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(serde_json::json!({
        "mode": "test", "api_base": api_base, "connected": "sandbox", "api_key_last4": last4,
    }))
}

/// The binary's entry point (shared with the test harness's wrapper binary).
pub fn entrypoint() -> std::process::ExitCode {
    let cli = Cli::parse();
    shared::process::entrypoint(|config| async move {
        match cli.command {
            Command::Serve => {
                shared::telemetry::init_tracing(config.log_format);
                crate::run(config).await
            }
            cmd => run_admin(config, cmd).await,
        }
    })
}
