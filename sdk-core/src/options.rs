//! How a client connects, retries, snapshots and caches. Every setting has a default that suits
//! most applications; bindings expose the same names.

use std::time::Duration;

/// Where and how to reach a server.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `http://host:port`, `https://host:port` (TLS), or `host:port`.
    pub endpoint: String,
    /// Sent as `authorization: Bearer <token>` on every call.
    pub token: Option<String>,
    /// For an `https://` endpoint: the PEM certificate(s) of the CA that signed the server's
    /// certificate. `None`: the public web CAs (webpki roots).
    pub ca_certificate: Option<Vec<u8>>,
    /// For an `https://` endpoint: the name the server's certificate must carry, when it is
    /// not the endpoint's host.
    pub tls_domain: Option<String>,
    pub connect_timeout: Duration,
    /// The most one call may take to answer (a stream: to start answering).
    pub request_timeout: Duration,
    /// How often an idle connection is pinged, so a dead peer is noticed.
    pub keep_alive_interval: Duration,
}

impl ConnectOptions {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            token: None,
            ca_certificate: None,
            tls_domain: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(30),
        }
    }
}

/// How a command retries after a version conflict, and how an append whose answer was lost is
/// re-sent. Delays grow exponentially from `first_delay` up to `max_delay`, with full jitter so
/// contending writers spread out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Decide-and-append rounds before a command gives up with the conflict.
    pub max_tries: u32,
    /// Times one append is re-sent, with the same event ids, when the server could not be
    /// reached or the answer was lost.
    pub max_resends: u32,
    /// How long a subscription keeps resuming while every attempt fails (a server restarting,
    /// a deployment rolling) before the error reaches the subscriber.
    pub resume_for: Duration,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_tries: 10,
            max_resends: 5,
            resume_for: Duration::from_secs(30),
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first), with full jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.first_delay.saturating_mul(1u32 << retry.saturating_sub(1).min(20)).min(self.max_delay);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// When a command or a load writes a snapshot to the snapshot store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Write one when at least this many events were folded since the newest snapshot known.
    /// `None`: never.
    pub every: Option<u64>,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self { every: Some(100) }
    }
}

/// The per-client cache of reduced states, bounded both ways.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheOptions {
    /// At most this many states; 0 turns the cache off.
    pub max_entries: usize,
    /// At most this many bytes of encoded states.
    pub max_bytes: u64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self { max_entries: 10_000, max_bytes: 64 * 1024 * 1024 }
    }
}

/// Everything about a client but where it connects.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    pub retry: RetryPolicy,
    pub snapshots: SnapshotPolicy,
    pub cache: CacheOptions,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_ceiling_and_stay_under_it() {
        let policy = RetryPolicy::default();
        for retry in 1..40 {
            let ceiling = (policy.first_delay * 2u32.pow((retry - 1).min(20))).min(policy.max_delay);
            for _ in 0..50 {
                assert!(policy.delay(retry) <= ceiling);
            }
        }
        let late: Vec<Duration> = (0..200).map(|_| policy.delay(30)).collect();
        assert!(late.iter().any(|d| *d > policy.max_delay / 2), "jitter spans the range");
    }
}
