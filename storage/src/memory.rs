//! Snapshots in process memory: for a single server whose snapshots may vanish on restart
//! (they are a cache), and for tests of the layers above storage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::model::{Snapshot, SnapshotQuery};
use crate::store::SnapshotStore;

type ByVersion = BTreeMap<u64, Snapshot>;

#[derive(Debug, Default)]
pub struct MemorySnapshotStore {
    /// state id -> reducer revision -> version -> snapshot.
    states: Mutex<HashMap<String, HashMap<String, ByVersion>>>,
}

impl MemorySnapshotStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn states(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, HashMap<String, ByVersion>>>> {
        self.states.lock().map_err(|_| Error::Internal("snapshot store lock poisoned".to_owned()))
    }
}

#[async_trait]
impl SnapshotStore for MemorySnapshotStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn put(&self, snapshot: Snapshot) -> Result<()> {
        self.states()?
            .entry(snapshot.state_id.clone())
            .or_default()
            .entry(snapshot.reducer_revision.clone())
            .or_default()
            .insert(snapshot.version, snapshot);
        Ok(())
    }

    async fn get(&self, query: &SnapshotQuery) -> Result<Option<Snapshot>> {
        let states = self.states()?;
        let newest = states
            .get(&query.state_id)
            .and_then(|revisions| revisions.get(&query.reducer_revision))
            .and_then(|versions| versions.range(..=query.max_version.unwrap_or(u64::MAX)).next_back());
        Ok(newest.map(|(_, snapshot)| snapshot.clone()))
    }

    async fn delete(&self, state_id: &str) -> Result<u64> {
        let removed = self.states()?.remove(state_id);
        Ok(removed.map_or(0, |revisions| revisions.values().map(|v| v.len() as u64).sum()))
    }
}
