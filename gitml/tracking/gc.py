"""``gitml gc``: delete the artifact objects nothing references, and pack what git keeps loose.

What references an object (everything is kept that any of these names):

- the ``artifacts.json`` of every commit reachable from any ref, reflog
  entry or worktree HEAD (``store/reach.py``): live runs' own refs, every
  ledger commit's history (so every earlier state of every run), registry
  tags (a version pins a run commit), runs on any other branch or ref, and
  for remote gc the refs of every git remote, fetched for the command;
- the gitlink targets of the runs ledger (what gitml reads as runs);
- the live logs of runs being logged, and those recovery set aside
  (``live-failed/``): every md5-shaped string in them;
- the members of every kept ``.dir`` object.

A manifest that is not what gitml writes (a hand-made or damaged run) does
not make gc guess: every md5-shaped string in it is kept, and it is reported.
A commit or manifest that cannot be read at all (a missing object) makes gc
refuse: nothing is deleted, and the report says why.

The race with writers, and how it is closed (see docs/artifacts.md, "gitml gc"):
an artifact is stored before the event naming it reaches the run's live
log, and the run commit is written later still. Writers hold the content
store's lock shared from storing to logging (``ContentStore.writing``);
gc deletes only while it holds it exclusively (``collecting``). Under the
lock it reads the live logs first and the refs after (a writer commits
before it deletes its log), and lists the refs twice (gitml always writes
the new ref before it deletes the old one: a fold, a pull), walking what
changed. Objects modified within ``keep_recent`` are kept whatever names
them: the margin for writers the lock does not cover (another machine
pushing to a shared remote, an older gitml).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gitml import settings
from gitml.errors import GitmlError
from gitml.store import content, gitcli, gitremote, names, reach
from gitml.store.content import Progress
from gitml.store import ledger as store_ledger
from gitml.store.repo import GitRepo
from gitml.tracking import recovery, schema
from gitml.tracking.commit import live_dir

if TYPE_CHECKING:
    from gitml.store.content import ContentStore, RemoteStore, StoredObject

log = logging.getLogger("gitml")


# An md5 anywhere in text someone else wrote: any case, not inside a longer hex run.
_TOKEN_RE = re.compile(rb"(?<![0-9a-fA-F])[0-9a-fA-F]{32}(?![0-9a-fA-F])")
_REMOVE_BATCH = 200
#: Refs a remote gc fetches from each git remote (not refs/pull/* and the like: they can be huge).
_FETCH_PATTERNS = ("refs/gitml/*", "refs/notes/*", "refs/tags/*", "refs/heads/*")


class GcRefused(GitmlError):
    """gc cannot know what is referenced, so it deletes nothing."""


@dataclass
class Malformed:
    """A manifest that is not what gitml writes: every hash in it was kept."""

    commit: str
    reason: str
    kept: int


@dataclass
class StoreReport:
    """What gc found (and removed, or would remove) in one store."""

    store: str  # "cache", or the artifact remote's name
    location: str
    objects: int = 0
    bytes: int = 0
    referenced: int = 0
    kept_recent: int = 0
    #: objects nothing references, older than keep_recent (deleted unless gc refused)
    unreferenced: int = 0
    #: what was deleted (a dry run: what would be): {"md5", "size", "path"}
    removed: list[dict[str, Any]] = field(default_factory=list)
    removed_bytes: int = 0
    #: leftovers of killed transfers, older than keep_recent: {"path", "size"}
    temp_files: list[dict[str, Any]] = field(default_factory=list)
    #: referenced objects this store does not have (never pulled or pushed; informational)
    missing: int = 0
    #: objects found only in DVC's cache, copied into gitml's (see content.ContentStore._adopt)
    adopted: int = 0


@dataclass
class GcReport:
    """What ``collect`` did, or would do (``dry_run``)."""

    dry_run: bool
    keep_recent: float
    commits_walked: int = 0
    run_commits: int = 0
    manifests_read: int = 0
    live_logs: int = 0
    referenced: int = 0
    git_remotes: list[str] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    #: Why nothing was deleted (empty: gc went ahead).
    refused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stores: list[StoreReport] = field(default_factory=list)
    #: git's object counts before (and after, once packed): loose objects, packs, loose refs.
    git: dict[str, Any] = field(default_factory=dict)


class _References:
    """The md5s something references, grown incrementally as the refs are walked again."""

    def __init__(self, repo: GitRepo, report: GcReport) -> None:
        self.repo = repo
        self.report = report
        self.walk = reach.Reachable(repo)
        #: What gc keeps: every object named, plus every md5-shaped string of live logs and malformed manifests.
        self.md5s: set[str] = set()
        #: The objects runs name for sure (well-formed manifests and the directories they list).
        self.named: set[str] = set()
        self._blobs: set[str] = set()
        self._expanded: set[str] = set()

    def update(self, progress: Progress | None = None) -> None:
        """Walk what the refs name now and was not walked yet; add what it references."""
        try:
            new = self.walk.update()
        except reach.UnreadableHistory as e:
            self.report.refused.append(f"git cannot walk the history: {e}")
            return
        # What gitml reads as runs that the walk did not reach: ledger gitlinks (git does not follow
        # them) and refs pointing straight at a tree.
        extra = []
        for run_id, oid in sorted(store_ledger.all_run_commits(self.repo).items()):
            if oid in self.walk.commits:
                continue
            self.walk.commits.add(oid)
            if not self.repo.has_object(oid):
                self.report.refused.append(
                    f"run {run_id} is {oid}, which is not in this repository (a runs ledger fetched with plain "
                    "git from a damaged clone): what it references is unknown")
            elif self.repo.is_commit(oid) or self.repo.is_tree(oid):
                extra.append(oid)
        for tree in sorted(self.walk.trees() - self.walk.commits):
            self.walk.commits.add(tree)
            extra.append(tree)
        commits = new + extra
        self.report.commits_walked += len(commits)
        step = 5000
        for i in range(0, len(commits), step):
            self._scan(commits[i : i + step])
            if progress is not None:
                progress("walk", min(i + step, len(commits)), len(commits))

    def _scan(self, commits: list[str]) -> None:
        found, unreadable = reach.manifests(self.repo, commits)
        for commit in unreadable:
            self.report.refused.append(f"commit {commit} cannot be read")
        for m in found:
            self.report.run_commits += 1
            if m.blob is None:
                if m.run_shaped:  # a run whose manifest cannot be read: what it names is unknown
                    self.report.refused.append(f"run commit {m.commit}: {m.problem}")
                continue
            if m.blob in self._blobs:
                continue  # the same manifest in another state of a run, or another run
            self._blobs.add(m.blob)
            self.report.manifests_read += 1
            try:
                raw = self.repo.read_blob(m.blob)
            except (KeyError, ValueError) as e:
                self.report.refused.append(f"commit {m.commit}: {reach.MANIFEST} cannot be read ({e})")
                continue
            try:
                entries = schema.check_artifacts(schema.load_json(raw, schema.ARTIFACTS_FILE))
            except schema.Problem as e:
                kept = tokens(raw)
                self.md5s |= kept
                self.report.malformed.append(Malformed(m.commit, str(e), len(kept) // 2))
                continue
            self.named.update(entry["md5"] for entry in entries.values())
            self.md5s.update(entry["md5"] for entry in entries.values())

    def live_logs(self) -> None:
        """Every md5-shaped string in the live logs and in those recovery set aside."""
        for directory in (live_dir(self.repo), recovery.failed_dir(self.repo)):
            try:
                paths = sorted(p for p in directory.iterdir() if p.is_file())
            except FileNotFoundError:
                continue
            for path in paths:
                try:
                    data = path.read_bytes()
                except FileNotFoundError:
                    continue  # committed and removed meanwhile: the refs, read after this, have it
                except OSError as e:
                    self.report.refused.append(f"live log {path} cannot be read ({e})")
                    continue
                self.report.live_logs += 1
                self.md5s |= tokens(data)

    def expand_dirs(self, sources: list[Callable[[str], list[str]]]) -> None:
        """Add the members of every referenced ``.dir`` object, read from the first source that has it."""
        todo = [m for m in self.md5s if m.endswith(".dir") and m not in self._expanded]
        while todo:
            md5 = todo.pop()
            self._expanded.add(md5)
            members = None
            for read in sources:
                try:
                    members = read(md5)
                    break
                except content.MissingObject:
                    continue
                except content.CorruptObject as e:
                    self.report.refused.append(f"directory object {md5}: {e}")
                    break
            if members is not None:
                self.md5s.update(members)
                if md5 in self.named:
                    self.named.update(members)


def tokens(data: bytes) -> set[str]:
    """Every md5 ``data`` could name, in both forms (``<md5>`` and ``<md5>.dir``), lower-cased.

    Also the strings inside it if it is JSON (``\\u`` escapes spell hex digits too).
    """
    found = {t.decode().lower() for t in _TOKEN_RE.findall(data)}
    if b"\\u" in data:
        try:
            texts = _strings(json.loads(data))
        except (ValueError, RecursionError):
            texts = []
        for text in texts:
            found |= {t.decode().lower() for t in _TOKEN_RE.findall(text.encode("utf-8", "replace"))}
    return found | {t + ".dir" for t in found}


def _strings(value: object) -> list[str]:
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def collect(repo: GitRepo, *, force: bool = False, remote: str | None = None, cloud: bool = False,
            keep_recent: float | None = None, git_remotes: list[str] | None = None, pack_git: bool = True,
            progress: Progress | None = None) -> GcReport:
    """Delete (``force``), or list, the artifact objects nothing references and that are older than
    ``keep_recent`` seconds, from the local cache and, with ``remote`` (a name) or ``cloud`` (the
    default artifact remote), from that remote too; then pack git's loose objects and refs.

    A dry run (the default) reads everything a real run reads and deletes nothing.

    Raises:
        GcRefused: a remote gitml cannot collect (DVC's own), or a git remote that cannot be fetched.
        RemoteNotConfigured: ``cloud`` without a default artifact remote, or an unknown ``remote``.
    """
    from gitml.tracking.artifacts import content_store

    keep = float(settings.get("gc_keep_recent", repo) if keep_recent is None else keep_recent)
    report = GcReport(dry_run=not force, keep_recent=keep)
    recovery.recover(repo)  # dead writers' logs become runs first
    local = content_store(repo)
    far: RemoteStore | None = None
    if remote is not None or cloud:
        far = _collectable_remote(repo, remote)
    _warn_shared(repo, far, report)
    start = time.time()
    refs = _References(repo, report)
    fetched: list[str] = []
    try:
        if far is not None:
            fetched = _fetch_git_remotes(repo, git_remotes, report)
        refs.update(progress)
        refs.live_logs()
        stores: list[tuple[ContentStore | RemoteStore, StoreReport]] = [
            (local, StoreReport("cache", str(local.root)))]
        if far is not None:
            stores.append((far, StoreReport(far.name, far.url)))
        plans = []
        for store, sreport in stores:
            refs.expand_dirs(_dir_sources(local, store))
            plans.append(_plan(store, sreport, refs, start - keep, progress))
            report.stores.append(sreport)
        for (store, sreport), (objects, temps) in zip(stores, plans):
            gone: set[str] = set()
            if force and not report.refused:
                gone = _delete(repo, store, refs, objects, temps, local, fetched, report, start - keep, progress)
            if report.refused:  # nothing is (or would be) deleted
                sreport.removed, sreport.temp_files = [], []
            elif force:
                sreport.removed = [r for r in sreport.removed if r["md5"] in gone]
            sreport.removed_bytes = sum(r["size"] for r in sreport.removed)
        # Copying in what only DVC's cache has deletes nothing: done even when gc refuses.
        report.stores[0].adopted = _adopt(local, refs.md5s, dry_run=not force)
        report.referenced = len(refs.named)
    finally:
        if fetched:
            gitremote.delete_refs(repo, [r for r, _ in repo.iter_refs(names.GC_FETCH_PREFIX)])
    # Packing a repository gc cannot read (a missing object) would fail the same way: not tried.
    _git_housekeeping(repo, report, pack=force and pack_git and not report.refused)
    return report


def _collectable_remote(repo: GitRepo, name: str | None) -> RemoteStore:
    """The artifact remote to collect.

    Raises:
        GcRefused: it is (or is at the same URL as) one of DVC's remotes.
    """
    store = content.RemoteStore(repo, name)
    if store.dvc_names:
        raise GcRefused(
            f"The artifact remote {store.name!r} ({store.url}) is DVC's remote {', '.join(store.dvc_names)} too: its "
            "objects may be DVC's own data, on any branch of any clone, which gitml cannot see. gitml gc does not "
            "delete from it (nothing was deleted). Give gitml a remote of its own ('gitml remote add -d NAME URL') "
            "to collect it; see 'gitml gc' in docs/artifacts.md")
    return store


def _warn_shared(repo: GitRepo, far: RemoteStore | None, report: GcReport) -> None:
    """In a DVC repository, say so if gitml's default remote is DVC's (``dvc gc --cloud`` collects it)."""
    if not content.uses_dvc(repo):
        return
    try:
        default = far if far is not None and far.name == content.remote_config(repo)["core"].get("remote") \
            else content.RemoteStore(repo)
    except GitmlError:
        return
    if default.dvc_names:
        report.warnings.append(
            f"gitml's artifact remote {default.name!r} is also DVC's remote {', '.join(default.dvc_names)}: "
            f"'dvc gc --cloud' on it deletes every gitml artifact no .dvc file names. Give gitml a remote of its "
            f"own ('gitml remote add -d NAME URL'), or never run 'dvc gc -c' on it; see 'gitml gc' in docs/artifacts.md")


def _fetch_git_remotes(repo: GitRepo, chosen: list[str] | None, report: GcReport) -> list[str]:
    """Fetch the refs of every git remote (or the chosen ones) under ``refs/gitml-gc/``.

    Teammates push runs there whose artifacts are on the artifact remote:
    gc must count them as references, so a remote it cannot reach stops it.

    Raises:
        GcRefused: a git remote cannot be fetched.
    """
    wanted = list(chosen) if chosen else gitremote.remote_names(repo)
    if not wanted:
        report.warnings.append("this repository has no git remote: only this clone's runs count as references "
                               "on the artifact remote")
    for name in wanted:
        base = names.gc_fetch_prefix(name)
        try:
            gitremote.fetch(repo, name, [f"+{p}:{base}{p[len('refs/') :]}" for p in _FETCH_PATTERNS])
        except gitremote.RemoteError as e:
            raise GcRefused(f"Cannot fetch git remote {name!r}, whose runs may reference objects on the artifact "
                            f"remote; nothing was deleted ({e}). Name the git remotes that share the artifact remote "
                            f"with --git-remote") from e
    report.git_remotes = wanted
    return wanted


def _dir_sources(local: ContentStore, store: ContentStore | RemoteStore) -> list[Callable[[str], list[str]]]:
    sources: list[Callable[[str], list[str]]] = [local.read_dir]
    if store is not local:
        sources.append(store.read_dir)
    return sources


def _plan(store: ContentStore | RemoteStore, sreport: StoreReport, refs: _References, cutoff: float,
          progress: Progress | None) -> tuple[list[StoredObject], list[StoredObject]]:
    """Fill ``sreport`` from a listing of ``store``; return (objects to delete, temporary files to delete)."""
    objects, temps = store.scan()
    if progress is not None:
        progress("scan", len(objects), len(objects))
    present = set()
    doomed = []
    for obj in objects:
        sreport.objects += 1
        sreport.bytes += obj.size
        present.add(obj.oid)
        if obj.oid in refs.md5s:
            sreport.referenced += 1
        elif obj.mtime is None or obj.mtime > cutoff:
            sreport.kept_recent += 1
        else:
            doomed.append(obj)
    sreport.unreferenced = len(doomed)
    sreport.missing = len(refs.named - present)
    old_temps = [t for t in temps if t.mtime is not None and t.mtime <= cutoff]
    sreport.removed = [{"md5": o.oid, "size": o.size, "path": o.path} for o in sorted(doomed, key=lambda o: o.oid)]
    sreport.removed_bytes = sum(o.size for o in doomed)
    sreport.temp_files = [{"path": t.path, "size": t.size} for t in sorted(old_temps, key=lambda t: t.path)]
    return doomed, old_temps


_OID_RE = re.compile(r"[0-9a-f]{32}(\.dir)?")


def _is_oid(text: str) -> bool:
    return _OID_RE.fullmatch(text) is not None


def _delete(repo: GitRepo, store: ContentStore | RemoteStore, refs: _References, objects: list[StoredObject],
            temps: list[StoredObject], local: ContentStore, fetched: list[str], report: GcReport, cutoff: float,
            progress: Progress | None) -> set[str]:
    """Look again for references (under the lock, for the local cache), then delete what is still
    unnamed; return the oids deleted."""
    if store is local:
        with local.collecting():
            _look_again(refs, local, store)
            if report.refused:
                return set()
            doomed = [o for o in objects if o.oid not in refs.md5s and _still_old(o.path, cutoff)]
            _remove_local([o.path for o in doomed] + [t.path for t in temps if _still_old(t.path, cutoff)],
                          progress)
        return {o.oid for o in doomed}
    if fetched:  # what teammates pushed while we looked
        _fetch_git_remotes(repo, fetched, report)
    _look_again(refs, local, store)
    if report.refused:
        return set()
    doomed = [o for o in objects if o.oid not in refs.md5s]
    paths = [o.path for o in doomed] + [t.path for t in temps]
    remote_store: RemoteStore = store  # type: ignore[assignment]
    for i in range(0, len(paths), _REMOVE_BATCH):
        remote_store.remove(paths[i : i + _REMOVE_BATCH])
        if progress is not None:
            progress("remove", min(i + _REMOVE_BATCH, len(paths)), len(paths))
    return {o.oid for o in doomed}


def _look_again(refs: _References, local: ContentStore, store: ContentStore | RemoteStore) -> None:
    """Live logs first, then the refs twice: see the module docstring for why this order closes the race."""
    refs.live_logs()
    refs.update()
    refs.update()
    refs.expand_dirs(_dir_sources(local, store))


def _still_old(path: str, cutoff: float) -> bool:
    try:
        return os.stat(path).st_mtime <= cutoff
    except FileNotFoundError:
        return False


def _remove_local(paths: list[str], progress: Progress | None) -> None:
    for i, path in enumerate(paths):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        if progress is not None and (i % _REMOVE_BATCH == 0 or i == len(paths) - 1):
            progress("remove", i + 1, len(paths))


def _adopt(local: ContentStore, referenced: Iterable[str], dry_run: bool) -> int:
    """Referenced objects that are only in DVC's cache: copied into gitml's (``dvc gc`` can delete
    DVC's copy, not gitml's). Returns how many were (or would be) copied."""
    if local.fallback is None:
        return 0
    count = 0
    for md5 in sorted(referenced):
        if not _is_oid(md5) or local.object_path(md5).exists():
            continue
        src = local.fallback / md5[:2] / md5[2:]
        if not src.is_file():
            continue
        if dry_run:
            count += 1
        elif local.exists(md5):  # copies it in
            count += 1
    return count


def _git_housekeeping(repo: GitRepo, report: GcReport, pack: bool) -> None:
    before = gitcli.count_objects(repo.git_dir)
    report.git = {"loose_objects": before.get("count", 0), "loose_kib": before.get("size", 0),
                  "packs": before.get("packs", 0), "loose_refs": gitcli.loose_refs(repo.common_dir)}
    if pack:
        try:
            gitcli.pack(repo.git_dir)
        except gitcli.GitCommandError as e:  # the artifacts part is done; git's own state is git's to fix
            report.warnings.append(f"packing git's objects failed: {e}")
            return
        after = gitcli.count_objects(repo.git_dir)
        report.git["after"] = {"loose_objects": after.get("count", 0), "loose_kib": after.get("size", 0),
                               "packs": after.get("packs", 0), "loose_refs": gitcli.loose_refs(repo.common_dir)}


def as_dict(report: GcReport) -> dict[str, Any]:
    """The report as JSON-ready data."""
    from dataclasses import asdict

    return asdict(report)

