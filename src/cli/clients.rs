//! `arbiter clients`: OAuth clients in the store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use serde_json::{json, Value};

use super::StoreArgs;

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum ClientsCommand {
    /// Create a client; prints its id and its secret (shown only now).
    Create {
        /// Human-readable name.
        #[arg(long)]
        name: String,
        /// Space-separated scopes the client may ever be granted.
        #[arg(long, default_value = "")]
        scopes: String,
        /// Token endpoint authentication method: client_secret_basic, client_secret_post,
        /// private_key_jwt, tls_client_auth or self_signed_tls_client_auth (RFC 8705).
        #[arg(long, default_value = "client_secret_basic")]
        auth_method: String,
        /// The client's JWKS file: signing keys for private_key_jwt, certificates (`x5c`)
        /// for self_signed_tls_client_auth.
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// Or the URL where the client publishes its JWKS (https, or http on loopback).
        #[arg(long, conflicts_with = "jwks")]
        jwks_uri: Option<String>,
        /// Space-separated resource servers (RFC 8707 `resource`, absolute URIs, also listed
        /// in `[oauth] resources`) the client may ask tokens for.
        #[arg(long, default_value = "")]
        resources: String,
        /// Accept the token endpoint URL as the `aud` of this client's assertions besides the
        /// issuer identifier: only for old private_key_jwt clients that cannot be changed.
        #[arg(long)]
        legacy_audience: bool,
        /// tls_client_auth: the certificate's subject DN (RFC 4514, e.g. "CN=payments,O=Example").
        #[arg(long, group = "tls_subject")]
        tls_subject_dn: Option<String>,
        /// tls_client_auth: a DNS name among the certificate's subject alternative names.
        #[arg(long, group = "tls_subject")]
        tls_san_dns: Option<String>,
        /// tls_client_auth: a URI among the certificate's subject alternative names.
        #[arg(long, group = "tls_subject")]
        tls_san_uri: Option<String>,
        /// tls_client_auth: an IP address among the certificate's subject alternative names.
        #[arg(long, group = "tls_subject")]
        tls_san_ip: Option<String>,
        /// tls_client_auth: an e-mail address among the certificate's subject alternative names.
        #[arg(long, group = "tls_subject")]
        tls_san_email: Option<String>,
        /// Print `export ARBITER_CLIENT_ID=… ARBITER_CLIENT_SECRET=…` lines for a shell
        /// (`. ./client.env`), which `arbiter ssa` reads.
        #[arg(long, conflicts_with = "json")]
        export: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List clients.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one client.
    Show {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable a client: it can no longer authenticate.
    Disable {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Replace a client's secret; prints the new one (shown only now).
    RotateSecret {
        /// Client id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(crate) fn clients(cmd: ClientsCommand) -> anyhow::Result<ExitCode> {
    use arbiter::oauth::clients;
    let store_args = match &cmd {
        ClientsCommand::Create { store, .. }
        | ClientsCommand::List { store }
        | ClientsCommand::Show { store, .. }
        | ClientsCommand::Disable { store, .. }
        | ClientsCommand::RotateSecret { store, .. } => store,
    };
    let config = store_args.config()?;
    let json_out = store_args.output.json();
    let show = |c: &arbiter::store::ClientRecord| {
        json!({
            "client_id": c.client_id,
            "name": c.name,
            "scopes": c.allowed_scopes.join(" "),
            "auth_method": c.auth_method,
            "resources": c.resources,
            "legacy_audience": c.legacy_audience,
            "tls_subject": c.tls_subject.as_ref().map(|(k, v)| json!({ k: v })),
            "disabled": c.disabled,
            "created_at": c.created_at,
        })
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = arbiter::store::open(&config).await?;
        match &cmd {
            ClientsCommand::Create {
                name,
                scopes,
                auth_method,
                jwks,
                jwks_uri,
                resources,
                legacy_audience,
                tls_subject_dn,
                tls_san_dns,
                tls_san_uri,
                tls_san_ip,
                tls_san_email,
                export,
                ..
            } => {
                let words = |s: &str| {
                    s.split_ascii_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                };
                let jwks = match jwks {
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("cannot read --jwks `{}`", path.display()))?;
                        Some(serde_json::from_str::<Value>(&text).context("--jwks is not JSON")?)
                    }
                    None => None,
                };
                let spec = clients::ClientSpec {
                    name: name.clone(),
                    scopes: words(scopes),
                    auth_method: auth_method.clone(),
                    jwks,
                    jwks_uri: jwks_uri.clone(),
                    resources: words(resources),
                    legacy_audience: *legacy_audience,
                    tls_subject: [
                        ("tls_client_auth_subject_dn", tls_subject_dn),
                        ("tls_client_auth_san_dns", tls_san_dns),
                        ("tls_client_auth_san_uri", tls_san_uri),
                        ("tls_client_auth_san_ip", tls_san_ip),
                        ("tls_client_auth_san_email", tls_san_email),
                    ]
                    .into_iter()
                    .find_map(|(name, v)| Some((name.to_owned(), v.clone()?))),
                    ..Default::default()
                };
                let created = clients::create(store.as_ref(), &spec).await?;
                if *export {
                    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
                    say!(
                        "export ARBITER_CLIENT_ID={}",
                        quote(&created.record.client_id)
                    );
                    if let Some(secret) = &created.secret {
                        say!("export ARBITER_CLIENT_SECRET={}", quote(secret));
                    }
                } else if json_out {
                    let mut out = json!({ "client_id": created.record.client_id });
                    if let Some(secret) = &created.secret {
                        out["client_secret"] = json!(secret);
                    }
                    say!("{out}");
                } else {
                    say!("client_id:     {}", created.record.client_id);
                    if let Some(secret) = &created.secret {
                        say!("client_secret: {secret}");
                        eprintln!("the secret is shown only now; store it safely");
                    }
                }
            }
            ClientsCommand::List { .. } => {
                let all = store.clients().await?;
                if json_out {
                    say!("{}", Value::Array(all.iter().map(show).collect()));
                } else {
                    for c in &all {
                        let state = if c.disabled { "disabled" } else { "enabled" };
                        say!(
                            "{}\t{}\t{}\t{}",
                            c.client_id,
                            state,
                            c.name,
                            c.allowed_scopes.join(" ")
                        );
                    }
                }
            }
            ClientsCommand::Show { client_id, .. } => {
                let c = store
                    .client(client_id)
                    .await?
                    .with_context(|| format!("no client `{client_id}`"))?;
                say!(
                    "{}",
                    if json_out {
                        show(&c).to_string()
                    } else {
                        serde_json::to_string_pretty(&show(&c))?
                    }
                );
            }
            ClientsCommand::Disable { client_id, .. } => {
                if !store.set_client_disabled(client_id, true).await? {
                    bail!("no client `{client_id}`");
                }
                if !json_out {
                    say!("disabled {client_id}");
                }
            }
            ClientsCommand::RotateSecret { client_id, .. } => {
                let secret = clients::rotate_secret(store.as_ref(), client_id).await?;
                if json_out {
                    say!(
                        "{}",
                        json!({ "client_id": client_id, "client_secret": secret })
                    );
                } else {
                    say!("client_secret: {secret}");
                    eprintln!("the secret is shown only now; the old one no longer works");
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
