"""Live run logs: the write-ahead log of a running run.

Each writer (one process logging to one run) appends to its own file
``.git/gitml/live/<run_id>.<writer_id>.log`` and holds an exclusive ``flock``
on it for as long as it lives. The kernel drops that lock when the process
dies, however it dies, so a log whose lock can be taken belongs to a dead
writer and is ready for recovery.

Lines are appended with one ``write(2)`` each, so a SIGKILL loses nothing the
call returned from; only a half-written last line (power loss) is dropped.
A short write (a full disk, a file size limit) finishes the line if it can;
if it cannot, the call raises and the torn line is closed off later with a
``~torn`` line, so recovery drops exactly that line (its call had failed)
and the next line starts clean.

Once git holds a log's first lines, its writer may start the log again
(``LiveLog.rotate``) with just the lines after them: a long run's log then
stays as small as what is not committed yet. The new file is written beside
the log as ``<log>.next``, locked, and renamed over it, so the log's path
always names one complete log.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


#: Written after a torn line: that line was never acknowledged to the caller.
TORN_MARK = b"~torn"


class LiveLog:
    """An append-only log file owned (locked) by this process."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.pid = os.getpid()
        # Bytes that must reach the log before the next line: the end of a torn line and its mark.
        self.owed = b""

    @classmethod
    def create(cls, live_dir: Path, run_id: str, writer_id: str, header: bytes) -> LiveLog:
        """Create and lock a new log for ``writer_id`` of ``run_id``, starting with ``header``."""
        path = log_path(live_dir, run_id, writer_id)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            live_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, header)
        return cls(path, fd)

    def append(self, data: bytes, done: int = 0) -> None:
        """Write all of ``data`` (``done`` bytes of it are written already).

        Raises:
            OSError: the disk is full (or similar). Nothing of ``data`` counts as logged then.
        """
        while self.owed:
            n = os.write(self.fd, self.owed)
            self.owed = self.owed[n:]
        try:
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError:
            if done:
                self.owed = b"\n" + TORN_MARK + b"\n"
            raise

    def sync(self) -> None:
        os.fsync(self.fd)

    def size(self) -> int:
        """Bytes in the log now (the offset the next line will start at)."""
        return os.lseek(self.fd, 0, os.SEEK_END)

    def rotate(self, header: bytes, keep_from: int) -> None:
        """Replace the log with a new one: ``header``, then this log's bytes from ``keep_from`` on.

        The caller keeps appends out meanwhile (``keep_from`` is where the
        lines it still needs begin). Nothing is fsynced, as for appends.

        Raises:
            OSError: the new log could not be written; the old one is kept as it was.
        """
        staged = next_path(self.path)
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with open(self.path, "rb") as old:
                old.seek(keep_from)
                data = header + old.read()
            done = 0
            while done < len(data):
                done += os.write(fd, data[done:])
            os.rename(staged, self.path)
        except BaseException:
            os.close(fd)
            _unlink(staged)
            raise
        os.close(self.fd)  # the old file: gone from the directory, its lock goes with it
        self.fd = fd

    def close(self, remove: bool) -> None:
        """Release the log; ``remove`` deletes it first (its data is in git)."""
        if self.fd < 0:
            return
        if remove:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = -1


class OrphanLog:
    """A log whose writer is gone, locked by us while we recover it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def read_lines(self) -> list[bytes]:
        """Complete lines of the log: a torn last line is dropped, and so is a line marked torn."""
        data = self.path.read_bytes()
        lines = data.split(b"\n")[:-1]  # the piece after the last newline is incomplete or empty
        if TORN_MARK not in data:
            return lines
        kept: list[bytes] = []
        for line in lines:
            if line == TORN_MARK:
                if kept:
                    kept.pop()
            else:
                kept.append(line)
        return kept

    def discard(self) -> None:
        """Delete the log (its content is now in git) and release it."""
        _unlink(self.path)
        _unlink(next_path(self.path))  # a new log its writer died writing: the old one was complete
        self.release()

    def set_aside(self, directory: Path) -> Path:
        """Move the log into ``directory`` (it could not be applied) and release it."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / self.path.name
        os.replace(self.path, target)
        _unlink(next_path(self.path))
        self.release()
        return target

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def log_path(live_dir: Path, run_id: str, writer_id: str) -> Path:
    return live_dir / f"{run_id}.{writer_id}.log"


def next_path(path: Path) -> Path:
    """Where the log at ``path`` is rewritten before it replaces it (``LiveLog.rotate``)."""
    return path.with_name(path.name + ".next")


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def live_writers(live_dir: Path, run_id: str) -> list[Path]:
    """Paths of the live logs of ``run_id`` (alive or not)."""
    prefix = run_id + "."
    try:  # a listing, not a glob: a glob compiles a new pattern for every run id
        return sorted(live_dir / n for n in os.listdir(live_dir) if n.startswith(prefix) and n.endswith(".log"))
    except FileNotFoundError:
        return []


def is_locked(path: Path) -> bool:
    """True if some live process holds the lock on the log at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)


def orphan_logs(live_dir: Path, run_id: str | None = None) -> Iterator[OrphanLog]:
    """Yield each log whose writer has died, exclusively locked by us.

    The caller must ``discard()``, ``set_aside()`` or ``release()`` each one.
    A log another recoverer already handled (unlinked while we waited) is
    skipped. ``run_id`` limits the search to that run's logs.
    """
    try:
        logs = live_writers(live_dir, run_id) if run_id else sorted(live_dir.glob("*.log"))
    except FileNotFoundError:
        return
    for path in logs:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its writer is alive, or another recoverer has it
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        yield OrphanLog(path, fd)
