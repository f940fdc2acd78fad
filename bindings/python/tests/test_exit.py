"""The interpreter exits cleanly with asyncio clients in use: calls still in flight, tasks
pending or cancelled, loops left open. Each script runs in its own interpreter and must exit
with status 0 and no crash."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from conftest import Server

PRELUDE = """
import asyncio, os, sys
import flipbook
from flipbook import aio

KIND, WHERE, STATE = sys.argv[1:4]

class Counter(flipbook.Reducer[int]):
    revision = "counter-1"
    def initial(self): return 0
    def apply(self, n, event): return n + 1

def tick(n):
    return [flipbook.Event("Tick", {"seen": n})]

async def connect():
    if KIND == "server":
        return await aio.Client.connect(WHERE)
    if KIND == "embedded":
        return await aio.Client.open_embedded(WHERE)
    return aio.Client.in_memory()

def busy(client, n=8):
    return [asyncio.ensure_future(coroutine) for _ in range(n) for coroutine in (
        client.execute(STATE, Counter(), tick),
        client.load(STATE, Counter()),
        client.append(STATE, flipbook.Event("Raw")),
        client.server_info(),
    )]
"""

SCENARIOS = {
    "everything awaited": """
        async def main():
            client = await connect()
            await asyncio.gather(*busy(client))
            assert (await client.load(STATE, Counter())).state == 16
        asyncio.run(main())
    """,
    "tasks pending when main returns": """
        async def main():
            client = await connect()
            busy(client)
            await asyncio.sleep(0.002)
        asyncio.run(main())
    """,
    "tasks cancelled": """
        async def main():
            client = await connect()
            tasks = busy(client)
            await asyncio.sleep(0.005)
            for task in tasks[::2]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run(main())
    """,
    "sys.exit with tasks in flight": """
        async def main():
            client = await connect()
            busy(client)
            await asyncio.sleep(0)
            sys.exit(0)
        asyncio.run(main())
    """,
    "loop left open with pending tasks": """
        async def main():
            client = await connect()
            busy(client)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(main())
    """,
    "read abandoned midway": """
        async def main():
            client = await connect()
            await client.append(STATE, [flipbook.Event("Tick") for _ in range(300)])
            async for event in client.read(STATE):
                break
            pages = client.read_all(limit=500)
            await pages.__anext__()
            busy(client, 2)
        asyncio.run(main())
    """,
    "in-memory client with tasks pending": """
        async def main():
            client = aio.Client.in_memory()
            busy(client)
            await asyncio.sleep(0.001)
        asyncio.run(main())
    """,
}


def where(index: int, sqlite_server: Server, postgres_server: Server, tmp_path: Path) -> tuple[str, str]:
    kind = ["server-sqlite", "server-postgres", "embedded"][index % 3]
    if kind == "server-sqlite":
        return "server", sqlite_server.endpoint
    if kind == "server-postgres":
        return "server", postgres_server.endpoint
    return "embedded", str(tmp_path / f"exit-{index}.db")


def test_scripts_exit_cleanly(sqlite_server: Server, postgres_server: Server, tmp_path: Path) -> None:
    names = list(SCENARIOS)
    runs = []
    for index in range(20):  # every scenario, on each kind of backend in turn
        name = names[index % len(names)]
        script = PRELUDE + textwrap.dedent(SCENARIOS[name])
        kind, location = where(index, sqlite_server, postgres_server, tmp_path)
        command = [sys.executable, "-X", "faulthandler", "-c", script, kind, location, f"exit-{uuid.uuid4()}"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs.append((f"{name} ({kind} {location})", process))

    failures = []
    for label, process in runs:
        try:
            _out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _out, err = process.communicate()
            failures.append(f"{label}: still running after 60 s\n{err}")
            continue
        if process.returncode != 0 or "Fatal Python error" in err or "panicked" in err:
            failures.append(f"{label}: exit status {process.returncode}\n{err}")
    assert not failures, "\n\n".join(failures)


DAEMON_THREADS = """
import sys, threading, time
import flipbook

kind, where, state = sys.argv[1:4]
client = flipbook.Client.connect(where) if kind == "server" else flipbook.Client.open_embedded(where)
client.append(state, [flipbook.Event("Tick") for _ in range(300)])

def forever():
    while True:  # native calls start and end while the interpreter finalizes
        for page in client.read_pages(state):
            pass
        client.head(state)

for _ in range(4):
    threading.Thread(target=forever, daemon=True).start()
time.sleep(0.05)
"""


def test_daemon_threads_in_native_calls_at_exit(sqlite_server: Server, postgres_server: Server, tmp_path: Path) -> None:
    processes = []
    for index in range(6):
        kind, location = where(index, sqlite_server, postgres_server, tmp_path)
        command = [sys.executable, "-c", DAEMON_THREADS, kind, location, f"daemon-{uuid.uuid4()}"]
        processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert "Fatal Python error" not in err and "panicked" not in err, err
