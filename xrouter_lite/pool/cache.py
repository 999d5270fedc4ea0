"""A persistent response cache for live model calls: SQLite in WAL mode, one row per request.

A paid answer is written in one transaction the moment it arrives, so a recording killed mid-way
keeps every completed call and, on restart, pays for none of them again. Several threads and
processes may share one file (WAL lets readers run beside a writer; `busy_timeout` queues writers).
Only the request (model, messages, sampling settings) and the answer are stored: never API keys
or HTTP headers.

    >>> import tempfile, pathlib
    >>> from xrouter_lite.pool.cache import ResponseCache
    >>> cache = ResponseCache(pathlib.Path(tempfile.mkdtemp()) / "responses.sqlite")
    >>> key = cache.key("gpt-4o-mini", [{"role": "user", "content": "2+2?"}], {"temperature": 0.0})
    >>> cache.put(key, "gpt-4o-mini", "4", in_tokens=12, out_tokens=1, usd=1.8e-06, latency_s=0.4,
    ...           request={"model": "gpt-4o-mini"})
    >>> cache.get(key).text, len(cache)
    ('4', 1)
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction; raise it on slow disks

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key        TEXT PRIMARY KEY,  -- sha256 of the canonical request JSON
    model      TEXT NOT NULL,
    request    TEXT NOT NULL,     -- the canonical request itself (model, messages, settings): auditable, no secrets
    text       TEXT NOT NULL,
    in_tokens  INTEGER NOT NULL,
    out_tokens INTEGER NOT NULL,
    usd        REAL NOT NULL,     -- what the call cost when it was paid
    latency_s  REAL NOT NULL,
    created    REAL NOT NULL,     -- unix time
    meta       TEXT NOT NULL      -- JSON: usage_estimated, finish_reason, endpoint, ...
)
"""


def canonical_json(obj) -> str:
    """One spelling per value: sorted keys, no spaces, UTF-8 kept (so equal requests hash equal)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _while_locked(action, busy_timeout_s: float):
    """Run `action`, retrying while SQLite says "database is locked", until the busy timeout.

    The busy handler covers ordinary writes, but SQLite returns SQLITE_BUSY at once, without
    waiting, where waiting could deadlock: two connections that both hold a read lock and both
    want to switch a new file to WAL or create its tables. Processes that open a fresh file
    together hit exactly that, so these two steps retry by hand.
    """
    deadline = time.monotonic() + busy_timeout_s
    pause = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


def open_db(path: str | os.PathLike, busy_timeout_s: float = BUSY_TIMEOUT_S, durable: bool = True,
            schema: str = "") -> sqlite3.Connection:
    """A connection in autocommit mode with WAL, a busy timeout and `schema` created (cache and budget).

    `durable=True` fsyncs every commit (survives power loss); False survives a killed process only,
    and commits several times faster. `schema` is a script of CREATE ... IF NOT EXISTS statements.
    """
    path = str(path)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: we write explicit BEGIN/COMMIT, so one call is exactly one transaction
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    _while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"), busy_timeout_s)
    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    if schema:
        _while_locked(lambda: conn.executescript(schema), busy_timeout_s)
    return conn


@dataclass(frozen=True)
class CachedResponse:
    """One stored answer; `usd` is what it cost when it was paid."""

    key: str
    model: str
    text: str
    in_tokens: int
    out_tokens: int
    usd: float
    latency_s: float
    created: float
    meta: dict = field(default_factory=dict, compare=False)


class ResponseCache:
    """Request -> answer store in one SQLite file, safe across threads and processes."""

    def __init__(self, path: str | os.PathLike, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()  # sqlite3 connections must not be shared between threads
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._conn()  # creates the table now, so a bad path fails here and not at the first put

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (reopened after a fork: a connection must not cross processes)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            # durable (the default): a paid answer must survive a power cut
            conn = open_db(self.path, self.busy_timeout_s, schema=_SCHEMA)
            self._local.conn, self._local.pid = conn, os.getpid()
            with self._lock:
                self._conns.append(conn)
        return conn

    @staticmethod
    def key(model: str, messages: list[dict], settings: dict) -> str:
        """sha256 of the canonical JSON of (model, messages, sampling settings)."""
        blob = canonical_json({"model": model, "messages": messages, "settings": settings})
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> CachedResponse | None:
        """The stored answer for `key`, or None."""
        row = self._conn().execute(
            "SELECT key, model, text, in_tokens, out_tokens, usd, latency_s, created, meta "
            "FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return CachedResponse(*row[:8], meta=json.loads(row[8]))

    def put(self, key: str, model: str, text: str, in_tokens: int, out_tokens: int, usd: float,
            latency_s: float, request: dict, meta: dict | None = None) -> None:
        """Store one answer in its own transaction; the first answer stored for a key wins."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # OR IGNORE: if another process paid for the same request concurrently, keep the first
            # answer so every reader sees one stable answer per key
            conn.execute("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (key, model, canonical_json(request), text, int(in_tokens), int(out_tokens),
                          float(usd), float(latency_s), time.time(), canonical_json(meta or {})))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def __contains__(self, key: str) -> bool:
        return self._conn().execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def requests(self) -> list[dict]:
        """Every stored request (model, messages, settings), oldest first: what was paid for."""
        rows = self._conn().execute("SELECT request FROM responses ORDER BY created").fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        """Close every connection this cache opened (in any thread)."""
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
