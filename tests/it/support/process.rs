//! The `arbiter` binary as users run it: a command, and `arbiter serve` as a child process
//! with its JSON log lines collected.

use std::process::Command;

pub fn arbiter_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arbiter"))
}

/// `arbiter serve` as a child process, with its stderr (JSON log lines) collected.
/// `arbiter serve` as a child process with JSON logs, started in `dir` with a config file.
pub struct ServeProcess {
    pub child: std::process::Child,
    /// The gRPC URL.
    pub addr: String,
    /// The HTTP base URL.
    pub http: String,
    lines: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl ServeProcess {
    /// Starts it and waits until it is ready.
    pub fn start(dir: &std::path::Path, config: &str) -> Self {
        Self::start_at(dir, config, "127.0.0.1:0")
    }

    /// Starts it with `--http-addr http_addr` and waits until it is ready.
    pub fn start_at(dir: &std::path::Path, config: &str, http_addr: &str) -> Self {
        Self::start_with_env(dir, config, http_addr, &[])
    }

    /// Starts it with `--http-addr http_addr` and these environment variables, and waits
    /// until it is ready.
    pub fn start_with_env(
        dir: &std::path::Path,
        config: &str,
        http_addr: &str,
        env: &[(&str, &str)],
    ) -> Self {
        use std::io::BufRead;
        let config_path = dir.join("arbiter.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = arbiter_bin()
            .args([
                "serve",
                "--log-format",
                "json",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                http_addr,
                "--config",
            ])
            .arg(&config_path)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    panic!("log line is not JSON: {line}");
                };
                let ready = (v["message"] == "arbiter ready").then(|| {
                    (
                        v["grpc_addr"].as_str().unwrap_or_default().to_string(),
                        v["http_addr"].as_str().unwrap_or_default().to_string(),
                    )
                });
                // Kept before `start` returns: a caller reads the ready line from `lines()`.
                sink.lock().unwrap().push(v);
                if let Some(addrs) = ready {
                    let _ = ready_tx.send(addrs);
                }
            }
        });
        let (addr, http) = ready_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("server became ready");
        Self {
            child,
            addr: format!("http://{addr}"),
            http: format!("http://{http}"),
            lines,
        }
    }

    /// A `PolicyAdmin` client (anonymous: the listener is on loopback).
    pub async fn admin(
        &self,
    ) -> arbiter::grpc::proto::policy_admin_client::PolicyAdminClient<tonic::transport::Channel>
    {
        arbiter::grpc::proto::policy_admin_client::PolicyAdminClient::connect(self.addr.clone())
            .await
            .unwrap()
    }

    /// Its `PolicyAdmin.Status`.
    pub async fn status(&self) -> arbiter::grpc::proto::StatusResponse {
        self.admin()
            .await
            .status(arbiter::grpc::proto::StatusRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    /// Every log line so far.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command of the binary that prints JSON, insists it succeeded, and parses its
/// standard output.
pub fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Insists a command of the binary (or another tool) succeeded, showing its stderr if not.
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `arbiter token dev --client CLIENT --scope SCOPE` in `dir` (a checkout whose `data/`
/// holds the development key the server trusts): the token.
pub fn dev_token(dir: &std::path::Path, client: &str, scope: &str) -> String {
    let out = arbiter_bin()
        .args(["token", "dev", "--client", client, "--scope", scope])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_success(&out);
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `arbiter clients create --json` in `dir` (a checkout whose `data/` the server uses):
/// the new client's id and secret.
pub fn create_client(dir: &std::path::Path, name: &str, scopes: &str) -> (String, String) {
    let created = run_json(
        arbiter_bin()
            .args([
                "clients", "create", "--name", name, "--scopes", scopes, "--json",
            ])
            .current_dir(dir),
    );
    let text = |k: &str| created[k].as_str().unwrap().to_owned();
    (text("client_id"), text("client_secret"))
}

/// An outside tool the tests run: the path in `env_var`, else `name` on the `PATH`; a clear
/// panic saying how to get it otherwise.
pub fn tool(env_var: &str, name: &str, install: &str) -> std::path::PathBuf {
    if let Ok(p) = std::env::var(env_var) {
        return std::path::PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "{name} is needed for this test: `{install}` (as .ci/run does), or set {env_var}"
            )
        })
}

/// The cvc5 1.3 executable the solver-backed commands need (`CVC5`, else `cvc5` on the
/// `PATH`); a test that needs it fails, never skips, without one.
pub fn cvc5() -> std::path::PathBuf {
    tool(
        "CVC5",
        "cvc5",
        "python3 -m pip install cvc5==1.3.2, then CVC5=$PWD/tools/cvc5",
    )
}

/// `arbiter serve --check-config` on `config` written to `dir/arbiter.toml`: its exit code
/// and what it printed.
pub fn check_config(dir: &std::path::Path, config: &str) -> (Option<i32>, String) {
    std::fs::write(dir.join("arbiter.toml"), config).unwrap();
    let out = arbiter_bin()
        .args(["serve", "--check-config", "--config", "arbiter.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
