"""ResponseCache: stable keys, one transaction per answer, shared safely by threads and processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from xrouter_lite.pool.cache import ResponseCache

REPO = Path(__file__).resolve().parents[1]
MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]


def _put(cache: ResponseCache, key: str, text: str = "4", usd: float = 1e-5) -> None:
    cache.put(key, "m", text, in_tokens=10, out_tokens=2, usd=usd, latency_s=0.25,
              request={"model": "m", "messages": MSGS}, meta={"usage_estimated": False})


def test_key_is_canonical_and_covers_sampling_settings():
    k = ResponseCache.key("m@http://x/v1", MSGS, {"temperature": 0.0, "max_tokens": 64})
    # the same request spelled with another dict order is the same key
    reordered = [{"content": m["content"], "role": m["role"]} for m in MSGS]
    assert k == ResponseCache.key("m@http://x/v1", reordered, {"max_tokens": 64, "temperature": 0.0})
    assert len(k) == 64 and int(k, 16) >= 0  # sha256 hex
    others = [ResponseCache.key("m@http://x/v1", MSGS, {"temperature": 0.7, "max_tokens": 64}),
              ResponseCache.key("m@http://x/v1", MSGS, {"temperature": 0.0, "max_tokens": 65}),
              ResponseCache.key("n@http://x/v1", MSGS, {"temperature": 0.0, "max_tokens": 64}),
              ResponseCache.key("m@http://x/v1", MSGS[1:], {"temperature": 0.0, "max_tokens": 64})]
    assert len({k, *others}) == 5


def test_roundtrip_persists_across_instances_and_first_answer_wins(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as cache:
        assert cache.get("k1") is None and "k1" not in cache
        _put(cache, "k1", "first", usd=0.5)
        _put(cache, "k1", "second", usd=0.7)  # a concurrent duplicate payment must not change the answer
    with ResponseCache(path) as again:
        hit = again.get("k1")
        assert (hit.text, hit.in_tokens, hit.out_tokens, hit.usd, hit.latency_s) == ("first", 10, 2, 0.5, 0.25)
        assert hit.meta == {"usage_estimated": False} and hit.created > 0
        assert len(again) == 1 and again.requests() == [{"model": "m", "messages": MSGS}]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_many_threads_share_one_cache(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")

    def writer(t: int) -> None:
        for i in range(25):
            _put(cache, f"t{t}-{i}")
            assert cache.get(f"t{t}-{i}").text == "4"

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert len(cache) == 150
    cache.close()


def test_connections_opening_a_fresh_file_together_all_succeed(tmp_path):
    # SQLite answers "database is locked" at once, without waiting, when two connections race to
    # switch a new file to WAL; before open_db retried that step, about 1 round in 16 lost a writer
    for round_ in range(40):
        path = tmp_path / f"fresh{round_}.sqlite"
        start, errors = threading.Barrier(8), []

        def open_and_write(worker: int) -> None:
            start.wait()
            try:
                _put(ResponseCache(path), f"{worker}")
            except sqlite3.OperationalError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_and_write, args=(w,)) for w in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert errors == [], f"round {round_}: {errors}"
        assert len(ResponseCache(path)) == 8


def test_a_lock_held_past_the_busy_timeout_still_fails_loudly(tmp_path):
    path = tmp_path / "c.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            ResponseCache(path, busy_timeout_s=0.3)
    finally:
        holder.execute("ROLLBACK")


def test_processes_write_the_same_file_without_losing_rows(tmp_path):
    path = tmp_path / "c.sqlite"
    script = textwrap.dedent(f"""
        import sys
        from xrouter_lite.pool.cache import ResponseCache
        c = ResponseCache({str(path)!r})
        for i in range(40):
            c.put(f"{{sys.argv[1]}}-{{i}}", "m", "x", 1, 1, 0.0, 0.0, request={{}})
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(p)], env=env) for p in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert len(ResponseCache(path)) == 120
