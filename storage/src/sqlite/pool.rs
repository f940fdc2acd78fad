//! Connections to the file, used from blocking threads: SQLite's API is synchronous, and a
//! connection run inline on a blocking thread costs nothing per row (an async driver hands
//! every row across threads; for page reads that cost about three times what SQLite does).

use std::sync::{Arc, Mutex};

use flipbook_model::{Error, Result};
use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::SqliteConfig;

/// At most `size` connections in use at once, kept open between uses.
#[derive(Debug)]
pub(super) struct Connections {
    config: SqliteConfig,
    read_only: bool,
    size: u32,
    permits: Semaphore,
    idle: Mutex<Vec<Connection>>,
}

impl Connections {
    pub(super) fn new(config: &SqliteConfig, size: u32, read_only: bool) -> Arc<Self> {
        let size = size.max(1);
        Arc::new(Self {
            config: config.clone(),
            read_only,
            size,
            permits: Semaphore::new(size as usize),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Waits for the calls running now, then closes every connection; calls after it fail.
    pub(super) async fn close(self: &Arc<Self>) {
        if let Ok(every) = self.permits.acquire_many(self.size).await {
            every.forget();
        }
        self.permits.close();
        let pool = Arc::clone(self);
        // Closing the file's last connection checkpoints the WAL: blocking work.
        let closing = tokio::task::spawn_blocking(move || {
            if let Ok(mut idle) = pool.idle.lock() {
                idle.clear();
            }
        });
        let _ = closing.await;
    }

    /// Runs `work` on a connection of the pool, in a blocking thread.
    pub(super) async fn run<T, F>(self: &Arc<Self>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let _permit = self.permits.acquire().await.map_err(|_| Error::Unavailable("the store is closed".to_owned()))?;
        let pool = Arc::clone(self);
        let done = tokio::task::spawn_blocking(move || {
            let connection = match pool.idle.lock().map_err(|_| poisoned())?.pop() {
                Some(connection) => connection,
                None => pool.config.connect(pool.read_only)?,
            };
            let result = work(&connection);
            pool.idle.lock().map_err(|_| poisoned())?.push(connection);
            result
        });
        done.await.map_err(|e| Error::Internal(format!("a SQLite call failed: {e}")))?
    }
}

fn poisoned() -> Error {
    Error::Internal("the SQLite connections' lock is poisoned".to_owned())
}
