//! The real `sluis` binary: an instance directory (data dir, database, CLI environment) and,
//! when started, a `sluis serve` child process on a free 127.0.0.1 port that is killed when
//! the `ServedSluis` is dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, PASSWORD, POST_LOGOUT_URI, REDIRECT_URI};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluis");

/// How long `sluis serve` may take to answer /healthz.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for a single CLI command.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

pub struct ServedSluis {
    pub port: u16,
    /// `http://127.0.0.1:<port>`, also the issuer.
    pub base: String,
    pub database_url: String,
    pub dir: tempfile::TempDir,
    server: Option<Child>,
    /// How many times a server was started (each gets its own log file).
    starts: u32,
}

impl ServedSluis {
    /// An instance with its own directory and database, no server running yet.
    pub async fn prepare() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = support::database_url(dir.path()).await;
        let port = support::free_port();
        Self { port, base: format!("http://127.0.0.1:{port}"), database_url, dir, server: None, starts: 0 }
    }

    /// An instance with `sluis serve` running and ready. The port is picked before the
    /// server binds it, so if another process took it meanwhile, a new one is tried.
    pub async fn start() -> Self {
        let mut sluis = Self::prepare().await;
        for _ in 0..3 {
            match sluis.try_serve().await {
                Ok(()) => return sluis,
                Err(log) if log.contains("cannot listen") => {
                    sluis.port = support::free_port();
                    sluis.base = format!("http://127.0.0.1:{}", sluis.port);
                }
                Err(log) => panic!("{log}"),
            }
        }
        panic!("sluis serve found no free port in 3 attempts:\n{}", sluis.server_log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The binary with this instance's environment, run inside its directory (so no
    /// `sluis.toml` of the caller is picked up). `SLUIS_*` of the caller are removed.
    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SLUIS_") {
                command.env_remove(key);
            }
        }
        command
            .current_dir(self.dir.path())
            .env("SLUIS_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("SLUIS_ISSUER", &self.base)
            .env("SLUIS_DATA_DIR", self.data_dir())
            .env("SLUIS_DATABASE_URL", &self.database_url)
            .env("SLUIS_PASSWORD_HASH_WORKERS", "2")
            .env("RUST_LOG", "info,sqlx=warn");
        command
    }

    /// Runs `sluis ARGS` (stdin from `input`), bounded by a timeout.
    pub fn run(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut command = self.command();
        command.args(args);
        run_bounded(&mut command, input, CLI_TIMEOUT)
    }

    /// Runs `sluis ARGS` and asserts it succeeded.
    pub fn run_ok(&self, args: &[&str], input: Option<&str>) -> Output {
        let output = self.run(args, input);
        assert!(output.status.success(), "sluis {} failed ({}): {}", args.join(" "), output.status, stderr(&output));
        output
    }

    /// `sluis user create` with the support password; returns the printed JSON.
    pub fn create_user(&self, email: &str, name: &str) -> serde_json::Value {
        let output = self.run_ok(&["user", "create", "--email", email, "--name", name, "--password-stdin"], Some(&format!("{PASSWORD}\n")));
        single_json(&output)
    }

    /// `sluis client create` with the support redirect URIs plus `extra` arguments; returns
    /// the printed JSON (with `client_id` and, unless `--public`, `client_secret`).
    pub fn create_client(&self, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "client",
            "create",
            "--name",
            "Example Shop",
            "--redirect-uri",
            REDIRECT_URI,
            "--post-logout-redirect-uri",
            POST_LOGOUT_URI,
        ];
        args.extend_from_slice(extra);
        let output = self.run_ok(&args, None);
        single_json(&output)
    }

    /// Starts `sluis serve` and waits (bounded) until /healthz answers.
    pub async fn serve(&mut self) {
        if let Err(log) = self.try_serve().await {
            panic!("{log}");
        }
    }

    async fn try_serve(&mut self) -> Result<(), String> {
        assert!(self.server.is_none(), "server already running");
        self.starts += 1;
        let log = self.log_path();
        let file = std::fs::File::create(&log).unwrap();
        let child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn sluis serve");
        self.server = Some(child);
        self.wait_ready().await
    }

    /// Stops the server (if running) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The log (stdout and stderr) of the most recent server start.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("serve-{}.log", self.starts))
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.server.as_mut().unwrap().try_wait().unwrap() {
                self.server = None;
                return Err(format!("sluis serve exited with {status} before it was ready:\n{}", self.server_log()));
            }
            if let Ok(response) = http.get(self.url("/healthz")).send().await
                && response.status() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!("sluis serve not ready after {READY_TIMEOUT:?}:\n{}", self.server_log()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The served JWKS, parsed.
    pub async fn jwks(&self) -> serde_json::Value {
        let response = reqwest::get(self.url("/jwks")).await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

impl Drop for ServedSluis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `command` with stdout and stderr captured (through files, so a chatty child cannot
/// block on a full pipe), killing it if it runs longer than `timeout`.
pub fn run_bounded(command: &mut Command, input: Option<&str>, timeout: Duration) -> Output {
    use std::io::{Read, Seek, Write};
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    command
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        // The child may exit before reading; that is its answer, not ours to fail on.
        let _ = stdin.write_all(input.as_bytes());
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut text = String::new();
            err.seek(std::io::SeekFrom::Start(0)).unwrap();
            err.read_to_string(&mut text).unwrap();
            panic!("{command:?} still running after {timeout:?}; stderr: {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    out.seek(std::io::SeekFrom::Start(0)).unwrap();
    out.read_to_end(&mut stdout).unwrap();
    err.seek(std::io::SeekFrom::Start(0)).unwrap();
    err.read_to_end(&mut stderr).unwrap();
    Output { status, stdout, stderr }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stdout must be exactly one JSON object on one line.
pub fn single_json(output: &Output) -> serde_json::Value {
    let text = stdout(output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line of JSON on stdout, got: {text:?}");
    let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text:?}"));
    assert!(value.is_object(), "stdout is not a JSON object: {text:?}");
    value
}

/// The directory of the relying-party scripts.
pub fn rp_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rp"))
}
