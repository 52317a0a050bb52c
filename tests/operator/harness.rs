//! Starts the operator as a real process under the RBAC that `config/rbac` ships (a token of
//! the winapp-system/winapp-operator ServiceAccount, not admin) and within the admission fence
//! of `config/admission`, and helpers around it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::OnceCell;

/// Label that sends a test's WindowsApps to a dedicated operator instead of the shared one.
pub const GROUP_LABEL: &str = "winapp.dev/test-group";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub use crate::support::kubectl;

pub fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    kubectl(args, stdin).unwrap_or_else(|e| panic!("{e}"))
}

/// Installs the CRDs, the operator's RBAC and its admission fence (once per test process) and
/// writes a kubeconfig that authenticates as the operator's ServiceAccount.
pub fn setup() -> &'static Path {
    static KUBECONFIG: OnceLock<PathBuf> = OnceLock::new();
    KUBECONFIG.get_or_init(|| {
        let root = repo();
        kubectl_ok(&["apply", "--server-side", "-f", &root.join("crds").to_string_lossy()], None);
        let gmsa_crd = root.join("tests/fixtures/gmsacredentialspecs.windows.k8s.io.yaml");
        kubectl_ok(&["apply", "--server-side", "-f", &gmsa_crd.to_string_lossy()], None);
        kubectl_ok(
            &[
                "wait",
                "--for=condition=Established",
                "crd/windowsapps.winapp.dev",
                "crd/gmsacredentialspecs.windows.k8s.io",
            ],
            None,
        );
        let _ = kubectl(&["create", "namespace", "winapp-system"], None);
        kubectl_ok(&["apply", "--server-side", "-k", &root.join("config/rbac").to_string_lossy()], None);
        // The optional Secret-existence check, so that a missing SMB Secret can be reported.
        let secret_check = root.join("config/components/secret-check/rbac.yaml");
        kubectl_ok(&["apply", "--server-side", "-f", &secret_check.to_string_lossy()], None);
        let dir = root.join("target/test-operator");
        let path = dir.join(format!("kubeconfig-{}", std::process::id()));
        crate::support::write_operator_kubeconfig(&path, "3h");
        // The admission fence of config/default: the operator must work within it.
        crate::support::install_fence(&path);
        path
    })
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// One operator process.
pub struct Operator {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `winapp-operator run` with the operator's own credentials.
    pub fn start(name: &str, lease: &str, selector: &str) -> Operator {
        Operator::start_with(name, lease, selector, setup(), &[])
    }

    /// Starts `winapp-operator run` with a kubeconfig of the caller's and extra arguments.
    pub fn start_with(name: &str, lease: &str, selector: &str, kubeconfig: &Path, extra: &[&str]) -> Operator {
        setup();
        let port = free_port();
        let log = repo().join("target/test-operator").join(format!("{name}-{}-{port}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("create operator log");
        let err = file.try_clone().expect("clone log handle");
        let child = Command::new(env!("CARGO_BIN_EXE_winapp-operator"))
            .args(["run", "--exit-with-parent", "--lease-namespace", "winapp-system", "--lease-name", lease])
            .args(["--selector", selector, "--http-addr", &format!("127.0.0.1:{port}"), "--identity", name])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,winapp_operator=debug")
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("start the operator");
        Operator { child: Some(child), port, log }
    }

    /// The status code and body of an endpoint, or None while it is down.
    pub async fn probe(&self, path: &str) -> Option<(u16, String)> {
        http_get_any(self.port, path).await
    }

    /// Whether this replica leads with synced caches (`/leaderz`).
    pub async fn leading(&self) -> bool {
        self.probe("/leaderz").await.is_some_and(|(code, _)| code == 200)
    }

    /// Waits until this replica leads with synced caches.
    pub async fn wait_leading(&self) {
        for _ in 0..240 {
            if self.leading().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("operator on port {} never led with synced caches; log:\n{}", self.port, self.log_text());
    }

    /// The exit status, once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// The value of a metric (summed over its label sets), or None while the endpoint is down.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let body = http_get(self.port, "/metrics").await?;
        Some(
            body.lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| l.split([' ', '{']).next() == Some(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum(),
        )
    }

    /// The value of a metric for the label set that contains `labels` (such as `kind="ConfigMap"`).
    pub async fn metric_of(&self, name: &str, labels: &str) -> Option<f64> {
        let body = http_get(self.port, "/metrics").await?;
        body.lines()
            .filter(|l| !l.starts_with('#') && l.split([' ', '{']).next() == Some(name) && l.contains(labels))
            .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    }

    pub async fn ready(&self) -> bool {
        http_get(self.port, "/readyz").await.is_some_and(|b| b.trim() == "ok")
    }

    /// Waits until `/readyz` answers ok.
    pub async fn wait_ready(&self) {
        for _ in 0..120 {
            if self.ready().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("operator on port {} never became ready; log:\n{}", self.port, self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the process, as `kill -s` does.
    pub fn signal(&self, signal: &str) {
        let Some(c) = &self.child else { panic!("the operator on port {} is not running", self.port) };
        let status = Command::new("kill").args(["-s", signal, &c.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -s {signal} {} failed", c.id());
    }

    /// SIGKILL: no graceful shutdown, the Lease is not released.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            for _ in 0..100 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tiny HTTP/1.0 GET on loopback, enough for /metrics and /readyz: the body of a 200.
async fn http_get(port: u16, path: &str) -> Option<String> {
    http_get_any(port, path).await.and_then(|(code, body)| (code == 200).then_some(body))
}

/// A tiny HTTP/1.0 GET on loopback: status code and body.
async fn http_get_any(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_owned()))
}

/// A kubeconfig like the operator's (same token and CA) that reaches the API server at
/// `server` instead, for example through a [`Proxy`].
pub fn kubeconfig_via(server: &str, name: &str) -> PathBuf {
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(setup()).expect("read kubeconfig")).expect("kubeconfig JSON");
    let mut k = original.clone();
    k["clusters"][0]["cluster"]["server"] = serde_json::Value::String(server.to_owned());
    let path = repo().join("target/test-operator").join(format!("kubeconfig-{name}-{}", std::process::id()));
    std::fs::write(&path, serde_json::to_string(&k).expect("json")).expect("write kubeconfig");
    path
}

/// The API server's address from the operator's kubeconfig (`host:port`).
pub fn api_server_addr() -> String {
    let k: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(setup()).expect("read kubeconfig")).expect("kubeconfig JSON");
    let server = k["clusters"][0]["cluster"]["server"].as_str().expect("server").to_owned();
    server.trim_start_matches("https://").trim_end_matches('/').to_owned()
}

/// How a [`Proxy`] treats traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// A partition: connections stay open, nothing gets through (calls hang).
    Hang,
    /// Refuse: every connection is closed at once (calls fail fast).
    Reset,
}

/// A TCP proxy on loopback in front of the API server whose traffic a test can cut, to play a
/// network partition between one operator replica and the API server. TLS passes through
/// untouched (the serving certificate names 127.0.0.1).
pub struct Proxy {
    pub port: u16,
    mode: tokio::sync::watch::Sender<Mode>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (mode, rx) = tokio::sync::watch::channel(Mode::Pass);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, rx) = (upstream.clone(), rx.clone());
                tokio::spawn(async move {
                    let passing = *rx.borrow() == Mode::Pass;
                    if !passing {
                        return;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pipe(cr, sw, rx.clone()), pipe(sr, cw, rx));
                });
            }
        });
        Proxy { port, mode }
    }

    pub fn set(&self, mode: Mode) {
        let _ = self.mode.send(mode);
    }

    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

/// Copies one direction until EOF, or until the mode says otherwise (Hang: stop forwarding and
/// hold the connection; Reset: drop it).
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: tokio::sync::watch::Receiver<Mode>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            _ = mode.wait_for(|m| *m != Mode::Pass) => 0,
        };
        let now = *mode.borrow();
        match now {
            Mode::Pass => {}
            Mode::Reset => return,
            Mode::Hang => {
                // Hold both halves, forward nothing, until the test ends.
                let _held = (from, to);
                std::future::pending::<()>().await;
                return;
            }
        }
        if n > 0 && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The operator shared by the tests that need no operator of their own: it reconciles every
/// WindowsApp without the group label. Kept for the life of the test process (it exits with it).
pub async fn shared() -> &'static Operator {
    static SHARED: OnceCell<Operator> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let op = Operator::start("shared", "winapp-test-shared", &format!("!{GROUP_LABEL}"));
            op.wait_ready().await;
            op
        })
        .await
}

/// kstatus (sigs.k8s.io/cli-utils) on a live object, as Flux reads it: InProgress, Current, Failed.
pub fn kstatus<T: serde::Serialize>(obj: &T) -> String {
    static BIN: OnceLock<String> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let out = Command::new(repo().join("hack/kstatus/build.sh")).output().expect("run hack/kstatus/build.sh");
        assert!(out.status.success(), "kstatus build failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().last().expect("binary path").trim().to_owned()
    });
    let json = serde_json::to_string(obj).expect("json");
    let out = run_with_stdin(Command::new(bin), &json);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("kstatus said {out:?}: {e}"));
    v["status"].as_str().unwrap_or_default().to_owned()
}

/// The Argo CD health check of config/argocd on a live object: Healthy, Progressing, Degraded, Suspended.
pub fn argocd_health<T: serde::Serialize>(obj: &T) -> String {
    // argocd-health runs the script in gopher-lua as Argo CD does (hack/argocd); scripts/test sets
    // ARGOCD_HEALTH, otherwise hack/argocd/build.sh builds or finds it.
    static BIN: OnceLock<String> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        std::env::var("ARGOCD_HEALTH").unwrap_or_else(|_| {
            let out = Command::new(repo().join("hack/argocd/build.sh")).output().expect("run hack/argocd/build.sh");
            assert!(out.status.success(), "argocd-health build failed: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).lines().last().expect("binary path").trim().to_owned()
        })
    });
    let mut cmd = Command::new(bin);
    cmd.arg("run").arg(repo().join("config/argocd/resource_customizations/winapp.dev/WindowsApp/health.lua"));
    let out = run_with_stdin(cmd, &serde_json::to_string(obj).expect("json"));
    out.split('\t').next().unwrap_or_default().trim().to_owned()
}

fn run_with_stdin(mut cmd: Command, input: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (the helper binaries are built by scripts/test)"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
