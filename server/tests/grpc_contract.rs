//! The storage contract end to end: the same test kit, through the real server's gRPC API, on
//! every backend, and across two servers sharing one backend.

mod common;

mod sqlite {
    use crate::common::{grpc_events, grpc_snapshots};

    flipbook_storage::event_store_contract!(grpc_events());

    mod snapshots {
        use super::*;
        flipbook_storage::snapshot_store_contract!(grpc_snapshots());
    }
}

mod postgres {
    use crate::common::{grpc_postgres_events, grpc_postgres_snapshots};

    flipbook_storage::event_store_contract!(grpc_postgres_events());

    mod snapshots {
        use super::*;
        flipbook_storage::snapshot_store_contract!(grpc_postgres_snapshots());
    }
}

/// Two stateless servers over one PostgreSQL database: each call goes to the other server.
mod two_postgres_servers {
    use crate::common::two_postgres_servers;

    flipbook_storage::event_store_contract!(two_postgres_servers());
}

/// Events on Redis, snapshots on a Redis Cluster.
mod redis {
    use crate::common::{grpc_redis_events, grpc_redis_snapshots};

    flipbook_storage::event_store_contract!(grpc_redis_events());

    mod snapshots {
        use super::*;
        flipbook_storage::snapshot_store_contract!(grpc_redis_snapshots());
    }
}

mod two_redis_servers {
    use crate::common::two_redis_servers;

    flipbook_storage::event_store_contract!(two_redis_servers());
}

/// Events and snapshots in one DynamoDB table (moto in the tests).
mod dynamodb {
    use crate::common::{grpc_dynamodb_events, grpc_dynamodb_snapshots};

    flipbook_storage::event_store_contract!(grpc_dynamodb_events());

    mod snapshots {
        use super::*;
        flipbook_storage::snapshot_store_contract!(grpc_dynamodb_snapshots());
    }
}

mod two_dynamodb_servers {
    use crate::common::two_dynamodb_servers;

    flipbook_storage::event_store_contract!(two_dynamodb_servers());
}
