"""Execution history: owner of the records of past runs, in memory and on disk.

Two tiers, both bounded by entries *and* by encoded bytes:

* memory: a cachetools ``LRUCache`` of compact entries (the record's JSON as exact-size ``bytes``
  plus the few fields listings filter on). With a disk store it is a cache of recent runs (at most
  ``MEMORY_ENTRIES_WITH_DISK`` / ``MEMORY_BYTES_WITH_DISK`` unless told otherwise); without one it
  is the whole history and gets the full bounds.
* disk: one SQLite file per workspace (``history_path``), pruned oldest-first after every insert so
  that neither the row count nor the sum of the rows' sizes goes over the bounds. Freed pages are
  returned to the file system with ``incremental_vacuum`` when they add up.

Why SQLite with ``journal_mode=WAL`` and ``synchronous=NORMAL``: a committed run survives the server
being killed at any moment (the WAL is written before ``add`` returns; only a power loss or OS crash
can drop the last few commits, and never corrupts the file), a commit costs no fsync (one happens
per checkpoint instead), readers never block the writer, and two editor windows on one workspace
can share the file (``BEGIN IMMEDIATE`` plus ``busy_timeout`` serialise their writes). ``FULL``
would fsync on each commit for a guarantee a run history does not need.

Age: with ``max_age_days`` set, runs older than that are dropped from both tiers by
``prune_expired``, which ``open`` calls and the service calls again every
``EXPIRY_INTERVAL_SECONDS`` (one indexed ``DELETE``). Off by default: a history is bounded by
entries and bytes whatever its age, and the age bound is for users who want old runs gone.

Failure is never an exception to the caller: a file that is not a database or fails its integrity
check is renamed aside (``.corrupt-<time>``), what can still be read from it is copied into a fresh
file, and a folder that cannot be written (or a disk error later, such as a full disk) turns the
history into memory only, with ``degraded`` set to the reason and one warning logged.

Calls are synchronous and made on the event loop: each is one short SQLite statement or
transaction (well under a millisecond for an insert), which is cheaper than a thread hop. The two
pieces of disk work that are not short happen elsewhere: ``open`` (an integrity check that reads
the whole file, and salvage) is meant for a worker thread before the history is used, and WAL
checkpoints (the only fsyncs, which a busy disk can stretch to hundreds of milliseconds) run on a
checkpoint thread with a connection of its own, every ``CHECKPOINT_EVERY`` writes, instead of inside
whichever insert SQLite's automatic checkpoint would pick.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cachetools
import orjson
import xxhash

from agentls.execution.records import RunRecord

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the files this module writes; a newer file is left alone."""

BUSY_TIMEOUT_MS = 2000
"""How long a write waits for another process (a second editor window) holding the lock."""

CHECKPOINT_EVERY = 200
"""Writes between two WAL checkpoints. Each write adds about 18 KB of WAL (35 KB when it prunes);
a ``PASSIVE`` checkpoint seldom resets the WAL while writes keep coming (16 runs at a time in a
recipe), so the file can reach tens of MB during such bursts (docs/performance.md, ``recipe``) and
is checkpointed away at close."""

MEMORY_ENTRIES_WITH_DISK = 1000
"""Default memory bound (entries) when a disk store holds the full history."""

MEMORY_BYTES_WITH_DISK = 8 * 1024 * 1024
"""Default memory bound (bytes) when a disk store holds the full history."""

ENTRY_OVERHEAD = 160
"""Bytes counted per memory entry besides its JSON: the key, the entry object, the LRU links."""

EXPIRY_INTERVAL_SECONDS = 3600.0
"""How often a running server drops runs older than ``history_max_age_days`` (besides at start)."""

SECONDS_PER_DAY = 86_400.0

MIN_MAX_BYTES = 64 * 1024
"""The smallest byte bound honoured: below it not even a short run fits."""

_TRUNCATION_NOTE = "\n[output cut to fit the history size limit]"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    size INTEGER NOT NULL,
    json BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_age ON runs (started_at, size);
CREATE INDEX IF NOT EXISTS runs_by_agent ON runs (agent, started_at);
"""
"""One row per run. ``runs_by_age`` orders rows by age and covers ``SUM(size)``, so pruning and
listing never read the JSON of rows they do not return; ``runs_by_agent`` serves the per-agent
listing without a scan."""


def history_path(data_dir: Path, folders: Sequence[Path]) -> Path:
    """Where the history of a set of workspace folders lives.

    ``data_dir/workspaces/<name>-<xxh3_64 of the sorted realpaths>/history.sqlite3``: the hash makes
    the location depend only on which folders are open (not their order), and the readable name
    (the first folder of the sorted set) helps a person find it.
    """
    reals = sorted(os.path.realpath(f) for f in folders)
    digest = xxhash.xxh3_64_hexdigest("\0".join(reals).encode("utf-8", "surrogateescape"))
    first = os.path.basename(reals[0]) if reals else ""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", first).strip("._")[:48] or "workspace"
    return data_dir / "workspaces" / f"{name}-{digest}" / "history.sqlite3"


class _Entry:
    """A run as memory keeps it: exact-size JSON plus what listings filter and sort on."""

    __slots__ = ("agent", "data", "started_at", "status")

    def __init__(self, started_at: float, agent: str, status: str, data: bytes) -> None:
        self.started_at = started_at
        self.agent = agent
        self.status = status
        self.data = data


def _entry_size(entry: _Entry) -> int:
    return len(entry.data) + ENTRY_OVERHEAD


class _Damaged(Exception):
    """The file exists but is not a readable database; it should be moved aside."""


class _Unusable(Exception):
    """The file must not be touched (written by a newer version); history stays in memory."""


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    name = getattr(error, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    text = str(error).lower()
    return "not a database" in text or "malformed" in text


def _clean_strings(value: Any) -> Any:
    """Replace what orjson refuses in strings (lone surrogates) anywhere in a JSON value."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, dict):
        return {str(k): _clean_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_strings(v) for v in value]
    return value


def _dumps(data: dict[str, Any]) -> bytes:
    try:
        raw = orjson.dumps(data, default=str)
    except orjson.JSONEncodeError:
        raw = orjson.dumps(_clean_strings(data), default=str)
    # An exact-size copy: orjson's result can keep its oversized buffer alive.
    return bytes(memoryview(raw))


class ExecutionHistory:
    """Past runs: bounded in memory and on disk, never raising on storage trouble."""

    def __init__(
        self,
        path: Path | None,
        *,
        max_entries: int,
        max_bytes: int,
        memory_max_entries: int | None = None,
        memory_max_bytes: int | None = None,
        max_age_days: float | None = None,
    ) -> None:
        """Configure the bounds; nothing is opened until ``open``.

        Args:
            path: The SQLite file (see ``history_path``), or None for a memory-only history.
            max_entries: The most runs kept (on disk; in memory too when there is no disk).
            max_bytes: The most encoded bytes kept, likewise.
            memory_max_entries: The memory bound when a disk store exists (default: the smaller
                of ``max_entries`` and ``MEMORY_ENTRIES_WITH_DISK``).
            memory_max_bytes: Likewise for bytes (default: ``MEMORY_BYTES_WITH_DISK``).
            max_age_days: Runs that started longer ago than this are dropped by
                ``prune_expired``; None or 0 keeps runs whatever their age.
        """
        self._path = Path(path) if path is not None else None
        self._max_entries = max(1, max_entries)
        self._max_bytes = max(MIN_MAX_BYTES, max_bytes)
        if path is None:
            mem_entries, mem_bytes = self._max_entries, self._max_bytes
        else:
            mem_entries = memory_max_entries or min(self._max_entries, MEMORY_ENTRIES_WITH_DISK)
            mem_bytes = memory_max_bytes or min(self._max_bytes, MEMORY_BYTES_WITH_DISK)
        self._mem_max_entries = max(1, mem_entries)
        self._max_age = max_age_days * SECONDS_PER_DAY if max_age_days else None
        """The age bound in seconds, or None when runs are kept whatever their age."""
        self._mem: cachetools.LRUCache[str, _Entry] = cachetools.LRUCache(
            maxsize=max(MIN_MAX_BYTES, mem_bytes), getsizeof=_entry_size
        )
        self._conn: sqlite3.Connection | None = None
        """The open store, or None (not opened, memory only, or degraded)."""
        self._checkpointer: _Checkpointer | None = None
        """Checkpoints the WAL off the loop while the store is open."""
        self.degraded: str | None = None
        """Why the disk store is not in use although a path was given; None when all is well."""
        self._warned = False

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Open (or create) the disk store, then drop expired runs; never raises.

        On any trouble with the store, the history falls back to memory. It reads the whole file
        once (the integrity check), so the server calls it from a worker thread before anything
        else uses the history.
        """
        self._open_store()
        self.prune_expired()

    def _open_store(self) -> None:
        self.close()
        self.degraded = None
        self._open()
        if self._conn is not None and self._path is not None:
            self._checkpointer = _Checkpointer(self._path)

    def _open(self) -> None:
        if self._path is None:
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            reason = e.strerror or str(e)
            self._degrade(f"cannot create the history folder {self._path.parent}: {reason}")
            return
        try:
            self._conn = self._connect()
        except _Damaged as e:
            moved = self._quarantine(str(e))
            if moved is None:
                self._degrade(f"the history file {self._path} is damaged and cannot be moved")
                return
            try:
                self._conn = self._connect()
            except (_Damaged, _Unusable, sqlite3.Error, OSError) as e2:
                self._degrade(f"cannot create a new history file {self._path}: {e2}")
                return
            self._salvage(moved)
        except _Unusable as e:
            self._degrade(str(e))
        except (sqlite3.Error, OSError) as e:
            self._degrade(f"cannot open the history file {self._path}: {e}")

    def close(self) -> None:
        """Close the disk store (memory is kept). Safe to call twice."""
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                logger.debug("closing the history file failed", exc_info=True)

    # -- records --------------------------------------------------------------------------------

    def prune_expired(self, now: float | None = None) -> int:
        """Drop runs that started more than ``max_age_days`` before ``now``, in memory and on disk.

        Returns:
            How many runs were dropped from the disk store (from memory when there is none).
            Always 0 when no age bound is set.
        """
        if self._max_age is None:
            return 0
        cutoff = (time.time() if now is None else now) - self._max_age
        expired = [
            key
            for key in list(self._mem.keys())
            if cachetools.Cache.__getitem__(self._mem, key).started_at < cutoff
        ]
        for key in expired:
            del self._mem[key]
        conn = self._conn
        if conn is None:
            removed = len(expired)
        else:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    removed = conn.execute(
                        "DELETE FROM runs WHERE started_at < ?", (cutoff,)
                    ).rowcount
                    self._vacuum_if_worth_it(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as e:
                self._degrade(f"pruning the history file failed: {e}")
                removed = len(expired)
        if removed:
            logger.info(
                "history: dropped %d run(s) older than %g days",
                removed,
                self._max_age / SECONDS_PER_DAY,
            )
        return removed

    def add(self, record: RunRecord) -> None:
        """Remember a finished run (memory and disk), evicting the oldest beyond the bounds."""
        limit = self._max_bytes if self._conn is not None else int(self._mem.maxsize)
        data = self._encode(record, limit - ENTRY_OVERHEAD)
        if data is None:
            return
        entry = _Entry(record.started_at, record.agent, record.status, data)
        self._remember(record.id, entry)
        if self._conn is not None:
            self._write(record.id, entry)

    def get(self, run_id: str) -> RunRecord | None:
        """One run in full: from memory, else from disk; None if unknown."""
        entry = self._mem.get(run_id)
        if entry is not None:
            return self._decode(entry.data)
        if self._conn is None:
            return None
        try:
            row = self._conn.execute("SELECT json FROM runs WHERE id = ?", (run_id,)).fetchone()
        except sqlite3.Error as e:
            self._degrade(f"reading the history file failed: {e}")
            return None
        return self._decode(row[0]) if row is not None else None

    def list(
        self,
        *,
        limit: int = 50,
        agent: str | None = None,
        status: str | None = None,
        since: float | None = None,
    ) -> list[RunRecord]:
        """Runs newest first, filtered; from disk when open (it holds everything we keep)."""
        if limit <= 0:
            return []
        if self._conn is not None:
            clauses: list[str] = []
            params: list[Any] = []
            for column, value in (("agent", agent), ("status", status)):
                if value is not None:
                    clauses.append(f"{column} = ?")
                    params.append(value)
            if since is not None:
                clauses.append("started_at >= ?")
                params.append(since)
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            sql = f"SELECT json FROM runs{where} ORDER BY started_at DESC LIMIT ?"  # noqa: S608 - fixed column names
            try:
                rows = self._conn.execute(sql, (*params, limit)).fetchall()
            except sqlite3.Error as e:
                self._degrade(f"reading the history file failed: {e}")
            else:
                return [r for r in (self._decode(row[0]) for row in rows) if r is not None]
        entries = []
        for key in list(self._mem.keys()):
            # Cache.__getitem__ reads without refreshing the entry's LRU position.
            entry = cachetools.Cache.__getitem__(self._mem, key)
            if agent is not None and entry.agent != agent:
                continue
            if status is not None and entry.status != status:
                continue
            if since is not None and entry.started_at < since:
                continue
            entries.append(entry)
        entries.sort(key=lambda e: e.started_at, reverse=True)
        return [r for r in (self._decode(e.data) for e in entries[:limit]) if r is not None]

    def stats(self) -> dict[str, Any]:
        """Sizes and state, for ``agentls.metrics``."""
        disk_entries = disk_bytes = 0
        file_bytes = 0
        if self._conn is not None:
            try:
                disk_entries, disk_bytes = self._totals(self._conn)
            except sqlite3.Error as e:
                self._degrade(f"reading the history file failed: {e}")
        if self._conn is not None and self._path is not None:
            for suffix in ("", "-wal"):
                with contextlib.suppress(OSError):
                    file_bytes += os.stat(f"{self._path}{suffix}").st_size
        return {
            "entries": len(self._mem),
            "bytes": self._mem.currsize,
            "max_entries": self._max_entries,
            "max_bytes": self._max_bytes,
            "disk_entries": disk_entries,
            "disk_bytes": disk_bytes,
            "file_bytes": file_bytes,
            "degraded": self.degraded,
            "path": str(self._path) if self._path is not None else None,
        }

    # -- memory ---------------------------------------------------------------------------------

    def _remember(self, run_id: str, entry: _Entry) -> None:
        if _entry_size(entry) > self._mem.maxsize:
            self._mem.pop(run_id, None)  # only the disk can hold it
            return
        self._mem[run_id] = entry
        while len(self._mem) > self._mem_max_entries:
            self._mem.popitem()

    def _encode(self, record: RunRecord, limit: int) -> bytes | None:
        """The record's JSON, with its output cut (and manifest dropped) if it exceeds ``limit``."""
        data = record.to_dict()
        raw = _dumps(data)
        if len(raw) <= limit:
            return raw
        output: str = data["output"]
        data["manifest"] = []
        budget = len(output.encode("utf-8", errors="replace"))
        for _ in range(6):
            budget -= len(raw) - limit + len(_TRUNCATION_NOTE) + 16
            if budget < 0:
                data["output"] = ""
            else:
                cut = output.encode("utf-8", errors="replace")[:budget]
                data["output"] = cut.decode("utf-8", errors="ignore") + _TRUNCATION_NOTE
            raw = _dumps(data)
            if len(raw) <= limit:
                logger.warning("run %s: output cut to fit the history size limit", record.id)
                return raw
            if budget < 0:
                break
        logger.warning("run %s is too large for the history size limit; not recorded", record.id)
        return None

    def _decode(self, data: bytes) -> RunRecord | None:
        try:
            value = orjson.loads(data)
            if not isinstance(value, dict):
                raise TypeError("not an object")
            return RunRecord.from_dict(value)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            logger.warning("history: skipped an unreadable record", exc_info=True)
            return None

    # -- disk -----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        assert self._path is not None
        # Opened on a worker thread, then used on the loop's: never by two threads at once.
        conn = sqlite3.connect(
            self._path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer's job, off the loop
            try:
                check = conn.execute("PRAGMA quick_check").fetchall()
            except sqlite3.DatabaseError as e:
                if isinstance(e, sqlite3.OperationalError) or not _is_damage(e):
                    raise
                raise _Damaged(str(e)) from e
            if [row[0] for row in check] != ["ok"]:
                raise _Damaged(f"integrity check failed: {check[0][0] if check else 'no answer'}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _Unusable(
                    f"the history file {self._path} was written by a newer agentls "
                    f"(schema {version}); history is kept in memory only"
                )
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # effective on a new file only
            conn.execute("PRAGMA journal_mode = WAL").fetchall()
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _write(self, run_id: str, entry: _Entry) -> None:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO runs (id, started_at, agent, status, size, json) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        entry.started_at,
                        entry.agent,
                        entry.status,
                        len(entry.data),
                        entry.data,
                    ),
                )
                self._prune(conn)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as e:
            self._degrade(f"writing the history file failed: {e}")
            return
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    @staticmethod
    def _totals(conn: sqlite3.Connection) -> tuple[int, int]:
        count, total = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM runs").fetchone()
        return int(count), int(total)

    def _prune(self, conn: sqlite3.Connection) -> None:
        """Delete the oldest rows until both bounds hold (inside the caller's transaction)."""
        count, total = self._totals(conn)
        excess_rows = count - self._max_entries
        excess_bytes = total - self._max_bytes
        if excess_rows <= 0 and excess_bytes <= 0:
            return
        victims: list[tuple[int]] = []
        freed = 0
        cursor = conn.execute("SELECT rowid, size FROM runs ORDER BY started_at")
        try:
            while len(victims) < excess_rows or freed < excess_bytes:
                rows = cursor.fetchmany(64)
                if not rows:
                    break
                for rowid, size in rows:
                    if len(victims) >= excess_rows and freed >= excess_bytes:
                        break
                    victims.append((rowid,))
                    freed += size
        finally:
            cursor.close()
        conn.executemany("DELETE FROM runs WHERE rowid = ?", victims)
        self._vacuum_if_worth_it(conn)

    def _vacuum_if_worth_it(self, conn: sqlite3.Connection) -> None:
        """Give freed pages back to the file system once they add up (inside a transaction)."""
        free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        if free_pages * page_size > max(self._max_bytes // 4, 1024 * 1024):
            conn.execute("PRAGMA incremental_vacuum").fetchall()

    def _quarantine(self, reason: str) -> Path | None:
        """Rename the damaged file (and its WAL) aside; the new name, or None if that failed."""
        assert self._path is not None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self._path.with_name(f"{self._path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self._path.with_name(f"{self._path.name}.corrupt-{stamp}-{n}")
        try:
            for suffix in ("", "-wal", "-shm"):
                source = Path(f"{self._path}{suffix}")
                if source.exists():
                    os.replace(source, Path(f"{target}{suffix}"))
        except OSError:
            logger.warning(
                "history file %s is damaged (%s) and could not be moved aside", self._path, reason
            )
            return None
        logger.warning(
            "history file %s could not be read (%s); moved it to %s and started a new one",
            self._path,
            reason,
            target,
        )
        return target

    def _salvage(self, damaged: Path) -> None:
        """Copy what can still be read from a quarantined file into the fresh one (best effort)."""
        conn = self._conn
        if conn is None:
            return
        rows: list[tuple[Any, ...]] = []
        try:
            source = sqlite3.connect(f"{damaged.as_uri()}?mode=ro", uri=True)
        except sqlite3.Error:
            return
        try:
            cursor = source.execute(
                "SELECT id, started_at, agent, status, size, json FROM runs "
                "ORDER BY started_at DESC"
            )
            while len(rows) < self._max_entries:
                batch = cursor.fetchmany(64)
                if not batch:
                    break
                rows.extend(r for r in batch if self._decode(r[5]) is not None)
        except sqlite3.Error:
            pass  # the damage starts here: keep what came before it
        finally:
            source.close()
        if not rows:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT OR IGNORE INTO runs (id, started_at, agent, status, size, json) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows[: self._max_entries],
            )
            self._prune(conn)
            conn.execute("COMMIT")
            logger.warning("history: recovered %d run(s) from %s", len(rows), damaged)
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            logger.warning("history: could not recover runs from %s", damaged, exc_info=True)

    def _degrade(self, reason: str) -> None:
        """Stop using the disk; memory becomes the whole history (with the full bounds)."""
        self.close()
        self.degraded = reason
        if not self._warned:
            self._warned = True
            logger.warning("history: %s; keeping runs in memory only", reason)
        if self._mem.maxsize < self._max_bytes or self._mem_max_entries < self._max_entries:
            wider: cachetools.LRUCache[str, _Entry] = cachetools.LRUCache(
                maxsize=self._max_bytes, getsizeof=_entry_size
            )
            for key in list(self._mem.keys()):
                wider[key] = cachetools.Cache.__getitem__(self._mem, key)
            self._mem = wider
            self._mem_max_entries = self._max_entries


class _Checkpointer:
    """WAL checkpoints on a thread of their own, so that no insert on the loop waits for an fsync.

    The loop's connection has automatic checkpoints off; this one copies the WAL back into the
    database every ``CHECKPOINT_EVERY`` writes (``PASSIVE``: it never blocks a writer, and a
    checkpoint that cannot finish now finishes next time). Its connection lives and dies on the
    pool's single thread. The last connection to close checkpoints whatever is left.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="agentls-history"
        )
        self._pending: concurrent.futures.Future[None] | None = None
        self._writes = 0
        """Writes since the last checkpoint was asked for (counted on the loop)."""
        self._conn: sqlite3.Connection | None = None
        """Used only on the pool's thread."""

    def wrote(self) -> None:
        """Count one committed write; ask for a checkpoint when enough have gathered."""
        self._writes += 1
        if self._writes < CHECKPOINT_EVERY:
            return
        if self._pending is not None and not self._pending.done():
            return  # the previous one is still running: the next write asks again
        self._writes = 0
        self._pending = self._pool.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
                )
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            logger.debug("history checkpoint failed; the next one will retry", exc_info=True)

    def _close_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Finish a running checkpoint, close the connection, end the thread."""
        self._pool.submit(self._close_connection)
        self._pool.shutdown(wait=True)
