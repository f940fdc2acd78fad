//! Shared pieces of Flipbook's benchmarks: a server in a child process (so its memory can be
//! measured alone), rate measurement, and the report that prints each Flipbook figure next to
//! its baseline measured in the same run, with the ratio and the target.

use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A rate, in operations (or events) per second, over `count` operations.
pub async fn rate<F, Fut>(count: u64, run: F) -> anyhow::Result<f64>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    run().await?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// The median of some measurements (the upper one of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What a target asks of a ratio.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    AtLeast(f64),
    Above(f64),
    /// A figure that explains another; no target.
    None,
}

/// Prints one line: the figure, the baseline, their ratio, the target and whether it is met.
pub fn report(what: &str, unit: &str, flipbook: f64, baseline_name: &str, baseline: f64, target: Target) -> bool {
    let ratio = flipbook / baseline;
    let (met, wanted) = match target {
        Target::AtLeast(t) => (ratio >= t, format!(">= {t}")),
        Target::Above(t) => (ratio > t, format!("> {t}")),
        Target::None => (true, "none".to_owned()),
    };
    println!(
        "{what:<44} flipbook {flipbook:>12.0} {unit:<9} {baseline_name} {baseline:>12.0} {unit:<9} ratio {ratio:>6.2} (target {wanted}) {}",
        if met { "met" } else { "MISSED" }
    );
    met
}

/// A `flipbook` server running in a child process: this benchmark binary started again with
/// `serve-child`, so the measured server is the library the `flipbook` binary runs.
#[derive(Debug)]
pub struct ChildServer {
    pub addr: std::net::SocketAddr,
    child: Child,
}

impl ChildServer {
    pub async fn spawn(db: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("serve-child")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the server")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("the server did not start in time")??
            .context("the server exited before listening")?;
        let addr = line.strip_prefix("listening ").context("unexpected first line from the server")?.parse()?;
        Ok(Self { addr, child })
    }

    /// The peak resident memory of the server process so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let pid = self.child.id().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
        let kib: f64 = line.split_whitespace().nth(1).context("VmHWM value")?.parse()?;
        Ok(kib / 1024.0)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        if !status.success() {
            bail!("the server exited with {status}");
        }
        Ok(())
    }
}

/// The child side of [`ChildServer`]: serves the SQLite file until stdin closes.
pub async fn serve_child(db: &Path) -> anyhow::Result<()> {
    let running = flipbook_server::start(flipbook_server::Config::local(db)).await?;
    println!("listening {}", running.addr);
    let mut stdin = tokio::io::stdin();
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut sink).await;
    running.stop().await
}
