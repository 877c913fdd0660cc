//! Typed configuration: `sluis.toml` (or `--config FILE`), every key overridable by
//! `SLUIS_<KEY>`. Unknown keys and invalid values stop the start, naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use url::Url;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The issuer identifier: an https URL (http allowed for localhost), no query or fragment.
    pub issuer: String,
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; defaults to a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    /// Secret that seals signing keys at rest. Generated into `data_dir` when absent;
    /// set it explicitly when several nodes share one PostgreSQL database.
    pub instance_secret: Option<String>,
    pub access_token_ttl: u32,
    pub id_token_ttl: u32,
    pub refresh_token_ttl: u32,
    /// A rotated refresh token presented again within this many seconds is treated as a
    /// concurrent refresh, not a replay (RFC 9700 §4.14.2 allows such tolerance).
    pub refresh_grace_seconds: u32,
    pub session_ttl: u32,
    /// Concurrent password hashes; 0 means one per CPU core.
    pub password_hash_workers: usize,
    pub log_format: LogFormat,
    /// Who may register clients at `/account/clients`.
    pub client_registration: ClientRegistration,
    /// Failed sign-ins on one account within `login_window_seconds` that lock it for
    /// `login_lock_seconds` (from a third of this on, each failure also delays the next try).
    pub login_lock_after: u32,
    /// The same for one client IP address (an IPv6 /64), across accounts.
    pub login_ip_lock_after: u32,
    pub login_window_seconds: u32,
    pub login_lock_seconds: u32,
    /// How long sign-in records and IP addresses are kept (`[retention]`).
    pub retention: Retention,
    /// Proxies (addresses or CIDR ranges) whose `Forwarded` / `X-Forwarded-For` headers are
    /// believed; from anyone else the connection's address is the client's.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Requests per client IP before `429 Too Many Requests`; 0 turns a limit off.
    pub rate_limit_login_per_minute: u32,
    pub rate_limit_token_per_second: u32,
    pub rate_limit_api_per_second: u32,
    /// Operator-defined scopes, beside the standard ones (`[[scopes]]` tables).
    pub scopes: Vec<crate::privacy::CustomScope>,
    /// Sensitive actions (password or email change, turning off 2FA, new recovery codes, admin pages)
    /// ask for the password (and second factor) again when the last sign-in is older, seconds.
    pub reauth_max_age: u32,
    /// Administrators must have a second factor to use the admin pages or sign in to apps.
    pub require_2fa_for_admins: bool,
    /// Every user must have a second factor to sign in to apps.
    pub require_2fa_for_all: bool,
    /// Outgoing mail (`[mail]`); without `smtp_url` Sluis sends none.
    pub mail: Mail,
    /// Whether a person signing in through an upstream provider with an identity no
    /// account knows may create a Sluis account.
    pub registration: Registration,
    /// Upstream (social) sign-in providers (`[[upstreams]]` tables), one button each.
    pub upstreams: Vec<UpstreamConfig>,
}

/// Outgoing mail (docs/operate.md). Optional: what needs mail (changing one's email
/// address) is unavailable without it.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mail {
    /// The SMTP relay as a URL: `smtps://user:pass@host` (TLS), `smtp://user:pass@host?tls=required`
    /// (STARTTLS), `smtp://127.0.0.1:25` (plain, for a relay on this machine).
    pub smtp_url: Option<String>,
    /// The sender, a mailbox: `Sluis <no-reply@example.com>`. Required with `smtp_url`.
    pub from: Option<String>,
}

// The URL may hold the relay's password: never print it.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail").field("smtp_url", &self.smtp_url.as_ref().map(|_| "(set)")).field("from", &self.from).finish()
    }
}

/// Whether an unknown upstream identity may create an account.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    Open,
    Closed,
}

/// What an upstream provider speaks.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    /// Any OpenID Connect provider, by `issuer`.
    Oidc,
    /// Google: issuer `https://accounts.google.com`.
    Google,
    /// Microsoft identity platform: issuer from `tenant`, with its per-tenant issuer rule.
    Microsoft,
    /// GitHub (OAuth 2.0 and its user API, not OpenID Connect).
    Github,
}

/// One `[[upstreams]]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// URL-safe slug: `/login/upstream/{id}`, and the login history's record.
    pub id: String,
    /// The button label: "Sign in with {name}".
    pub name: String,
    pub kind: UpstreamKind,
    /// Required for `oidc`; for `google` and `microsoft` it replaces the preset (national
    /// clouds, tests); for `github` the web address (default `https://github.com`; GitHub
    /// Enterprise Server: `https://github.example.com`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// GitHub only: the REST API's base (default `https://api.github.com`; GitHub Enterprise
    /// Server: `https://github.example.com/api/v3`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Microsoft only: `common`, `organizations`, `consumers` or a tenant id (default `common`).
    #[serde(default)]
    pub tenant: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    /// Empty: the kind's default (see [`UpstreamConfig::scopes`]).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The client secret never prints.
impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("tenant", &self.tenant)
            .field("api_url", &self.api_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl UpstreamConfig {
    /// The issuer whose discovery document describes the provider.
    pub fn issuer(&self) -> String {
        match (&self.issuer, self.kind) {
            (Some(issuer), _) => issuer.trim_end_matches('/').to_string(),
            (None, UpstreamKind::Google) => "https://accounts.google.com".into(),
            (None, UpstreamKind::Microsoft) => {
                format!("https://login.microsoftonline.com/{}/v2.0", self.tenant.as_deref().unwrap_or("common"))
            }
            (None, UpstreamKind::Github) => "https://github.com".into(),
            (None, UpstreamKind::Oidc) => String::new(),
        }
    }

    /// GitHub's REST API base, without a trailing slash.
    pub fn api_url(&self) -> String {
        self.api_url.as_deref().unwrap_or("https://api.github.com").trim_end_matches('/').to_string()
    }

    /// The scopes asked for: the configured ones, or the kind's default (GitHub: the profile
    /// and the email addresses, which its API lists only with `user:email`).
    pub fn scopes(&self) -> Vec<String> {
        if !self.scopes.is_empty() {
            return self.scopes.clone();
        }
        let default: &[&str] = match self.kind {
            UpstreamKind::Github => &["read:user", "user:email"],
            _ => &["openid", "email", "profile"],
        };
        default.iter().map(|s| s.to_string()).collect()
    }

    fn validate(&self, at: usize) -> Result<(), ConfigError> {
        let key = |field: &str| format!("key `upstreams[{at}].{field}`");
        let slug = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if self.id.is_empty() || self.id.len() > 40 || !self.id.chars().all(slug) {
            return Err(ConfigError(format!("{}: 1 to 40 characters of a-z, 0-9, - and _", key("id"))));
        }
        if self.name.trim().is_empty() {
            return Err(ConfigError(format!("{}: must not be empty", key("name"))));
        }
        if self.kind == UpstreamKind::Oidc && self.issuer.is_none() {
            return Err(ConfigError(format!("{}: required for kind `oidc`", key("issuer"))));
        }
        if self.tenant.is_some() && (self.kind != UpstreamKind::Microsoft || self.issuer.is_some()) {
            return Err(ConfigError(format!("{}: only for kind `microsoft` without `issuer`", key("tenant"))));
        }
        if let Some(tenant) = &self.tenant
            && (tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
        {
            return Err(ConfigError(format!("{}: `common`, `organizations`, `consumers` or a tenant id", key("tenant"))));
        }
        if self.api_url.is_some() && self.kind != UpstreamKind::Github {
            return Err(ConfigError(format!("{}: only for kind `github`", key("api_url"))));
        }
        for (field, value) in [("issuer", &self.issuer), ("api_url", &self.api_url)] {
            let Some(value) = value else { continue };
            let url = Url::parse(value).map_err(|e| ConfigError(format!("{}: not a URL ({e})", key(field))))?;
            if !secure_or_local(&url) {
                return Err(ConfigError(format!("{}: must be https (http only for localhost)", key(field))));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(ConfigError(format!("{}: must not have a query or fragment", key(field))));
            }
        }
        if self.client_id.is_empty() {
            return Err(ConfigError(format!("{}: must not be empty", key("client_id"))));
        }
        if self.client_secret.is_empty() {
            return Err(ConfigError(format!("{}: must not be empty", key("client_secret"))));
        }
        let scopes = self.scopes();
        if scopes.iter().any(|s| s.is_empty() || s.contains(' ')) || (self.kind != UpstreamKind::Github && !scopes.iter().any(|s| s == "openid")) {
            return Err(ConfigError(format!("{}: a list of scopes that includes `openid` (for `github`: e.g. `read:user`, `user:email`)", key("scopes"))));
        }
        Ok(())
    }
}

/// https, or http to this machine (tests, development).
pub fn secure_or_local(url: &Url) -> bool {
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    url.scheme() == "https" || (url.scheme() == "http" && local)
}

/// Retention limits, in days (docs/privacy.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Sign-in attempts and account events older than this are deleted.
    pub login_days: u32,
    /// IP addresses older than this are cut to their network (IPv4 /24, IPv6 /48).
    pub ip_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { login_days: 90, ip_days: 30 }
    }
}

/// Who may register their own clients (they start unverified either way).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientRegistration {
    /// Any signed-in user.
    Users,
    /// Administrators only.
    Admins,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            issuer: "http://localhost:8080".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            data_dir: PathBuf::from("data"),
            instance_secret: None,
            access_token_ttl: 300,
            id_token_ttl: 3600,
            refresh_token_ttl: 30 * 24 * 3600,
            refresh_grace_seconds: 10,
            session_ttl: 12 * 3600,
            password_hash_workers: 0,
            log_format: LogFormat::Text,
            client_registration: ClientRegistration::Admins,
            login_lock_after: 10,
            login_ip_lock_after: 50,
            login_window_seconds: 900,
            login_lock_seconds: 900,
            retention: Retention::default(),
            trusted_proxies: Vec::new(),
            rate_limit_login_per_minute: 30,
            rate_limit_token_per_second: 100,
            rate_limit_api_per_second: 100,
            scopes: Vec::new(),
            reauth_max_age: 900,
            require_2fa_for_admins: true,
            require_2fa_for_all: false,
            mail: Mail::default(),
            registration: Registration::Closed,
            upstreams: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads `file` (or `sluis.toml` if present), then `SLUIS_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError(format!("file {} not found", path.display())));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("sluis.toml").exists() => figment = figment.merge(Toml::file_exact("sluis.toml")),
            None => {}
        }
        // `__` reaches into a table: SLUIS_RETENTION__LOGIN_DAYS is `retention.login_days`.
        // (Without the split the variable would be the unknown key `retention__login_days`.)
        figment = figment.merge(Env::prefixed("SLUIS_").split("__"));
        let config: Config = figment.extract().map_err(|e| ConfigError(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let issuer = Url::parse(&self.issuer)
            .map_err(|e| ConfigError(format!("key `issuer`: not a URL ({e})")))?;
        let local = matches!(issuer.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if issuer.scheme() != "https" && !(issuer.scheme() == "http" && local) {
            return Err(ConfigError("key `issuer`: must be https (http only for localhost)".into()));
        }
        // OpenID Connect Discovery §2: the issuer has no query or fragment.
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(ConfigError("key `issuer`: must not have a query or fragment".into()));
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError("key `database_url`: must start with sqlite: or postgres://".into()));
        }
        for (key, value) in [
            ("access_token_ttl", self.access_token_ttl),
            ("id_token_ttl", self.id_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("session_ttl", self.session_ttl),
            ("login_window_seconds", self.login_window_seconds),
            ("login_lock_seconds", self.login_lock_seconds),
            ("reauth_max_age", self.reauth_max_age),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("key `{key}`: must be at least 1 second")));
            }
        }
        for (key, value) in [
            ("login_lock_after", self.login_lock_after),
            ("login_ip_lock_after", self.login_ip_lock_after),
            ("retention.login_days", self.retention.login_days),
            ("retention.ip_days", self.retention.ip_days),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("key `{key}`: must be at least 1")));
            }
        }
        crate::privacy::Catalogue::with_custom(&self.scopes).map_err(|e| ConfigError(format!("key `scopes`: {e}")))?;
        if let Some(secret) = &self.instance_secret
            && secret.len() < 32
        {
            return Err(ConfigError("key `instance_secret`: must be at least 32 characters".into()));
        }
        crate::mail::check_config(&self.mail).map_err(ConfigError)?;
        for (at, upstream) in self.upstreams.iter().enumerate() {
            upstream.validate(at)?;
            if self.upstreams[..at].iter().any(|u| u.id == upstream.id) {
                return Err(ConfigError(format!("key `upstreams[{at}].id`: `{}` is used twice", upstream.id)));
            }
        }
        Ok(())
    }

    /// The issuer without a trailing slash, as it appears in `iss`.
    pub fn issuer(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("sluis.db").display()),
        }
    }

    pub fn https(&self) -> bool {
        self.issuer.starts_with("https://")
    }
}

/// Networks in CIDR form, or single addresses (a /32 or /128).
fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    let items = Vec::<String>::deserialize(d)?;
    items
        .iter()
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IP address or network")))
        })
        .collect()
}

/// One line naming the key; figment's own message already does, plus the source.
fn describe(error: figment::Error) -> String {
    let mut out = Vec::new();
    for e in error {
        let key = e.path.join(".");
        let msg = e.kind.to_string();
        if key.is_empty() {
            out.push(msg);
        } else {
            out.push(format!("key `{key}`: {msg}"));
        }
    }
    out.join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error by value
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn issuer_must_be_https_unless_local() {
        let config = Config { issuer: "http://example.com".into(), ..Config::default() };
        assert!(config.validate().unwrap_err().to_string().contains("issuer"));
    }

    #[test]
    fn unknown_key_is_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluis.toml", "listen = \"127.0.0.1:9\"\nbogus = 1\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("bogus"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn client_registration_is_for_admins_unless_opened() {
        assert_eq!(Config::default().client_registration, ClientRegistration::Admins);
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluis.toml", "client_registration = \"users\"\n")?;
            assert_eq!(Config::load(None).unwrap().client_registration, ClientRegistration::Users);
            jail.set_env("SLUIS_CLIENT_REGISTRATION", "everyone");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("client_registration"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn operator_scopes_are_read_and_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sluis.toml",
                "[[scopes]]\nname = \"orders:read\"\ndescription = \"Read your orders\"\n\n[[scopes]]\nname = \"newsletter\"\ndescription = \"Your email for the newsletter\"\nclaims = [\"email\"]\nsensitive = false\n",
            )?;
            let config = Config::load(None).unwrap();
            assert_eq!(config.scopes.len(), 2);
            assert!(config.scopes[0].sensitive, "sensitive unless said otherwise");
            jail.create_file("sluis.toml", "[[scopes]]\nname = \"email\"\ndescription = \"x\"\n")?;
            assert!(Config::load(None).unwrap_err().to_string().contains("scopes"));
            jail.create_file("sluis.toml", "[[scopes]]\nname = \"x\"\ndescription = \"x\"\ncolour = 1\n")?;
            assert!(Config::load(None).unwrap_err().to_string().contains("colour"));
            Ok(())
        });
    }

    #[test]
    fn retention_is_a_table_and_nested_env_keys_use_a_double_underscore() {
        assert_eq!((Config::default().retention.login_days, Config::default().retention.ip_days), (90, 30));
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluis.toml", "[retention]\nlogin_days = 60\n")?;
            let config = Config::load(None).unwrap();
            assert_eq!((config.retention.login_days, config.retention.ip_days), (60, 30), "unset keys keep their default");
            jail.set_env("SLUIS_RETENTION__IP_DAYS", "7");
            let config = Config::load(None).unwrap();
            assert_eq!((config.retention.login_days, config.retention.ip_days), (60, 7));
            // A single underscore names no key, and says so.
            jail.set_env("SLUIS_RETENTION_IP_DAYS", "7");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("retention_ip_days"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluis.toml", "[retention]\nlogin_days = 60\nbogus = 1\n")?;
            assert!(Config::load(None).unwrap_err().to_string().contains("bogus"));
            jail.create_file("sluis.toml", "[retention]\nip_days = 0\n")?;
            assert!(Config::load(None).unwrap_err().to_string().contains("retention.ip_days"));
            jail.create_file("sluis.toml", "login_lock_after = 3\nlogin_window_seconds = 60\n")?;
            let config = Config::load(None).unwrap();
            assert_eq!((config.login_lock_after, config.login_window_seconds, config.login_ip_lock_after), (3, 60, 50));
            Ok(())
        });
    }

    #[test]
    fn mail_is_optional_and_checked_naming_the_key() {
        assert!(Config::default().mail.smtp_url.is_none());
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluis.toml", "[mail]\nsmtp_url = \"smtps://sluis:hunter2@mail.example.com\"\nfrom = \"Sluis <no-reply@example.com>\"\n")?;
            let config = Config::load(None).unwrap();
            assert!(!format!("{config:?}").contains("hunter2"), "the relay password never prints");
            jail.set_env("SLUIS_MAIL__FROM", "not a mailbox");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("mail.from"), "{err}");
            jail.set_env("SLUIS_MAIL__FROM", "no-reply@example.com");
            jail.set_env("SLUIS_MAIL__SMTP_URL", "http://mail.example.com");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("mail.smtp_url"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluis.toml", "[mail]\nsmtp_url = \"smtp://127.0.0.1:25\"\n")?;
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("mail.from"), "{err}");
            jail.create_file("sluis.toml", "[mail]\nfrom = \"no-reply@example.com\"\nsmtp = 1\n")?;
            assert!(Config::load(None).unwrap_err().to_string().contains("smtp"));
            Ok(())
        });
    }

    #[test]
    fn upstreams_are_read_with_presets_and_checked() {
        assert_eq!(Config::default().registration, Registration::Closed);
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sluis.toml",
                "registration = \"open\"\n[[upstreams]]\nid = \"google\"\nname = \"Google\"\nkind = \"google\"\nclient_id = \"a\"\nclient_secret = \"b\"\n\n[[upstreams]]\nid = \"work\"\nname = \"Work\"\nkind = \"microsoft\"\ntenant = \"organizations\"\nclient_id = \"a\"\nclient_secret = \"b\"\nscopes = [\"openid\", \"email\"]\n",
            )?;
            let config = Config::load(None).unwrap();
            assert_eq!(config.registration, Registration::Open);
            assert_eq!(config.upstreams[0].issuer(), "https://accounts.google.com");
            assert_eq!(config.upstreams[0].scopes(), ["openid", "email", "profile"]);
            assert_eq!(config.upstreams[1].issuer(), "https://login.microsoftonline.com/organizations/v2.0");
            assert!(!format!("{config:?}").contains("client_secret: \"b\""), "the secret never prints");
            jail.create_file("sluis.toml", "[[upstreams]]\nid = \"github\"\nname = \"GitHub\"\nkind = \"github\"\nclient_id = \"a\"\nclient_secret = \"b\"\n")?;
            let github = &Config::load(None).unwrap().upstreams[0];
            assert_eq!((github.issuer(), github.api_url()), ("https://github.com".to_string(), "https://api.github.com".to_string()));
            assert_eq!(github.scopes(), ["read:user", "user:email"]);
            let bad = [
                ("id = \"Bad Id\"\nname = \"x\"\nkind = \"google\"", "upstreams[0].id"),
                ("id = \"x\"\nname = \"x\"\nkind = \"oidc\"", "upstreams[0].issuer"),
                ("id = \"x\"\nname = \"x\"\nkind = \"oidc\"\nissuer = \"http://idp.example\"", "upstreams[0].issuer"),
                ("id = \"x\"\nname = \"x\"\nkind = \"google\"\napi_url = \"https://api.example\"", "upstreams[0].api_url"),
                ("id = \"x\"\nname = \"x\"\nkind = \"github\"\napi_url = \"http://api.example\"", "upstreams[0].api_url"),
                ("id = \"x\"\nname = \"x\"\nkind = \"google\"\ntenant = \"common\"", "upstreams[0].tenant"),
                ("id = \"x\"\nname = \"x\"\nkind = \"google\"\nscopes = [\"email\"]", "upstreams[0].scopes"),
                ("id = \"x\"\nname = \"x\"\nkind = \"google\"\ncolour = 1", "colour"),
                ("id = \"x\"\nname = \"x\"\nkind = \"facebook\"", "kind"),
            ];
            for (table, needle) in bad {
                jail.create_file("sluis.toml", &format!("[[upstreams]]\n{table}\nclient_id = \"a\"\nclient_secret = \"b\"\n"))?;
                let err = Config::load(None).unwrap_err().to_string();
                assert!(err.contains(needle), "{needle}: {err}");
            }
            let twice = "[[upstreams]]\nid = \"g\"\nname = \"G\"\nkind = \"google\"\nclient_id = \"a\"\nclient_secret = \"b\"\n";
            jail.create_file("sluis.toml", &format!("{twice}{twice}"))?;
            assert!(Config::load(None).unwrap_err().to_string().contains("used twice"));
            jail.create_file("sluis.toml", "registration = \"maybe\"\n")?;
            assert!(Config::load(None).unwrap_err().to_string().contains("registration"));
            Ok(())
        });
    }

    #[test]
    fn env_overrides_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("sluis.toml", "listen = \"127.0.0.1:9\"\n")?;
            jail.set_env("SLUIS_LISTEN", "127.0.0.1:10");
            assert_eq!(Config::load(None).unwrap().listen.port(), 10);
            jail.set_env("SLUIS_LISTEN", "not-an-address");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("listen"), "{err}");
            Ok(())
        });
    }
}
