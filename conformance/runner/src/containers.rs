//! The `testcontainers` provisioner: each target's backend and its two servers as containers,
//! from the images in `docker/` (scripts/docker.sh builds them on machines without a registry;
//! nothing is pulled when the tags exist). The servers reach the backend through the host
//! (`host.docker.internal`, the host gateway) on a port fixed for the run, so a backend that is
//! stopped and started again is where the servers left it.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use testcontainers::core::logs::LogFrame;
use testcontainers::core::{Host, IntoContainerPort, Mount, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use crate::servers::{Outage, Restart, Target};

/// The server's image: `FLIPBOOK_CONFORMANCE_SERVER_IMAGE`, else the one scripts/docker.sh tags.
fn server_image() -> (String, String) {
    let image = std::env::var("FLIPBOOK_CONFORMANCE_SERVER_IMAGE").unwrap_or_else(|_| "flipbook/server:test".into());
    match image.rsplit_once(':') {
        Some((name, tag)) => (name.into(), tag.into()),
        None => (image, "latest".into()),
    }
}

/// A backend's image, the port it serves and the line it logs once ready.
struct Backend {
    image: &'static str,
    port: u16,
    ready: WaitFor,
    /// moto keeps its tables in memory: it is paused, not stopped (as scripts/services.sh does).
    pause: bool,
}

fn backend(name: &str) -> Option<Backend> {
    Some(match name {
        "postgres" => Backend {
            image: "flipbook-test/postgres",
            port: 5432,
            ready: WaitFor::message_on_stderr("database system is ready to accept connections"),
            pause: false,
        },
        "redis" => Backend {
            image: "flipbook-test/redis",
            port: 6379,
            ready: WaitFor::message_on_stdout("Ready to accept connections"),
            pause: false,
        },
        "dynamodb" => Backend {
            image: "flipbook-test/dynamodb",
            port: 8000,
            ready: WaitFor::message_on_stderr("Running on"),
            pause: true,
        },
        _ => return None,
    })
}

/// A port free on this host now, for a backend to publish for the whole run.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("0.0.0.0:0")?.local_addr()?.port())
}

fn docker_error(what: &str, error: testcontainers::TestcontainersError) -> anyhow::Error {
    anyhow::anyhow!(
        "the testcontainers provisioner could not start {what}: {error} (it needs a running Docker engine and the images of docker/, which scripts/docker.sh builds)"
    )
}

/// A target of the `testcontainers` provisioner (embedded: no container, as `local`).
pub fn start(name: &'static str, run: &str, work: &Path) -> anyhow::Result<Target> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    if name == "embedded" {
        return Ok(Target::embedded(&dir));
    }
    let mut args: Vec<String> = vec!["serve".into(), "--metrics-listen".into(), "off".into()];
    let mut backend_container = None;
    let mut data = None;
    if let Some(backend) = backend(name) {
        let port = free_port()?;
        let container = GenericImage::new(backend.image, "test")
            .with_wait_for(backend.ready)
            .with_mapped_port(port, backend.port.tcp())
            .with_startup_timeout(Duration::from_secs(60))
            .start()
            .map_err(|e| docker_error(backend.image, e))?;
        let at = format!("host.docker.internal:{port}");
        let settings = match name {
            "postgres" => vec!["--postgres-url".into(), format!("postgres://postgres@{at}/postgres")],
            "redis" => vec!["--redis-url".into(), format!("redis://{at}/")],
            _ => vec![
                "--dynamodb-endpoint".into(),
                format!("http://{at}"),
                "--dynamodb-table".into(),
                format!("conformance-{run}"),
                "--dynamodb-region".into(),
                "us-east-1".into(),
            ],
        };
        args.extend(["--event-store".into(), name.into(), "--snapshot-store".into(), name.into()]);
        args.extend(settings);
        backend_container = Some((container, backend.pause));
    } else {
        // SQLite: both servers on one file, in a directory of this host the containers share.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        data = Some(dir.display().to_string());
    }
    let (image, tag) = server_image();
    let mut servers = Vec::new();
    // The first server's port is fixed for the run: `restart_server` starts it again there.
    let first_port = free_port()?;
    for index in 0..2 {
        let mut request = GenericImage::new(&image, &tag)
            .with_exposed_port(7420.tcp())
            .with_wait_for(WaitFor::message_on_stderr("flipbook serving"))
            .with_cmd(args.clone())
            .with_host("host.docker.internal", Host::HostGateway)
            .with_env_var("AWS_ACCESS_KEY_ID", "test")
            .with_env_var("AWS_SECRET_ACCESS_KEY", "test")
            .with_startup_timeout(Duration::from_secs(60));
        if let Some(data) = &data {
            request = request.with_mount(Mount::bind_mount(data.clone(), "/data"));
        }
        if index == 0 {
            request = request.with_mapped_port(first_port, 7420.tcp());
        }
        // Its log beside the local provisioner's, kept when the run fails.
        let log = std::sync::Mutex::new(std::fs::File::create(dir.join(format!("server-{index}.log")))?);
        request = request.with_log_consumer(move |frame: &LogFrame| {
            use std::io::Write;
            let (LogFrame::StdOut(bytes) | LogFrame::StdErr(bytes)) = frame;
            if let Ok(mut file) = log.lock() {
                let _ = file.write_all(bytes);
            }
        });
        let server = request.start().map_err(|e| docker_error(&format!("the {name} server ({index})"), e))?;
        servers.push(server);
    }
    let url = |server: &Container<GenericImage>| -> anyhow::Result<_> {
        let port = server.get_host_port_ipv4(7420.tcp()).context("the server's port")?;
        Ok(json!({ "server": format!("http://127.0.0.1:{port}") }))
    };
    let connect = [url(&servers[0])?, url(&servers[1])?];
    let second = servers.pop().context("the second server")?;
    let first = servers.pop().context("the first server")?;
    let backend = backend_container.map(|(container, pause)| outage(container, pause));
    Target::served(name, connect, vec![Box::new(second)], backend, Some(restart(first)))
}

/// `docker stop` (SIGTERM, then the engine's grace period) and `docker start` of a server.
fn restart(server: Container<GenericImage>) -> Restart {
    Box::new(move |down| {
        server.stop().map_err(|e| format!("stopping the server's container: {e}"))?;
        std::thread::sleep(down);
        server.start().map_err(|e| format!("starting the server's container: {e}"))
    })
}

/// Stop and start (or, for an in-memory backend, pause and resume) the backend's container.
fn outage(container: Container<GenericImage>, pause: bool) -> Outage {
    Box::new(move |up: bool| {
        let done = match (pause, up) {
            (false, false) => container.stop(),
            (false, true) => container.start(),
            (true, false) => finish(container.pause()),
            (true, true) => finish(container.unpause()),
        };
        done.map_err(|e| format!("the backend's container: {e}"))
    })
}

/// testcontainers 0.27's blocking `pause`/`unpause` are `async fn`s that block inside: the
/// future is ready on its first poll.
fn finish<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => unreachable!("a blocking call that is pending"),
    }
}
