//! A binding's driver: a child process answering one JSON line for each one it is sent.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

/// How long one step may take before the driver counts as hung.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Which of the target's two servers it is connected to.
    pub server: usize,
}

impl Driver {
    /// Starts `command` and connects it to `target` (`{"server": url}` or `{"embedded": path}`).
    pub fn start(mut command: Command, target: &Value) -> anyhow::Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the driver {command:?}"))?;
        let stdin = child.stdin.take().context("the driver's stdin")?;
        let stdout = child.stdout.take().context("the driver's stdout")?;
        let (send, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut driver = Self { child, stdin, lines, server: 0 };
        let connected = driver.call("connect", target).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(connected.get("ok").is_some(), "the driver did not connect to {target}: {connected}");
        Ok(driver)
    }

    /// Sends one request; answers the driver's reply, or why there is none.
    pub fn call(&mut self, op: &str, args: &Value) -> Result<Value, String> {
        let request = json!({ "op": op, "args": args });
        writeln!(self.stdin, "{request}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("the driver is gone: {e}"))?;
        match self.lines.recv_timeout(STEP_TIMEOUT) {
            Ok(line) => serde_json::from_str(&line).map_err(|e| format!("the driver answered {line:?}: {e}")),
            Err(RecvTimeoutError::Timeout) => Err(format!("no answer within {STEP_TIMEOUT:?}")),
            Err(RecvTimeoutError::Disconnected) => Err("the driver exited".to_owned()),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
