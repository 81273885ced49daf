"""GitRepo without libgit2: objects through ``git cat-file --batch``, refs as files.

Loading pygit2 costs ~60-90 ms, more than everything else the post-commit
hook does to log a run. The hook opens its repository as a ``PlainGitRepo``:
the reads on its path (refs, the commit's params file, the ledger and notes
trees, the default experiment) go to one ``git cat-file --batch`` process,
the objects it writes are built in memory and stored as one pack (as
``GitRepo.batch`` does for every writer), and refs move compare-and-swap:
gitml's own with ``GitRepo``'s lock-file protocol, the others (and the
cases it leaves out) with ``git update-ref``. Any method not overridden here is
``GitRepo``'s, which opens libgit2 on first use: slower, never wrong.
Repositories that store refs in a reftable or name objects by SHA-256 use
libgit2 for refs or objects as before.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import weakref
from typing import IO

from gitml.store import packs
from gitml.store.gitcli import error_line
from gitml.store.repo import (
    _FALLBACK_SIGNATURE,
    _UNSAFE_IN_SIGNATURE,
    CommitInfo,
    GitRepo,
    RefUpdateFailed,
    TREE_MODE,
    _backoff,
    _file_id,
    _name,
    is_blob_mode,
    parse_tree,
)

#: git's object type names as libgit2 numbers them (what GitRepo's pending objects use)
_KINDS = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
_HEX = frozenset("0123456789abcdef")
#: refs each linked worktree keeps for itself (in its own git dir); the rest live in the common dir
_PER_WORKTREE = ("refs/worktree/", "refs/bisect/", "refs/rewritten/")
#: git update-ref failures that mean "another writer got there first": retry
_RACE_WORDS = ("cannot lock ref", "but expected", "already exists", "File exists")


class CatFile:
    """One ``git cat-file --batch`` process, started on first use, reading objects on request."""

    def __init__(self, git_dir: str) -> None:
        self.git_dir = git_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def read(self, oid: str) -> tuple[int, bytes] | None:
        """(type number, content) of object ``oid`` (a full SHA-1 hex id), or None if it is missing.

        Anything but a full object id is None without asking git: a short
        hex string would be taken as a ref name.

        Raises:
            OSError: git cat-file could not be run, or died twice in a row.
        """
        oid = oid.lower()
        if len(oid) != 40 or not _HEX.issuperset(oid):
            return None
        with self._lock:
            for attempt in (1, 2):
                try:
                    return self._ask(oid)
                except (OSError, ValueError):
                    self._discard()  # it died (killed, or the repository went away): start another
                    if attempt == 2:
                        raise OSError(f"git cat-file stopped answering in {self.git_dir}") from None
                except BaseException:
                    self._discard()  # interrupted mid-answer: the rest of it must not answer the next question
                    raise
        return None

    def _ask(self, oid: str) -> tuple[int, bytes] | None:
        proc = self._running()
        stdin, stdout = proc.stdin, proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(oid.encode() + b"\n")
        stdin.flush()
        header = stdout.readline()
        if not header:
            raise OSError("no answer")
        parts = header.split()
        if parts[:1] != [oid.encode()]:
            raise ValueError(f"git cat-file answered {header[:80]!r} for {oid}")
        if len(parts) != 3 or parts[1] not in _KINDS:
            return None  # "<oid> missing"
        size = int(parts[2])
        data = _read_exactly(stdout, size + 1)[:size]  # the content, then a newline
        return _KINDS[parts[1]], data

    def _discard(self) -> None:
        if self._proc is not None and self._pid == os.getpid():
            self._proc.kill()
            _stop(self._proc)
        self._proc = None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._pid != os.getpid():  # a forked child starts its own
            self._proc = subprocess.Popen(
                # libgit2 does not follow refs/replace/*, and a fetch can bring some: neither does this
                ["git", "--no-replace-objects", "--git-dir", self.git_dir, "cat-file", "--batch"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=self.git_dir,
            )
            self._pid = os.getpid()
            weakref.finalize(self, _stop, self._proc)
        return self._proc

    def close(self) -> None:
        with self._lock:
            if self._proc is not None and self._pid == os.getpid():
                _stop(self._proc)
            self._proc = None


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise OSError("git cat-file ended mid-object")
    return data


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()


class PlainGitRepo(GitRepo):
    """A GitRepo that reads and writes through the ``git`` binary, never loading libgit2 on its own paths."""

    def __init__(self, git_dir: str | os.PathLike[str]) -> None:
        super().__init__(git_dir)
        self._cat = CatFile(str(self.git_dir))
        self._config: dict[str, str | None] | None = None
        self._ident: tuple[str, str, str] | None = None

    def close(self) -> None:
        """Stop the ``git cat-file`` process (it also stops when this object or the process goes)."""
        self._cat.close()

    # -- objects ---------------------------------------------------------

    def _object(self, oid: str) -> tuple[int, bytes] | None:
        if not self._sha1():
            return None
        return self._cat.read(oid)

    def _peeled(self, oid: str, kind: int) -> tuple[str, bytes] | None:
        """(oid, content) of ``oid`` peeled to ``kind``: tags followed, a commit to its tree."""
        for _ in range(10):
            found = self._object(oid)
            if found is None:
                return None
            got, data = found
            if got == kind:
                return oid, data
            if got == 4 or (got == 1 and kind == 2):  # a tag: its object; a commit: its tree
                first = data.split(b"\n", 1)[0].split()
                if len(first) != 2 or first[0] not in (b"object", b"tree"):
                    return None
                oid = first[1].decode("ascii", "replace")
                continue
            return None
        return None

    def has_object(self, oid: str) -> bool:
        if not self._sha1():
            return super().has_object(oid)
        return self._object(oid) is not None

    def is_commit(self, oid: str) -> bool:
        if not self._sha1():
            return super().is_commit(oid)
        found = self._object(oid)
        return found is not None and found[0] == 1

    def is_tree(self, oid: str) -> bool:
        if not self._sha1():
            return super().is_tree(oid)
        found = self._object(oid)
        return found is not None and found[0] == 2

    def _blob_data(self, oid: str) -> bytes:  # type: ignore[override]
        if not self._sha1():
            return super()._blob_data(oid)
        found = self._object(str(oid))
        if found is None or found[0] != 3:
            raise KeyError(f"{oid} is not a blob")
        return found[1]

    def tree_entries(self, tree: str) -> dict[bytes, tuple[int, str]]:
        if not self._sha1():
            return super().tree_entries(tree)
        found = self._object(tree)
        if found is None or found[0] != 2:  # a tree itself: an entry naming a commit is not followed
            raise KeyError(f"{tree} is not a tree")
        try:
            return parse_tree(found[1], 20)
        except ValueError as e:
            raise KeyError(f"{tree} is not a well-formed tree ({e})") from None

    def tree_entry(self, tree: str, path: str) -> tuple[int, str] | None:
        if not self._sha1():
            return super().tree_entry(tree, path)
        entry: tuple[int, str] | None = (TREE_MODE, tree)
        for name in path.strip("/").split("/"):
            if entry is None or entry[0] != TREE_MODE:
                return None
            try:
                entry = self.tree_entries(entry[1]).get(name.encode("utf-8", "surrogateescape"))
            except KeyError:
                return None
        return entry

    def tree_of(self, commit: str) -> str | None:
        if not self._sha1():
            return super().tree_of(commit)
        found = self._peeled(commit, 2)
        return found[0] if found is not None else None

    def list_dir(self, tree: str, path: str = "") -> list[tuple[str, str, bool]]:
        if path:
            entry = self.tree_entry(tree, path)
            if entry is None or entry[0] != TREE_MODE:
                return []
            tree = entry[1]
        try:
            entries = self.tree_entries(tree)
        except KeyError:
            return []
        return [(name.decode("utf-8", "surrogateescape"), oid, mode == TREE_MODE)
                for name, (mode, oid) in entries.items()]

    def _subtree(self, tree: str, path: str) -> str | None:
        entry = self.tree_entry(tree, path)
        return entry[1] if entry is not None and entry[0] == TREE_MODE else None

    def commit_info(self, oid: str) -> CommitInfo:
        found = self._peeled(oid, 1) if self._sha1() else None
        info = _parse_commit(*found) if found is not None else None
        if info is None:
            return super().commit_info(oid)  # not a (well-formed) commit: libgit2 raises as it always has
        return info

    def read_commit_files(self, commit: str, files: tuple[str, ...]) -> tuple[str, str, dict[str, bytes]] | None:
        if not self._sha1():
            return super().read_commit_files(commit, files)
        found = self._object(commit)
        if found is None or found[0] != 1:
            return None
        info = _parse_commit(commit, found[1])
        if info is None:
            return None
        try:
            entries = self.tree_entries(info.tree)
        except KeyError:
            return None
        out = {}
        for name in files:
            entry = entries.get(name.encode("utf-8", "surrogateescape"))
            if entry is not None and is_blob_mode(entry[0]):
                try:
                    out[name] = self._blob_data(entry[1])
                except KeyError:
                    continue
        return info.message, info.tree, out

    def read_note(self, notes_ref: str, target: str) -> str | None:
        old = self.ref_target(notes_ref)
        tree = self.tree_of(old) if old else None
        rest = target.lower()
        # git's lookup: the note is named by the rest of the id at this level, or lies in
        # the fan-out directory of its next two digits (any depth, flat notes beside them)
        while tree is not None and rest:
            try:
                entries = self.tree_entries(tree)
            except KeyError:
                return None
            flat = entries.get(rest.encode())
            if flat is not None and is_blob_mode(flat[0]):
                try:
                    return self._blob_data(flat[1]).decode("utf-8", "replace")
                except KeyError:
                    return None
            sub = entries.get(rest[:2].encode())
            tree = sub[1] if sub is not None and sub[0] == TREE_MODE else None
            rest = rest[2:]
        return None

    def write_commit(self, tree: str, parents: list[str], message: str) -> str:
        pending = self._pending()
        if pending is None:
            return super().write_commit(tree, parents, message)
        name, email, zone = self._committer()
        if _UNSAFE_IN_SIGNATURE.search(name + email):
            return super().write_commit(tree, parents, message)
        who = f"{name} <{email}> {int(time.time())} {zone}"
        header = "".join([f"tree {tree}\n", *(f"parent {p}\n" for p in parents),
                          f"author {who}\n", f"committer {who}\n\n"])
        data = header.encode() + message.encode()
        oid = packs.object_id(1, data)
        with self.lock:
            pending[oid] = (1, data)
        return oid.hex()

    def _committer(self) -> tuple[str, str, str]:
        """(name, email, time zone) for the commits written here: the rule ``GitRepo.signature``
        follows (user.name and user.email from config, GIT_COMMITTER_NAME/EMAIL over them, gitml's
        fallback without them), read from the config this class keeps."""
        if self._ident is None:
            name, email = self.config_value("user.name"), self.config_value("user.email")
            if not name or not email:
                name, email = _FALLBACK_SIGNATURE
            offset = time.localtime().tm_gmtoff // 60
            zone = "%s%02d%02d" % ("-" if offset < 0 else "+", abs(offset) // 60, abs(offset) % 60)
            self._ident = (os.environ.get("GIT_COMMITTER_NAME") or name,
                           os.environ.get("GIT_COMMITTER_EMAIL") or email, zone)
        return self._ident

    # -- refs ------------------------------------------------------------

    def ref_target(self, name: str) -> str | None:
        if (self.common_dir / "reftable").exists():
            return super().ref_target(name)
        for _ in range(5):  # a symbolic ref (HEAD) names another; more than a few levels is a loop
            where = self.git_dir if name == "HEAD" or name.startswith(_PER_WORKTREE) else self.common_dir
            try:
                text = (where / name).read_text(encoding="ascii", errors="replace").strip()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                text = self._packed().get(name, "")
            except OSError:
                return super().ref_target(name)
            if text.startswith("ref: "):
                name = text[5:].strip()
                continue
            return text if len(text) in (40, 64) and _HEX.issuperset(text) else None
        return None

    def head(self) -> tuple[str | None, str | None]:
        try:
            text = (self.git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return super().head()
        if text.startswith("ref: "):
            ref = text[5:].strip()
            # as GitRepo.head: a branch by its short name, any other symbolic target by its full name
            return self.ref_target(ref), ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else ref
        return (text or None), None

    def cas_ref(self, name: str, new: str | None, old: str | None, also: dict[str, str] | None = None) -> bool:  # type: ignore[override]
        if new is not None:
            done = self._cas_files(name, new, old, also)
            if done is not None:
                return done
        if (self.common_dir / "reftable").exists() or not self._sha1():
            return super().cas_ref(name, new, old, also)
        name = _name(name)
        zero = "0" * 40
        lines = []
        if new is None:
            if old is None:
                return True
            lines.append(f"delete {name} {old}")
        else:
            lines.append(f"update {name} {new} {old or zero}")
        lines += [f"update {other} {target}" for other, target in (also or {}).items()]
        out = subprocess.run(["git", "--git-dir", str(self.git_dir), "update-ref", "-m", f"gitml: update {name}",
                              "--stdin"], input="\n".join(lines).encode() + b"\n", capture_output=True,
                             check=False, cwd=self.git_dir)
        if out.returncode == 0:
            return True
        said = out.stderr.decode("utf-8", "replace")
        if not any(w in said for w in _RACE_WORDS):
            raise RefUpdateFailed(f"Could not update {name} in {self.git_dir}: {error_line(said)}")
        # another writer moved the ref, or holds its lock (or a killed one left the lock)
        self._clear_stale_locks([name, *(also or ())], wait=True)
        _backoff()
        return False

    # -- config ----------------------------------------------------------

    def config_value(self, key: str) -> str | None:
        if self._config is None:
            out = subprocess.run(["git", "--git-dir", str(self.git_dir), "config", "-z", "--list"],
                                 capture_output=True, check=False, cwd=self.git_dir)
            if out.returncode != 0:  # a config file git cannot parse: libgit2 says what it makes of it
                return super().config_value(key)
            found: dict[str, str | None] = {}
            for entry in out.stdout.decode("utf-8", "replace").split("\0"):
                k, sep, v = entry.partition("\n")
                if k:
                    found[k] = v if sep else None  # the last value wins, as with --get; None: a bare key
            self._config = found
        return self._config.get(_config_key(key))

    def config_items(self, prefix: str) -> list[tuple[str, str]]:
        self.config_value(prefix)
        if self._config is None:
            return super().config_items(prefix)
        return [(k, v or "") for k, v in self._config.items() if k.startswith(prefix)]

    def set_config(self, key: str, value: str) -> None:
        super().set_config(key, value)
        self._config = None

    def user_name(self) -> str | None:
        return self.config_value("user.name")


def _config_key(key: str) -> str:
    """A config key as ``git config --list`` prints it: section and name lowercased, a subsection kept."""
    section, _, rest = key.partition(".")
    middle, _, last = rest.rpartition(".")
    return ".".join(p for p in (section.lower(), middle, last.lower()) if p)


def _parse_commit(oid: str, data: bytes) -> CommitInfo | None:
    """A commit object's fields, or None if it is malformed (no tree id, say)."""
    head, _, message = data.partition(b"\n\n")
    tree, parents, author, when, encoding = "", [], b"", 0, "utf-8"
    for line in head.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"tree":
            tree = value.decode("ascii", "replace")
        elif key == b"parent":
            parents.append(value.decode("ascii", "replace"))
        elif key == b"author":
            author = value
        elif key == b"committer":
            parts = value.rsplit(b" ", 2)
            when = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0
        elif key == b"encoding":
            encoding = value.decode("ascii", "replace")
    if len(tree) != 40 or not _HEX.issuperset(tree):
        return None
    name, _, rest = author.partition(b" <")
    email = rest.partition(b">")[0]
    try:
        text = message.decode(encoding, "replace")
    except LookupError:  # an encoding Python does not know
        text = message.decode("utf-8", "replace")
    return CommitInfo(oid=oid, tree=tree, parents=tuple(parents), message=text,
                      author_name=name.decode("utf-8", "replace"), author_email=email.decode("utf-8", "replace"),
                      time=when)
