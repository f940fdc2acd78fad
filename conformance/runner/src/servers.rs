//! Where each target's cases run. `local`: the bundled server (`flipbook serve`) started here on
//! the backends `scripts/services.sh` started; `env`: servers the user runs, one URL a target.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The targets, in the order of the matrix's columns.
pub const TARGETS: [&str; 5] = ["sqlite", "postgres", "redis", "dynamodb", "embedded"];

/// A running target: what a driver connects to.
pub struct Target {
    pub name: &'static str,
    /// `{"server": url}` or `{"embedded": path}` (each binding gets a file of its own).
    connect: Value,
    _server: Option<Server>,
}

impl Target {
    pub fn connect(&self, binding: &str) -> Value {
        match self.connect.get("embedded").and_then(Value::as_str) {
            Some(dir) => json!({ "embedded": Path::new(dir).join(format!("{binding}.db")) }),
            None => self.connect.clone(),
        }
    }
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (scripts/services.sh starts the services and sets it)"))
}

/// A target of the `local` provisioner. `run` names this run (tables, files).
pub fn local(name: &'static str, run: &str, work: &Path) -> anyhow::Result<Target> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    let args: Vec<String> = match name {
        "embedded" => return Ok(Target { name, connect: json!({ "embedded": dir }), _server: None }),
        "sqlite" => vec!["--sqlite-path".into(), dir.join("flipbook.db").display().to_string()],
        "postgres" => {
            let url = env("FLIPBOOK_TEST_POSTGRES_URL")?;
            ["--event-store", "postgres", "--snapshot-store", "postgres", "--postgres-url", &url]
                .map(String::from)
                .into()
        }
        "redis" => {
            let url = env("FLIPBOOK_TEST_REDIS_URL")?;
            ["--event-store", "redis", "--snapshot-store", "redis", "--redis-url", &url].map(String::from).into()
        }
        "dynamodb" => {
            let url = env("FLIPBOOK_TEST_DYNAMODB_URL")?;
            let table = format!("conformance-{run}");
            let args = ["--event-store", "dynamodb", "--snapshot-store", "dynamodb", "--dynamodb-endpoint", &url];
            let mut args: Vec<String> = args.map(String::from).into();
            args.extend(["--dynamodb-table".into(), table, "--dynamodb-region".into(), "us-east-1".into()]);
            args
        }
        other => bail!("no target {other}"),
    };
    let server = Server::start(name, &dir, &args)?;
    let url = format!("http://{}", server.addr);
    Ok(Target { name, connect: json!({ "server": url }), _server: Some(server) })
}

/// A target of the `env` provisioner: `FLIPBOOK_CONFORMANCE_<TARGET>_URL`.
pub fn external(name: &'static str) -> anyhow::Result<Target> {
    anyhow::ensure!(name != "embedded", "the env provisioner runs no embedded target");
    let url = env(&format!("FLIPBOOK_CONFORMANCE_{}_URL", name.to_uppercase()))?;
    Ok(Target { name, connect: json!({ "server": url }), _server: None })
}

/// `flipbook serve` on a free port.
struct Server {
    child: Child,
    addr: String,
}

/// The server binary: `FLIPBOOK_BIN`, else `flipbook` beside this runner (one target dir).
fn server_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("FLIPBOOK_BIN") {
        return Ok(PathBuf::from(path));
    }
    let beside = std::env::current_exe()?.with_file_name("flipbook");
    anyhow::ensure!(beside.is_file(), "no server binary at {} (cargo build -p flipbook)", beside.display());
    Ok(beside)
}

impl Server {
    fn start(name: &str, dir: &Path, args: &[String]) -> anyhow::Result<Self> {
        let mut command = Command::new(server_binary()?);
        command.args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off", "--log-format", "json"]);
        command.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        // The server sees only what it is given, not the FLIPBOOK_* settings of the caller.
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("FLIPBOOK_")) {
            command.env_remove(key);
        }
        let mut child = command.spawn().with_context(|| format!("starting the {name} server"))?;
        let stderr = child.stderr.take().context("the server's log")?;
        let (send, serving) = channel();
        let log = dir.join("server.log");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(log).ok();
            let mut send = Some(send);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(file) = file.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(file, "{line}");
                }
                let record: Value = serde_json::from_str(&line).unwrap_or_default();
                if record["message"] == "flipbook serving"
                    && let Some(send) = send.take()
                {
                    let _ = send.send(record["addr"].as_str().unwrap_or_default().to_owned());
                }
            }
        });
        match serving.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(Self { child, addr }),
            Err(_) => {
                let _ = child.kill();
                bail!("the {name} server did not start; its log is in {}", dir.join("server.log").display())
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
