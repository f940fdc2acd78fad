"""moto's DynamoDB emulator, serving one request at a time, with transactions that cost what
they touch.

Two changes to `python -m moto.server`, both for the event store's tests:

- One request at a time. moto backs a transaction up by deep-copying the whole table and, when
  the transaction fails, puts that copy back: on moto's default threaded server a failing
  transaction thereby undid the writes other requests made meanwhile, and other requests could
  see a transaction half applied. Served on one thread, every request (a transaction included)
  runs to its end before the next one starts, which is what DynamoDB's transactions promise.
- No whole-table copy. moto deep-copies the table once per item of a transaction, so an append
  took seconds once the table held a few thousand items. Here a transaction instead remembers
  the items it touches and restores only those when it fails (safe because nothing else runs
  meanwhile).
- Queries look at their partition only. moto's `Query` (on the table, not an index) gathers and
  sorts every item of the table, then keeps the partition's: about 60 ms a query once the tests
  had written a few thousand items. Here it is handed the partition's items alone; what it does
  with them (sort, key condition, filter, limit, paging) is moto's own code.

    python scripts/moto_serial.py [--host 127.0.0.1] [--port 58000]
"""

import argparse
import copy
import os
import types

import moto.dynamodb.models as dynamodb_models
import moto.dynamodb.models.table as dynamodb_tables
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items
# What the backend module sees as `copy` while a transaction runs: deepcopy hands the object back.
_no_copy = types.SimpleNamespace(deepcopy=lambda value, *args: value)


def _touched(backend, transact_items):
    """(table, key, attributes before or None) for each item the transaction names."""
    touched = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table_name = op["TableName"]
        if "Key" in op:
            key = op["Key"]
        else:
            table = backend.get_table(table_name)
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        current = backend.get_item(table_name, key)
        before = copy.deepcopy(current.to_json()["Attributes"]) if current is not None else None
        touched.append((table_name, key, before))
    return touched


def transact_write_items(self, transact_items):
    try:
        touched = _touched(self, transact_items)
    except Exception:
        # A malformed request: moto's own code answers it with the right error.
        return _transact_write_items(self, transact_items)
    dynamodb_models.copy = _no_copy
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, before in reversed(touched):
            if before is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, before)
        raise
    finally:
        dynamodb_models.copy = copy


_query = dynamodb_tables.Table.query


def query(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name is not None or hash_key is None or not self.range_key_attr:
        return _query(self, hash_key, *args, **kwargs)
    partition = list(self.items[hash_key].values()) if hash_key in self.items else []
    self.all_items = lambda: partition  # shadows the method for this call only
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=58000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items
    dynamodb_tables.Table.query = query
    app = DomainDispatcherApplication(create_backend_app)
    # threaded=False, processes=1: werkzeug's plain single-threaded server.
    run_simple(args.host, args.port, app, threaded=False, processes=1, use_reloader=False)


if __name__ == "__main__":
    main()
