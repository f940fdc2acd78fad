//! A TCP proxy the runner puts between a driver and a target's first server, to lose an answer
//! the way a failing network does: after `lose_next_answer`, the next request goes through,
//! what the server sends back is dropped, and a moment later (time for the server to finish the
//! call) every connection through the proxy is cut. The driver sees the call fail; the server
//! did the work.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Context;

/// How long the server has to finish the call whose answer is lost before the cut.
const GRACE: Duration = Duration::from_millis(300);

#[derive(Default)]
struct Shared {
    /// Answers are dropped from the next request until the cut.
    armed: AtomicBool,
    /// A cut is scheduled.
    cutting: AtomicBool,
    /// Both ends of every connection, to cut them.
    streams: Mutex<Vec<TcpStream>>,
    /// Answers lost since it was last asked.
    lost: AtomicBool,
}

impl Shared {
    fn cut(&self) {
        let streams = std::mem::take(&mut *self.streams.lock().unwrap_or_else(|e| e.into_inner()));
        for stream in streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.lost.store(true, Ordering::SeqCst);
        self.armed.store(false, Ordering::SeqCst);
        self.cutting.store(false, Ordering::SeqCst);
    }
}

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy to `url` (`http://host:port`), listening on a free local port.
    pub fn start(url: &str) -> anyhow::Result<Self> {
        let authority = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
        let upstream = authority
            .to_socket_addrs()
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("no address for {authority}"))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                // A server that refuses is a refused connection for the driver too.
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                // Each write as it comes: Nagle's wait on gRPC's small frames cost 40 ms a call.
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let ends = [&client, &server].map(|s| s.try_clone());
                let [Ok(client_end), Ok(server_end)] = ends else { continue };
                accepting.streams.lock().unwrap_or_else(|e| e.into_inner()).extend([client_end, server_end]);
                let (to_server, from_server) = (Arc::clone(&accepting), Arc::clone(&accepting));
                let (client_reader, server_writer) = (client.try_clone(), server.try_clone());
                let (Ok(client_reader), Ok(server_writer)) = (client_reader, server_writer) else { continue };
                thread::spawn(move || pump(client_reader, server_writer, &to_server, Direction::Request));
                thread::spawn(move || pump(server, client, &from_server, Direction::Answer));
            }
        });
        Ok(Self { addr, shared })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next call's answer is lost and its connection cut.
    pub fn lose_next_answer(&self) {
        self.shared.lost.store(false, Ordering::SeqCst);
        self.shared.armed.store(true, Ordering::SeqCst);
    }

    /// Whether an answer was lost since `lose_next_answer` (a case checks the fault happened).
    pub fn answer_was_lost(&self) -> bool {
        self.shared.lost.load(Ordering::SeqCst)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Request,
    Answer,
}

fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Arc<Shared>, direction: Direction) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let armed = shared.armed.load(Ordering::SeqCst);
        if direction == Direction::Answer && armed {
            continue; // lost
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
        if direction == Direction::Request && armed && !shared.cutting.swap(true, Ordering::SeqCst) {
            let shared = Arc::clone(shared);
            thread::spawn(move || {
                thread::sleep(GRACE);
                shared.cut();
            });
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
