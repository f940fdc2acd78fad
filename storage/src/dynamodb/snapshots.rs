use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use flipbook_model::{Error, Result, Snapshot, SnapshotQuery, Timestamp};

use super::{DynamoConfig, Item, Table, build_error, get_b, get_n, get_s, key, n, s, sdk_error};
use crate::store::SnapshotStore;

/// The largest snapshot payload an item holds (400 KB per item, less the other attributes).
const MAX_PAYLOAD: usize = 390_000;

/// Snapshots on DynamoDB: one partition per state and reducer revision, sorted by version, and
/// one item per state listing its revisions (so a delete finds them all).
#[derive(Clone, Debug)]
pub struct DynamoSnapshotStore {
    table: Table,
}

/// A state id has no control characters, so the newline separates it from the revision.
fn snapshot_pk(state_id: &str, revision: &str) -> String {
    format!("n#{state_id}\n{revision}")
}

fn revisions_pk(state_id: &str) -> String {
    format!("r#{state_id}")
}

impl DynamoSnapshotStore {
    /// Opens the table (it may be the event store's), creating it when missing and allowed.
    pub async fn open(config: &DynamoConfig) -> Result<Self> {
        Ok(Self { table: Table::open(config).await? })
    }

    /// The keys of every snapshot of one revision of a state.
    async fn keys(&self, state_id: &str, revision: &str) -> Result<Vec<Item>> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(snapshot_pk(state_id, revision)))
                .projection_expression("pk, sk")
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(sdk_error)?;
            keys.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(keys),
            }
        }
    }

    /// Deletes items by key, 25 at a time (BatchWriteItem's limit), retrying what DynamoDB
    /// leaves unprocessed.
    async fn delete_keys(&self, keys: Vec<Item>) -> Result<()> {
        for batch in keys.chunks(25) {
            let mut requests = batch
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder().set_key(Some(key.clone())).build().map_err(build_error)?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<Vec<_>>>()?;
            while !requests.is_empty() {
                let out = self
                    .table
                    .client
                    .batch_write_item()
                    .request_items(&self.table.name, requests)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                requests = out.unprocessed_items.and_then(|mut u| u.remove(&self.table.name)).unwrap_or_default();
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SnapshotStore for DynamoSnapshotStore {
    fn backend(&self) -> &'static str {
        "dynamodb"
    }

    async fn ping(&self) -> Result<()> {
        self.table.ping().await
    }

    async fn put(&self, snapshot: Snapshot) -> Result<()> {
        if snapshot.payload.len() > MAX_PAYLOAD {
            return Err(Error::TooLarge {
                field: "snapshot.payload".to_owned(),
                limit: format!("at most {MAX_PAYLOAD} bytes per snapshot on DynamoDB (400 KB per item)"),
            });
        }
        // The revision first, so a delete never misses a snapshot it could have seen.
        self.table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(key(revisions_pk(&snapshot.state_id), 0)))
            .update_expression("ADD revs :rev")
            .expression_attribute_values(":rev", AttributeValue::Ss(vec![snapshot.reducer_revision.clone()]))
            .send()
            .await
            .map_err(sdk_error)?;
        let mut item = key(snapshot_pk(&snapshot.state_id, &snapshot.reducer_revision), snapshot.version);
        item.extend([
            ("payload".to_owned(), AttributeValue::B(snapshot.payload.into())),
            ("ct".to_owned(), s(snapshot.content_type)),
            ("created".to_owned(), n(snapshot.created_at.unix_nanos())),
        ]);
        self.table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn get(&self, query: &SnapshotQuery) -> Result<Option<Snapshot>> {
        let out = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .key_condition_expression("pk = :pk AND sk <= :max")
            .expression_attribute_values(":pk", s(snapshot_pk(&query.state_id, &query.reducer_revision)))
            .expression_attribute_values(":max", n(query.max_version.unwrap_or(u64::MAX)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        let Some(item) = out.items.unwrap_or_default().into_iter().next() else { return Ok(None) };
        Ok(Some(Snapshot {
            state_id: query.state_id.clone(),
            version: get_n(&item, "sk")?,
            reducer_revision: query.reducer_revision.clone(),
            payload: get_b(&item, "payload")?.to_vec(),
            content_type: get_s(&item, "ct")?.to_owned(),
            created_at: Timestamp::from_unix_nanos(get_n(&item, "created")?),
        }))
    }

    async fn delete(&self, state_id: &str) -> Result<u64> {
        let out = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .set_key(Some(key(revisions_pk(state_id), 0)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        let revisions = match out.item.as_ref().and_then(|item| item.get("revs")) {
            Some(AttributeValue::Ss(revisions)) => revisions.clone(),
            _ => return Ok(0),
        };
        let mut deleted = 0;
        for revision in &revisions {
            let keys = self.keys(state_id, revision).await?;
            deleted += keys.len() as u64;
            self.delete_keys(keys).await?;
        }
        // Only the revisions seen: a snapshot put meanwhile keeps its revision listed.
        self.table
            .client
            .update_item()
            .table_name(&self.table.name)
            .set_key(Some(key(revisions_pk(state_id), 0)))
            .update_expression("DELETE revs :revs")
            .expression_attribute_values(":revs", AttributeValue::Ss(revisions))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(deleted)
    }
}
