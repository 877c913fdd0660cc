//! The `sluis` command line: serve, migrate, and the operator's commands.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::json;

use sluis::admin::{self, Actor, NewClientSpec, NewUserSpec};
use sluis::clock::{self, Clock};
use sluis::config::{Config, LogFormat};
use sluis::crypto::password::PasswordHasher;
use sluis::model::SigningAlg;
use sluis::state::InstanceSecrets;

#[derive(Parser)]
#[command(name = "sluis", version, about = "A privacy-aware OpenID Connect provider")]
struct Cli {
    /// Configuration file (default: ./sluis.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Apply the retention limits now: delete old sign-in records, truncate old IP
    /// addresses (`sluis serve` does this every hour). Prints what it did as JSON.
    Purge,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        admin: bool,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a user's second factor (a lost authenticator and recovery codes) and end their
    /// sessions; audited, and shown in the user's history. Check who is asking first.
    #[command(name = "reset-2fa")]
    Reset2fa { email: String },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints it as JSON, with its secret (shown only this once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (native or browser app) has no secret and must use PKCE.
        #[arg(long)]
        public: bool,
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// Algorithm for this client's ID and access tokens: RS256 (default), ES256, EdDSA.
        #[arg(long)]
        signing_alg: Option<String>,
        /// Start unverified, with sensitive scopes only requested (as a self-registered
        /// client would). By default the operator vouches for the client.
        #[arg(long)]
        unverified: bool,
    },
    /// Verify a client and approve sensitive scopes for it.
    Verify {
        client_id: String,
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// Reject a scope for a client, with a note for its owner.
    Reject {
        client_id: String,
        #[arg(long)]
        scope: String,
        #[arg(long)]
        note: String,
    },
    /// Suspend a client: no sign-ins, its tokens stop working at once.
    Suspend { client_id: String },
    /// Set the subject type: `pairwise` (default; a different `sub` per client) or `public`
    /// (one `sub` per user across clients, so clients can correlate users).
    SubjectType {
        client_id: String,
        #[arg(value_parser = ["pairwise", "public"])]
        subject_type: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a new signing key; the previous one stays published until its tokens expire.
    Rotate {
        #[arg(long, default_value = "RS256")]
        alg: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => {
            // One line: the reason, without the usage block. The reason may span several
            // lines (clap lists missing arguments below its first line); join them.
            let text = e.render().to_string();
            let reason: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            eprintln!("{}", if reason.is_empty() { "invalid arguments".to_string() } else { reason.join(" ") });
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Each cause once: an error that prints its source ("database: {0}") and also
            // returns it from source() would otherwise repeat it.
            let mut chain: Vec<String> = Vec::new();
            for cause in e.chain().map(|c| c.to_string().replace('\n', " ")) {
                if !chain.last().is_some_and(|last| last.ends_with(&cause)) {
                    chain.push(cause);
                }
            }
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log_format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    let clock = clock::system();
    match cli.command {
        Command::Serve => serve(config, clock).await,
        Command::Migrate => {
            let store = sluis::open_store(&config).await?;
            store.migrate().await.context("migration failed")?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Create { email, name, admin, password_stdin: _ }) => {
            let store = migrated_store(&config).await?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            let hasher = PasswordHasher::new(1);
            let user = admin::create_user(&store, &hasher, NewUserSpec { email, name, is_admin: admin, password }, clock.now()).await?;
            println!("{}", json!({"id": user.id.as_str(), "email": user.email, "admin": user.is_admin}));
            Ok(())
        }
        Command::User(UserCommand::Reset2fa { email }) => {
            let store = migrated_store(&config).await?;
            let reset = admin::reset_second_factor(&store, &email, &Actor::cli(), clock.now()).await?;
            println!("{}", serde_json::to_string(&reset)?);
            Ok(())
        }
        Command::Client(ClientCommand::Create { name, redirect_uris, post_logout_redirect_uris, public, scopes, grant_types, signing_alg, unverified }) => {
            let store = migrated_store(&config).await?;
            let spec = NewClientSpec { name, redirect_uris, post_logout_redirect_uris, public, scopes, grant_types, signing_alg, verified: !unverified };
            let (client, secret) = admin::create_client(&store, &catalogue(&config)?, spec, &Actor::cli(), clock.now()).await?;
            let mut out = json!({
                "client_id": client.id.as_str(),
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "post_logout_redirect_uris": client.post_logout_redirect_uris,
                "scope": client.scopes.to_string(),
                "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                "token_endpoint_auth_method": if client.is_public() { "none" } else { "client_secret_basic" },
                "id_token_signed_response_alg": client.signing_alg.as_str(),
                "status": client.status.as_str(),
            });
            if let Some(secret) = secret {
                out["client_secret"] = json!(secret);
            }
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{out}")?;
            Ok(())
        }
        Command::Client(ClientCommand::Verify { client_id, scopes }) => {
            let store = migrated_store(&config).await?;
            let client = admin::verify_client(&store, &client_id, &scopes, &Actor::cli(), clock.now()).await?;
            println!("{}", json!({"client_id": client.id.as_str(), "status": client.status.as_str(), "approved": client.approved_scopes.to_string()}));
            Ok(())
        }
        Command::Client(ClientCommand::Reject { client_id, scope, note }) => {
            let store = migrated_store(&config).await?;
            admin::reject_scope(&store, &client_id, &scope, &note, &Actor::cli(), clock.now()).await?;
            println!("{}", json!({"client_id": client_id, "rejected": scope}));
            Ok(())
        }
        Command::Client(ClientCommand::Suspend { client_id }) => {
            let store = migrated_store(&config).await?;
            admin::suspend_client(&store, &client_id, &Actor::cli(), clock.now()).await?;
            println!("{}", json!({"client_id": client_id, "status": "suspended"}));
            Ok(())
        }
        Command::Client(ClientCommand::SubjectType { client_id, subject_type }) => {
            let store = migrated_store(&config).await?;
            admin::set_subject_type(&store, &client_id, subject_type == "public", &Actor::cli(), clock.now()).await?;
            println!("{}", json!({"client_id": client_id, "subject_type": subject_type}));
            Ok(())
        }
        Command::Purge => {
            let store = migrated_store(&config).await?;
            let report = sluis::login::retention::purge(&store, &config, clock.now()).await.context("purge failed")?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate { alg }) => {
            let alg = SigningAlg::parse(&alg).with_context(|| format!("unknown algorithm {alg:?} (use RS256, ES256 or EdDSA)"))?;
            let store = migrated_store(&config).await?;
            let secrets = InstanceSecrets::new(&sluis::instance_secret(&config)?);
            // Make sure the ring is readable (and complete) before adding to it.
            sluis::crypto::rotation::load(&store, &secrets.key_sealer, clock.now(), sluis::retired_key_publication(&config)).await?;
            let kid = sluis::crypto::rotation::rotate(&store, &secrets.key_sealer, alg, clock.now()).await?;
            println!("{}", json!({"kid": kid, "alg": alg.as_str()}));
            Ok(())
        }
    }
}

fn catalogue(config: &Config) -> anyhow::Result<sluis::privacy::Catalogue> {
    sluis::privacy::Catalogue::with_custom(&config.scopes).map_err(|e| anyhow::anyhow!("configuration: key `scopes`: {e}"))
}

async fn migrated_store(config: &Config) -> anyhow::Result<sluis::store::Store> {
    let store = sluis::open_store(config).await?;
    store.migrate().await.context("migration failed")?;
    Ok(store)
}

async fn serve(config: Config, clock: std::sync::Arc<dyn Clock>) -> anyhow::Result<()> {
    init_logging(&config);
    let listen = config.listen;
    let state = sluis::build_state(config, clock).await?;
    sluis::spawn_maintenance(state.clone());
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(issuer = state.issuer(), "listening on http://{}", listener.local_addr()?);
    let service = sluis::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown()).await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
}
