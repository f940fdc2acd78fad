//! Where each target's cases run. `local`: the bundled server (`flipbook serve`) started here on
//! the backends `scripts/services.sh` started; `testcontainers` (containers.rs): the backends and
//! the server as containers; `env`: servers the user runs, one URL a target.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::proxy::Proxy;

/// The targets, in the order of the matrix's columns.
pub const TARGETS: [&str; 5] = ["sqlite", "postgres", "redis", "dynamodb", "embedded"];

/// Stops (`false`) or starts (`true`) a target's backend.
pub type Outage = Box<dyn Fn(bool) -> Result<(), String>>;

/// Stops a target's first server, waits the time given, and starts it again on the same address.
pub type Restart = Box<dyn Fn(Duration) -> Result<(), String>>;

/// A running target: what a driver connects to.
pub struct Target {
    pub name: &'static str,
    /// `{"server": url}` or `{"embedded": path}` (each binding gets a file of its own), and the
    /// same for the second server on the same backend (embedded: the same file, a new client).
    pub(crate) connect: [Value; 2],
    /// What runs the target (processes, containers), stopped when the target is dropped.
    pub(crate) _running: Vec<Box<dyn std::any::Any>>,
    /// How the runner takes the backend away and back (network backends).
    pub(crate) backend: Option<Outage>,
    /// How the runner restarts the first server.
    restart: Option<Restart>,
    /// In front of the first server: where answers get lost.
    proxy: Option<Proxy>,
}

impl Target {
    /// A target served by two servers (`connect`: theirs); drivers reach the first through a
    /// proxy of the runner's.
    pub fn served(
        name: &'static str,
        connect: [Value; 2],
        running: Vec<Box<dyn std::any::Any>>,
        backend: Option<Outage>,
        restart: Option<Restart>,
    ) -> anyhow::Result<Self> {
        let proxy = Proxy::start(connect[0]["server"].as_str().context("a server's URL")?)?;
        Ok(Self { name, connect, _running: running, backend, restart, proxy: Some(proxy) })
    }

    /// `restart_server`: the first server stops (gracefully, as a deployment stops it), stays
    /// away for `down`, and starts again on the same address; back once it serves.
    pub fn restart_server(&self, down: Duration) -> Result<(), String> {
        let restart = self
            .restart
            .as_ref()
            .ok_or_else(|| format!("the {} target has no server the runner can restart", self.name))?;
        restart(down)?;
        self.wait_until_serving()
    }

    /// `lose_next_answer`: the next call's answer never reaches the driver (proxy.rs).
    pub fn lose_next_answer(&self, server: usize) -> Result<(), String> {
        match &self.proxy {
            Some(proxy) if server == 0 => {
                proxy.lose_next_answer();
                Ok(())
            }
            _ => Err(format!("the {} target has no proxy in front of server {server}", self.name)),
        }
    }

    /// `answer_was_lost`: whether the proxy lost an answer since `lose_next_answer`.
    pub fn answer_was_lost(&self) -> Result<(), String> {
        match &self.proxy {
            Some(proxy) if proxy.answer_was_lost() => Ok(()),
            Some(_) => Err("no answer was lost: the fault did not happen".to_owned()),
            None => Err(format!("the {} target has no proxy", self.name)),
        }
    }

    /// Where a binding's driver connects: server 0 (through the proxy) or 1.
    pub fn connect(&self, binding: &str, server: usize) -> Value {
        if server.is_multiple_of(2)
            && let Some(proxy) = &self.proxy
        {
            return json!({ "server": proxy.url() });
        }
        let connect = &self.connect[server % 2];
        match connect.get("embedded").and_then(Value::as_str) {
            Some(dir) => json!({ "embedded": Path::new(dir).join(format!("{binding}.db")) }),
            None => connect.clone(),
        }
    }

    /// Stops (`false`) or starts (`true`) the target's backend; `Err` when it has none to stop.
    /// Started, it is back once both servers say both stores are reachable again (each store
    /// is probed on its own, so one can lag the other by a probe).
    pub fn backend(&self, start: bool) -> Result<(), String> {
        let outage = self
            .backend
            .as_ref()
            .ok_or_else(|| format!("the {} target has no backend the runner can stop", self.name))?;
        outage(start)?;
        if start { self.wait_until_serving() } else { Ok(()) }
    }

    fn wait_until_serving(&self) -> Result<(), String> {
        let binary = server_binary().map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        for url in self.connect.iter().filter_map(|c| c["server"].as_str()) {
            for service in ["flipbook.v1.EventStore", "flipbook.v1.SnapshotStore"] {
                let mut health = Command::new(&binary);
                health
                    .args(["health", "--endpoint", url, "--service", service])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                while !health.status().is_ok_and(|s| s.success()) {
                    if Instant::now() > deadline {
                        return Err(format!(
                            "{url} did not answer {service} SERVING within 30 s of the backend's start"
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Ok(())
    }

    /// The embedded target: no server, each binding's own file in `dir`.
    pub fn embedded(dir: &Path) -> Self {
        let connect = json!({ "embedded": dir });
        Self {
            name: "embedded",
            connect: [connect.clone(), connect],
            _running: Vec::new(),
            backend: None,
            restart: None,
            proxy: None,
        }
    }
}

/// The commands `scripts/services.sh` exports to stop and start a backend.
fn backend_commands(name: &str) -> Option<Outage> {
    let var = |name: &str| std::env::var(name).ok();
    let (stop, start) = match name {
        "postgres" => var("FLIPBOOK_PG_CTL").map(|ctl| (format!("{ctl} -m fast stop"), format!("{ctl} start")))?,
        "redis" => (var("FLIPBOOK_REDIS_STOP")?, var("FLIPBOOK_REDIS_START")?),
        "dynamodb" => (var("FLIPBOOK_DYNAMODB_STOP")?, var("FLIPBOOK_DYNAMODB_START")?),
        _ => return None,
    };
    Some(Box::new(move |up: bool| {
        let command = if up { &start } else { &stop };
        let status = Command::new("sh").arg("-c").arg(command).status().map_err(|e| format!("{command}: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("{command}: {status}")) }
    }))
}

pub(crate) fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (scripts/services.sh starts the services and sets it)"))
}

/// A target of the `local` provisioner. `run` names this run (tables, files).
pub fn local(name: &'static str, run: &str, work: &Path) -> anyhow::Result<Target> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    let args: Vec<String> = match name {
        "embedded" => return Ok(Target::embedded(&dir)),
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
    // Two servers on one backend, for the cases that append through one and read through the
    // other (SQLite: two servers on one file).
    let [first, second] = [0, 1].map(|index| Server::start(name, &dir, &args, index, "127.0.0.1:0"));
    let (first, second) = (first?, second?);
    let connect = [&first, &second].map(|server| json!({ "server": format!("http://{}", server.addr) }));
    let first = std::sync::Mutex::new(first);
    let restart: Restart = Box::new(move |down| {
        let mut server = first.lock().unwrap_or_else(|e| e.into_inner());
        server.stop()?;
        std::thread::sleep(down);
        *server = Server::start(name, &dir, &args, 0, &server.addr).map_err(|e| format!("{e:#}"))?;
        Ok(())
    });
    Target::served(name, connect, vec![Box::new(second)], backend_commands(name), Some(restart))
}

/// A target of the `env` provisioner: `FLIPBOOK_CONFORMANCE_<TARGET>_URL`.
pub fn external(name: &'static str) -> anyhow::Result<Target> {
    anyhow::ensure!(name != "embedded", "the env provisioner runs no embedded target");
    let url = env(&format!("FLIPBOOK_CONFORMANCE_{}_URL", name.to_uppercase()))?;
    // A second server on the same backend if the user runs one; else the cases switch to the
    // same one again.
    let second = std::env::var(format!("FLIPBOOK_CONFORMANCE_{}_URL_2", name.to_uppercase())).unwrap_or(url.clone());
    Target::served(name, [json!({ "server": url }), json!({ "server": second })], Vec::new(), None, None)
}

/// `flipbook serve` on a free port (or on the address it had before a restart).
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
    fn start(name: &str, dir: &Path, args: &[String], index: usize, listen: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(server_binary()?);
        command.args(["serve", "--listen", listen, "--metrics-listen", "off", "--log-format", "json"]);
        command.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        // The server sees only what it is given, not the FLIPBOOK_* settings of the caller.
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("FLIPBOOK_")) {
            command.env_remove(key);
        }
        let mut child = command.spawn().with_context(|| format!("starting the {name} server"))?;
        let stderr = child.stderr.take().context("the server's log")?;
        let (send, serving) = channel();
        let log = dir.join(format!("server-{index}.log"));
        std::thread::spawn(move || {
            // Appended to: a restarted server's log follows its first life's.
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(log).ok();
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
                bail!(
                    "the {name} server did not start; its log is in {}",
                    dir.join(format!("server-{index}.log")).display()
                )
            }
        }
    }
}

impl Server {
    /// A graceful stop (SIGTERM, as a deployment stops it); killed after 30 s.
    fn stop(&mut self) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().map_err(|e| format!("kill -TERM {pid}: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {pid}: {sent}"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().map_err(|e| e.to_string())?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!("the server (pid {pid}) did not stop within 30 s of SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
