"""The hard USD budget of live calls: `BudgetGuard` reserves a call's worst case before it is sent and settles
its actual cost after; `BudgetExceeded` is the refusal. The ledger is in memory, or a SQLite file shared by every
process recording under the same `run` name.

A budget is checked before anything is sent (this part runs anywhere):

    >>> from xrouter_lite.pool.budget import BudgetGuard, BudgetExceeded
    >>> guard = BudgetGuard(0.01)                           # USD
    >>> r = guard.reserve(0.004, "gpt-4o-mini")             # worst case: prompt estimate + max_tokens
    >>> guard.settle(r, 0.001)                              # what the call actually cost
    >>> round(guard.spent, 4), round(guard.remaining, 4)
    (0.001, 0.009)
    >>> try:
    ...     guard.reserve(0.05, "gpt-4o")
    ... except BudgetExceeded as e:
    ...     print(e)
    budget cap $0.010000 would be exceeded, so gpt-4o was not sent: spent $0.001000 + in flight $0.000000 + this call's reservation $0.050000 (prompt estimate + max_tokens at its prices) > cap $0.010000

The worst case of a call (its padded prompt estimate + `max_tokens` at the model's prices) is
`live.LivePool.estimate_usd`.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager

from xrouter_lite.pool.cache import open_db


class BudgetExceeded(RuntimeError):
    """A call refused before it was sent because its worst-case cost would cross the cap."""

    def __init__(self, message: str, spent: float, reserved: float, request_usd: float, cap: float) -> None:
        super().__init__(message)
        self.spent, self.reserved, self.request_usd, self.cap = spent, reserved, request_usd, cap


_BUDGET_SCHEMA = """
CREATE TABLE IF NOT EXISTS budget_ledger (
    id INTEGER PRIMARY KEY, run TEXT NOT NULL, usd REAL NOT NULL, what TEXT NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS budget_reservations (
    id INTEGER PRIMARY KEY, run TEXT NOT NULL, usd REAL NOT NULL, what TEXT NOT NULL, ts REAL NOT NULL,
    pid INTEGER NOT NULL, host TEXT NOT NULL);
"""


def _pid_alive(pid: int) -> bool:
    """Whether a local process exists (on Windows, where signal 0 is not a probe, always True)."""
    if os.name == "nt":
        return True  # never reap there: a stale reservation only makes the guard stricter
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class BudgetGuard:
    """A hard USD cap: reserve a call's worst case before sending it, settle the actual cost after.

    With `path` (e.g. the cache DB) the ledger is a SQLite file shared by every process using the same
    `run` name, so parallel or resumed recordings share one cap. A reservation left by a process that
    died is counted as spent (it may have been billed): the guard errs towards refusing, never
    towards overspending. The cap is hard while a call costs at most its reservation: servers bill
    at most `max_tokens` output tokens, and the prompt estimate (padded by IN_TOKEN_SAFETY) holds.
    """

    def __init__(self, cap_usd: float, path: str | os.PathLike | None = None, run: str = "default") -> None:
        if not (isinstance(cap_usd, (int, float)) and cap_usd >= 0):
            raise ValueError(f"cap_usd must be a number >= 0, got {cap_usd!r}")
        self.cap_usd, self.path, self.run = float(cap_usd), path, run
        self._lock = threading.Lock()  # one connection, shared by this process's threads
        # not fsynced per commit (three per call would cap a recording at ~40 calls/s): a killed process
        # loses nothing, a power cut may forget the last settlements (their answers are in the cache)
        self._db = open_db(path if path is not None else ":memory:", durable=False, schema=_BUDGET_SCHEMA)
        self._host = socket.gethostname()

    @contextmanager
    def _txn(self):
        """One write transaction (BEGIN IMMEDIATE locks out other processes), after reaping dead reservations."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._reap()
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _reap(self) -> None:
        """Turn the reservations of dead processes on this host into spend (they may have been billed)."""
        rows = self._db.execute("SELECT id, pid FROM budget_reservations WHERE host = ? AND pid != ?",
                                (self._host, os.getpid())).fetchall()
        for rid, pid in rows:
            if not _pid_alive(pid):
                self._db.execute("INSERT INTO budget_ledger (run, usd, what, ts) SELECT run, usd, "
                                 "'orphaned: ' || what, ? FROM budget_reservations WHERE id = ?", (time.time(), rid))
                self._db.execute("DELETE FROM budget_reservations WHERE id = ?", (rid,))

    def _totals(self) -> tuple[float, float]:
        spent = self._db.execute("SELECT COALESCE(SUM(usd), 0) FROM budget_ledger WHERE run = ?", (self.run,)).fetchone()[0]
        held = self._db.execute("SELECT COALESCE(SUM(usd), 0) FROM budget_reservations WHERE run = ?", (self.run,)).fetchone()[0]
        return float(spent), float(held)

    def reserve(self, usd: float, what: str = "") -> int:
        """Hold `usd` for one call, or raise BudgetExceeded (nothing sent); returns the reservation id."""
        with self._txn() as db:
            spent, held = self._totals()
            if spent + held + usd > self.cap_usd + 1e-12:
                raise BudgetExceeded(
                    f"budget cap ${self.cap_usd:.6f} would be exceeded, so {what or 'the call'} was not sent: "
                    f"spent ${spent:.6f} + in flight ${held:.6f} + this call's reservation ${usd:.6f} "
                    f"(prompt estimate + max_tokens at its prices) > cap ${self.cap_usd:.6f}",
                    spent, held, usd, self.cap_usd)
            return db.execute("INSERT INTO budget_reservations (run, usd, what, ts, pid, host) VALUES (?, ?, ?, ?, ?, ?)",
                              (self.run, float(usd), what, time.time(), os.getpid(), self._host)).lastrowid

    def settle(self, reservation: int, usd: float) -> None:
        """Replace a reservation by the call's actual cost."""
        with self._txn() as db:
            what = db.execute("SELECT what FROM budget_reservations WHERE id = ?", (reservation,)).fetchone()
            db.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation,))
            db.execute("INSERT INTO budget_ledger (run, usd, what, ts) VALUES (?, ?, ?, ?)",
                       (self.run, float(usd), what[0] if what else "", time.time()))

    def release(self, reservation: int) -> None:
        """Drop a reservation whose call was never billed (it failed)."""
        with self._txn() as db:
            db.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation,))

    def close(self) -> None:
        """Close the ledger's connection."""
        with self._lock:
            self._db.close()

    @property
    def spent(self) -> float:
        """USD settled so far in this run (all processes)."""
        with self._txn():
            return self._totals()[0]

    @property
    def reserved(self) -> float:
        """USD held by calls in flight (all processes)."""
        with self._txn():
            return self._totals()[1]

    @property
    def remaining(self) -> float:
        """USD still available: cap - spent - reserved."""
        with self._txn():
            spent, held = self._totals()
        return self.cap_usd - spent - held

    def __repr__(self) -> str:
        with self._txn():
            spent, held = self._totals()
        return f"BudgetGuard(cap=${self.cap_usd:.4f}, spent=${spent:.4f}, reserved=${held:.4f}, run={self.run!r})"
