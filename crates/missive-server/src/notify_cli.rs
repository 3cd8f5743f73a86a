//! `missive app callback|presend|push …`: an app's callback rules and push providers from
//! the command line, beside a running server (which applies a change within a second) or
//! with none. Output is JSON, one object per line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use missive_core::store::NotifyRuleKind;
use missive_notify::callback::NewCallbackRule;
use missive_notify::callback::policy::RetryPolicy;
use missive_notify::callback::rule::{parse_chat_types, parse_events, parse_types};
use missive_notify::push::ProviderConfig;
use missive_notify::push::apns::{ApnsConfig, PRODUCTION};
use missive_notify::push::fcm::{FCM_BASE, FcmConfig, ServiceAccount};
use missive_notify::push::provider::WebhookConfig;
use missive_server::notify::admin::{self, NewPreSendRule};
use missive_server::open_store;

use crate::StoreArgs;

/// The app a command is about.
#[derive(Args)]
pub struct AppName {
    org: String,
    app: String,
}

/// What both kinds of rule are made of.
#[derive(Args)]
pub struct RuleArgs {
    /// http:// or https:// endpoint.
    #[arg(long)]
    url: String,
    /// Signing secret (default: 32 random hex characters).
    #[arg(long)]
    secret: Option<String>,
    /// Unique per app among all its rules (default: the id without dashes).
    #[arg(long)]
    name: Option<String>,
    /// Message types: txt,img,audio,video,file,loc,cmd,custom (default: all).
    #[arg(long)]
    types: Option<String>,
    /// chat,groupchat,chatroom (default: all).
    #[arg(long)]
    chat_types: Option<String>,
}

#[derive(Subcommand)]
pub enum CallbackCommand {
    /// Add a post-send rule; prints it (with its id and secret).
    Add {
        #[command(flatten)]
        app: AppName,
        #[command(flatten)]
        rule: RuleArgs,
        /// Any of chat,chat_offline,recall,read_ack (default: all).
        #[arg(long)]
        events: Option<String>,
        /// Report messages sent through the REST API too.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        include_rest: bool,
        /// Further attempts after Easemob's immediate retry, e.g. 10s,1m,10m,1h.
        #[arg(long)]
        backoff: Option<String>,
        /// Keep callbacks that run out of attempts for `callbacks/storage/retry`.
        #[arg(long)]
        keep_exceptions: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print every post-send rule of the app, one JSON object per line.
    List {
        #[command(flatten)]
        app: AppName,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a post-send rule by id or name.
    Remove {
        #[command(flatten)]
        app: AppName,
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum PresendCommand {
    /// Add a pre-send rule; prints it.
    Add {
        #[command(flatten)]
        app: AppName,
        #[command(flatten)]
        rule: RuleArgs,
        /// How long to wait for the app server.
        #[arg(long, default_value_t = 200)]
        timeout_ms: u64,
        /// What a failed check (late, not 200, malformed) does: pass or block.
        #[arg(long, default_value = "pass")]
        on_failure: String,
        /// Whether a blocked sender is told.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        report_error: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print every pre-send rule of the app.
    List {
        #[command(flatten)]
        app: AppName,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a pre-send rule by id or name.
    Remove {
        #[command(flatten)]
        app: AppName,
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ProviderKind {
    Webhook,
    Apns,
    Fcm,
}

#[derive(Subcommand)]
pub enum PushCommand {
    /// Set the app's push provider NAME (the `notifier_name` devices bind to).
    Set {
        #[command(flatten)]
        app: AppName,
        name: String,
        #[arg(long, value_enum)]
        provider: ProviderKind,
        /// webhook: where notifications are POSTed.
        #[arg(long)]
        url: Option<String>,
        /// webhook: signing secret.
        #[arg(long)]
        secret: Option<String>,
        /// apns: Team ID.
        #[arg(long)]
        team_id: Option<String>,
        /// apns: Key ID of the .p8 key.
        #[arg(long)]
        key_id: Option<String>,
        /// apns: the .p8 key file.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// apns: the app's bundle id.
        #[arg(long)]
        topic: Option<String>,
        /// apns: Apple's sandbox instead of production.
        #[arg(long)]
        sandbox: bool,
        /// fcm: the service-account key file from Firebase.
        #[arg(long)]
        service_account: Option<PathBuf>,
        /// fcm: data-only messages (the app shows the notification itself).
        #[arg(long)]
        data_only: bool,
        /// apns/fcm: another endpoint (a gateway, a test server).
        #[arg(long)]
        base_url: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the app's providers, secrets left out.
    List {
        #[command(flatten)]
        app: AppName,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a provider.
    Remove {
        #[command(flatten)]
        app: AppName,
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `10s`, `1m`, `250ms`, `1h` → ms.
fn duration_ms(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().with_context(|| format!("bad duration {s:?}"))?;
    let factor = match unit {
        "ms" => 1,
        "s" | "" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => anyhow::bail!("bad duration {s:?} (use ms, s, m or h)"),
    };
    Ok(n * factor)
}

/// Opens the store and finds the app; runs `f`; closes the store.
async fn with_app<T>(
    store: &StoreArgs,
    app: &AppName,
    f: impl AsyncFnOnce(&dyn missive_core::store::Store, uuid::Uuid) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let config = store.load()?;
    let db = open_store(&config).await?;
    let found = db.app_by_name(&app.org, &app.app).await?.with_context(|| format!("no app {}/{}", app.org, app.app))?;
    let result = f(&*db, found.id).await;
    db.close().await;
    result
}

fn print(v: impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(&v)?);
    Ok(())
}

pub async fn callback(command: CallbackCommand) -> anyhow::Result<()> {
    match command {
        CallbackCommand::Add { app, rule, events, include_rest, backoff, keep_exceptions, store } => {
            let backoff_ms = match backoff {
                Some(list) => {
                    list.split(',').filter(|s| !s.trim().is_empty()).map(duration_ms).collect::<anyhow::Result<_>>()?
                }
                None => Vec::new(),
            };
            let RuleArgs { url, secret, name, types, chat_types } = rule;
            let new = NewCallbackRule {
                url,
                name,
                secret,
                events: events.as_deref().map(parse_events).transpose()?,
                msg_types: types.as_deref().map(parse_types),
                chat_types: chat_types.as_deref().map(parse_chat_types).transpose()?,
                include_rest: Some(include_rest),
                retry: Some(RetryPolicy { backoff_ms, keep_exceptions }),
            };
            with_app(&store, &app, async |db, id| Ok(print(admin::add_callback(db, id, new, true).await?)?)).await
        }
        CallbackCommand::List { app, store } => {
            with_app(&store, &app, async |db, id| {
                for (rule, _) in admin::callbacks(db, id).await? {
                    print(rule)?;
                }
                Ok(())
            })
            .await
        }
        CallbackCommand::Remove { app, id: key, store } => {
            with_app(&store, &app, async |db, id| remove(db, id, NotifyRuleKind::PostSend, &key).await).await
        }
    }
}

async fn remove(
    db: &dyn missive_core::store::Store,
    app: uuid::Uuid,
    kind: NotifyRuleKind,
    key: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(admin::remove_rule(db, app, kind, key).await?, "no rule {key:?}");
    eprintln!("removed {key}");
    Ok(())
}

pub async fn presend(command: PresendCommand) -> anyhow::Result<()> {
    match command {
        PresendCommand::Add { app, rule, timeout_ms, on_failure, report_error, store } => {
            let RuleArgs { url, secret, name, types, chat_types } = rule;
            let pass_on_failure = match on_failure.as_str() {
                "pass" => true,
                "block" => false,
                other => anyhow::bail!("--on-failure {other:?}: use pass or block"),
            };
            let new = NewPreSendRule {
                url,
                name,
                secret,
                msg_types: types.as_deref().map(parse_types),
                chat_types: chat_types.as_deref().map(parse_chat_types).transpose()?,
                timeout_ms: Some(timeout_ms),
                pass_on_failure: Some(pass_on_failure),
                report_error: Some(report_error),
                enabled: Some(true),
            };
            with_app(&store, &app, async |db, id| Ok(print(admin::add_presend(db, id, new).await?)?)).await
        }
        PresendCommand::List { app, store } => {
            with_app(&store, &app, async |db, id| {
                for rule in admin::presends(db, id).await? {
                    print(rule)?;
                }
                Ok(())
            })
            .await
        }
        PresendCommand::Remove { app, id: key, store } => {
            with_app(&store, &app, async |db, id| remove(db, id, NotifyRuleKind::PreSend, &key).await).await
        }
    }
}

fn required<T>(v: Option<T>, flag: &str, provider: &str) -> anyhow::Result<T> {
    v.with_context(|| format!("--provider {provider} needs --{flag}"))
}

pub async fn push(command: PushCommand) -> anyhow::Result<()> {
    match command {
        PushCommand::Set {
            app,
            name,
            provider,
            url,
            secret,
            team_id,
            key_id,
            key_file,
            topic,
            sandbox,
            service_account,
            data_only,
            base_url,
            store,
        } => {
            let config = match provider {
                ProviderKind::Webhook => ProviderConfig::Webhook(WebhookConfig {
                    url: required(url, "url", "webhook")?,
                    secret: required(secret, "secret", "webhook")?,
                }),
                ProviderKind::Apns => {
                    let key_file = required(key_file, "key-file", "apns")?;
                    let default = if sandbox { "https://api.sandbox.push.apple.com" } else { PRODUCTION };
                    ProviderConfig::Apns(ApnsConfig {
                        team_id: required(team_id, "team-id", "apns")?,
                        key_id: required(key_id, "key-id", "apns")?,
                        private_key_pem: std::fs::read_to_string(&key_file)
                            .with_context(|| format!("reading {}", key_file.display()))?,
                        topic: required(topic, "topic", "apns")?,
                        base_url: base_url.unwrap_or_else(|| default.to_owned()),
                    })
                }
                ProviderKind::Fcm => {
                    let file = required(service_account, "service-account", "fcm")?;
                    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                    let account: ServiceAccount = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not a service-account key file", file.display()))?;
                    ProviderConfig::Fcm(FcmConfig {
                        service_account: account,
                        base_url: base_url.unwrap_or_else(|| FCM_BASE.to_owned()),
                        data_only,
                    })
                }
            };
            with_app(&store, &app, async |db, id| {
                admin::set_provider(db, id, &name, &config).await?;
                let listed = admin::providers(db, id).await?;
                print(listed.into_iter().find(|p| p["name"] == name.as_str()))
            })
            .await
        }
        PushCommand::List { app, store } => {
            with_app(&store, &app, async |db, id| {
                for p in admin::providers(db, id).await? {
                    print(p)?;
                }
                Ok(())
            })
            .await
        }
        PushCommand::Remove { app, name, store } => {
            with_app(&store, &app, async |db, id| {
                anyhow::ensure!(admin::remove_provider(db, id, &name).await?, "no provider {name:?}");
                eprintln!("removed {name}");
                Ok(())
            })
            .await
        }
    }
}
