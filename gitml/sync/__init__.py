"""Team sync: runs, experiments and notes through a git remote; artifacts through a DVC remote.

``push`` sends the artifacts first and the refs after, so a teammate who
sees a run can always fetch its files. Every ref update is leased: a ref the
remote moved since we looked is fetched and merged (runs are unioned, notes
merged by run id), never overwritten. ``pull`` does the same the other way.
Remote refs are fetched into ``refs/gitml-incoming/<remote>/`` for the
duration of the command and deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gitml.errors import CorruptRun, GitmlError
from gitml.store import gitremote, livelog, names
from gitml.store.content import Progress
from gitml.store import ledger as store_ledger
from gitml.store.repo import GitRepo
from gitml.sync import manifests
from gitml.tracking import experiments, process, recovery, schema
from gitml.tracking.commit import live_dir
from gitml.tracking.ledger import fold as fold_ledger
from gitml.tracking.ledger import put_back
from gitml.tracking.merge import merge_runs
from gitml.tracking.notes import merge_lines, note_runs, parse_lines, queue_note, write_notes
from gitml.tracking.runfiles import RunState, check_metric_files, read_state


REMOTE_PATTERNS = ("refs/gitml/*", "refs/notes/gitml", "refs/notes/gitml-registry", "refs/tags/*")


@dataclass
class SyncReport:
    """What a push or pull did."""

    remote: str
    runs_sent: list[str] = field(default_factory=list)
    runs_received: list[str] = field(default_factory=list)
    runs_merged: list[str] = field(default_factory=list)
    refs_rejected: dict[str, str] = field(default_factory=dict)
    tags_sent: list[str] = field(default_factory=list)
    tags_received: list[str] = field(default_factory=list)
    tags_renumbered: dict[str, str] = field(default_factory=dict)  # our unpublished tag -> its new name
    tag_conflicts: dict[str, str] = field(default_factory=dict)
    artifacts_copied: int = 0
    artifact_remote: str | None = None
    artifacts_missing: dict[str, list[str]] = field(default_factory=dict)  # run id -> paths
    notes: str = "unchanged"
    rejected: dict[str, str] = field(default_factory=dict)  # remote ref -> why it was not taken


def _incoming(remote: str) -> str:
    # The remote may be a name or a URL: make a ref-safe, unique component of it.
    import hashlib
    import re

    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", remote).strip("-")[:40] or "remote"
    return f"refs/gitml-incoming/{slug}-{hashlib.sha1(remote.encode()).hexdigest()[:8]}/"


def _fetch_incoming(repo: GitRepo, remote: str, progress: Progress | None = None) -> dict[str, str]:
    """Fetch the remote's gitml refs under the incoming namespace; local name -> oid there."""
    base = _incoming(remote)
    gitremote.fetch(repo, remote, [f"+refs/gitml/*:{base}gitml/*", f"+refs/notes/gitml*:{base}notes/gitml*",
                                   f"+refs/tags/*:{base}tags/*"], progress)
    found = {}
    for ref, oid in repo.iter_refs(base):
        local = "refs/" + ref[len(base) :]
        found[local] = oid
    return found


def _merge_ref(repo: GitRepo, ref: str, ours: str | None, theirs: str) -> tuple[str, str | None]:
    """Combine our and their version of one gitml ref; return (kind, resulting oid).

    What arrives is someone else's data: a run or experiment that is not in
    gitml's shape is not taken (kind "rejected", with ``CorruptRun``
    raised for the caller to report), and ours is kept.

    Raises:
        CorruptRun: their copy is malformed (ours, if any, stays).
    """
    if ours == theirs:
        return "same", theirs
    run_id = names.parse_run_ref(ref)
    if run_id is not None:
        _check_incoming_run(repo, theirs, run_id)  # raises CorruptRun: never take a malformed run
        if ours is None:
            return "received", theirs
        try:
            merged = merge_runs(repo, ours, theirs, run_id, keep_ours=_logging_here(repo, run_id))
        except CorruptRun:
            return "received", theirs  # ours is the malformed one: theirs repairs it
    elif (experiment_id := names.parse_experiment_ref(ref)) is not None:
        experiments.read_experiment(repo, theirs, experiment_id)  # raises CorruptRun
        merged = theirs if ours is None else _merge_history(repo, ours, theirs)
    elif ref in _NOTE_RULES:
        if not repo.is_commit(theirs):
            raise CorruptRun(f"{ref} on the remote does not point at a commit")
        merged = _merge_notes(repo, ours, theirs, _NOTE_RULES[ref])
    else:
        raise CorruptRun(f"{ref} is not a ref gitml writes")
    return ("kept" if merged == ours else "received" if merged == theirs else "merged"), merged


# The artifacts of the incoming run commits this sync checked: commit -> entries. The check reads
# every file of the run, so _artifact_oids takes them from here instead of reading the run again.
_checked: dict[str, manifests.Entries] = {}


def _check_incoming_run(repo: GitRepo, commit: str, run_id: str) -> None:
    """Every file of a run commit from elsewhere, metric chunks included.

    Raises:
        CorruptRun.
    """
    state, tree = read_state(repo, commit, run_id)
    try:
        check_metric_files(repo, tree)
    except schema.Problem as e:
        raise schema.corrupt(run_id, commit, e) from None
    _checked[commit] = _entries(state)


def _entries(state: RunState) -> manifests.Entries:
    return [(state.run_id, path, entry["md5"]) for path, entry in state.artifacts.items()]


def _runs_in_updates(repo: GitRepo, updates: list[tuple[str, str, str | None]]) -> dict[str, dict[str, str]]:
    """Ref -> {run id: run commit} of the runs a push of ``updates`` sends (new or changed)."""
    out: dict[str, dict[str, str]] = {}
    for ref, new, old in updates:
        if not new:
            continue
        if (run_id := names.parse_run_ref(ref)) is not None:
            out[ref] = {run_id: new}
        elif names.parse_ledger_ref(ref) is not None:
            out[ref] = {r: oid for r, oid in store_ledger.changed_entries(
                repo, old if old and repo.is_commit(old) else None, new).items() if oid is not None}
    return out


def _ours_to_send(repo: GitRepo, ref: str, oid: str, report: SyncReport, remote_oid: str | None = None,
                  read: dict[str, RunState] | None = None) -> bool:
    """False for a local ref push must not spread: a malformed run (fetched with plain git, say),
    a ledger with one, or a ref under refs/gitml/ that gitml does not write."""
    run_id = names.parse_run_ref(ref)
    try:
        if run_id is not None:
            _remember_state(read, oid, read_state(repo, oid, run_id)[0])
        elif names.parse_ledger_ref(ref) is not None:
            base = remote_oid if remote_oid and repo.is_commit(remote_oid) else None
            for entry, commit in store_ledger.changed_entries(repo, base, oid).items():
                if commit is not None:
                    _remember_state(read, commit, read_state(repo, commit, entry)[0])
        elif names.parse_experiment_ref(ref) is None and ref not in _NOTE_RULES:
            raise CorruptRun(f"{ref} is not a ref gitml writes")
    except CorruptRun as e:
        report.rejected[ref] = str(e)
        schema.warn_skipped(e, oid, "not pushed")
        return False
    return True


def _logging_here(repo: GitRepo, run_id: str) -> bool:
    """True while this machine has a live log of the run (its writer counts must stay in our commit)."""
    return bool(livelog.live_writers(live_dir(repo), run_id))


def _merge_history(repo: GitRepo, ours: str, theirs: str) -> str:
    """For refs whose commits chain (experiments): fast-forward, else ours on top of both."""
    if repo.is_ancestor(theirs, ours):
        return ours
    if repo.is_ancestor(ours, theirs):
        return theirs
    info = repo.commit_info(ours)
    return repo.write_commit(info.tree, [ours, theirs], "gitml: merge experiment from two clones\n")


def _union_runs(mine: str, theirs: str) -> str | None:
    """Run notes: their lines for runs our note does not list (ours wins for the rest).

    Only well-formed run lines are taken from theirs (``notes.parse_lines``).
    """
    mine_ids = set(note_runs(mine))
    new_lines = {rid: line for rid, line in parse_lines(theirs).items() if rid not in mine_ids}
    return (merge_lines(mine, new_lines) or "") if new_lines else None


def _clean_run_note(text: str) -> str | None:
    """Their note as it may be taken: its well-formed run lines only."""
    lines = parse_lines(text)
    return "\n".join(lines.values()) + "\n" if lines else None


def _union_lines(mine: str, theirs: str) -> str | None:
    """Registry comments: every line of both, ours first, each once (lines split at newlines only).

    Their lines are taken only if they are JSON objects, as gitml writes comments.
    """
    have = set(mine.split("\n"))
    extra = [line for line in theirs.split("\n") if line and line not in have and _json_object(line)]
    if not extra:
        return None
    return (mine.rstrip("\n") + "\n" if mine.strip() else "") + "\n".join(extra) + "\n"


def _clean_comments(text: str) -> str | None:
    lines = [line for line in text.split("\n") if line and _json_object(line)]
    return "\n".join(lines) + "\n" if lines else None


def _json_object(line: str) -> bool:
    import json

    from gitml.registry.metadata import MAX_LINE  # a model's metadata line may hold a 100k-character tag

    try:
        return len(line) <= MAX_LINE and isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


@dataclass(frozen=True)
class _NoteRules:
    combine: Callable[[str, str], str | None]  # two clones' notes on one object -> the merged note
    clean: Callable[[str], str | None]  # a note of theirs -> what of it may be taken


_NOTE_RULES = {names.NOTES_REF: _NoteRules(_union_runs, _clean_run_note),
               names.REGISTRY_NOTES_REF: _NoteRules(_union_lines, _clean_comments)}


def _merge_notes(repo: GitRepo, ours: str | None, theirs: str, rules: _NoteRules) -> str:
    """Their notes commit merged into ours, taking only well-formed lines of theirs.

    If theirs is newer than ours (or we have none), their notes are taken
    (cleaned), on top of their commit; if the two diverged, the notes are
    combined per object in a merge commit of both.
    """
    if ours is not None and repo.is_ancestor(theirs, ours):
        return ours
    forward = ours is None or repo.is_ancestor(ours, theirs)
    our_tree = repo.commit_info(ours).tree if ours is not None else None
    their_tree = repo.commit_info(theirs).tree
    ours_notes = dict(repo.notes_in_tree(our_tree)) if our_tree is not None else {}
    changes: dict[str, bytes | None] = {}
    for target, text in repo.notes_in_tree(their_tree):
        if forward:
            clean = rules.clean(text)
            if clean != text:
                changes[target] = clean.encode() if clean else None
        elif ours_notes.get(target) != text:
            merged = rules.combine(ours_notes.get(target) or "", text)  # a note only theirs has is cleaned too
            if merged:
                changes[target] = merged.encode()
    base = their_tree if forward else our_tree
    assert base is not None
    parents = [theirs] if forward or ours is None else [ours, theirs]  # not forward: ours is not None
    with repo.batch():
        tree = repo.update_tree(base, _note_paths(repo, base, changes)) if changes else base
        if tree == their_tree:
            return theirs
        if tree == our_tree:
            return ours  # type: ignore[return-value]
        return repo.write_commit(tree, parents, "gitml: merge notes from two clones\n")


def _note_paths(repo: GitRepo, tree: str, changes: dict[str, bytes | None]) -> dict[str, bytes | None]:
    return {repo.note_path(tree, target): data for target, data in changes.items()}


def _remember_state(read: dict[str, RunState] | None, commit: str, state: RunState) -> None:
    if read is not None:
        read[commit] = state


def _artifact_oids(repo: GitRepo, run_oids: list[str],
                   read: dict[str, RunState] | None = None) -> dict[str, list[tuple[str, str]]]:
    """md5 -> [(run id, artifact path)] referenced by these run commits (malformed ones skipped;
    ``read``: states already read, by commit)."""
    def entries(oid: str) -> manifests.Entries | None:
        if oid in _checked:
            return _checked[oid]
        try:
            return _entries(read[oid] if read is not None and oid in read else read_state(repo, oid)[0])
        except CorruptRun as e:
            schema.warn_skipped(e, oid)
            return None

    found = manifests.artifacts_of(repo, run_oids, entries)
    out: dict[str, list[tuple[str, str]]] = {}
    for oid in dict.fromkeys(run_oids):
        for run_id, path, md5 in found.get(oid, ()):
            out.setdefault(md5, []).append((run_id, path))
    return out


# A ref the remote refused because another push held its lock, or because the
# remote moved since we looked (our lease went stale), is not an error: the
# push is redone from a fresh look at the remote, which then merges or skips it.
PUSH_ROUNDS = 10
_TRANSIENT = ("failed to update ref", "failed to lock", "cannot lock ref", "stale info", "fetch first")


def push(repo: GitRepo, remote: str = "origin", artifact_remote: str | None = None,
         progress: Progress | None = None) -> SyncReport:
    """Send runs, experiments, notes (and their artifacts) to ``remote``.

    A ref that another push to the same remote was updating at the same
    moment is retried from a fresh look at the remote (up to ``PUSH_ROUNDS``
    rounds, a short random wait between them); what still fails is listed
    in ``refs_rejected``.

    Raises:
        RemoteError: the git remote cannot be reached.
        RemoteNotConfigured: runs have artifacts and no DVC remote is set up.
        RemotePluginMissing: the DVC remote needs a plugin that is not installed (dvc-s3...).
    """
    import random
    import time

    process.flush_all(repo)
    recovery.recover(repo)
    put_back(repo)  # a shard a forced plain-git fetch replaced gets this clone's runs back first
    report = SyncReport(remote)
    for round_ in range(PUSH_ROUNDS):
        report.refs_rejected = {}
        _push_round(repo, remote, artifact_remote, progress, report)
        if not any(any(t in why for t in _TRANSIENT) for why in report.refs_rejected.values()):
            break
        if round_ + 1 < PUSH_ROUNDS:
            # Jittered: clones that collided once must not collide again in step.
            time.sleep(random.uniform(0.05, 0.1 * 2 ** min(round_, 4)))
    return report


def _push_round(repo: GitRepo, remote: str, artifact_remote: str | None, progress: Progress | None,
                report: SyncReport) -> None:
    """One look at the remote, one merge of what it has, one leased push of the rest."""
    remote_refs = gitremote.ls_remote(repo, remote, REMOTE_PATTERNS)
    remote_tags = _registry_tags(remote_refs)
    remote_refs = {r: o for r, o in remote_refs.items() if not r.startswith("refs/tags/") or r in remote_tags}
    try:
        # Whatever the remote has that we do not is merged in first (runs are
        # joined, so pushing the result back converges instead of overwriting).
        differ = {ref: oid for ref, oid in remote_refs.items() if repo.ref_target(ref) != oid}
        if differ:
            if any(not repo.has_object(oid) for oid in differ.values()):
                differ = {ref: oid for ref, oid in _fetch_incoming(repo, remote, progress).items() if ref in differ}
            _absorb(repo, differ, report, count_received=False, progress=progress)
        local = dict(repo.iter_refs("refs/gitml/"))
        for ref in (names.NOTES_REF, names.REGISTRY_NOTES_REF):
            oid = repo.ref_target(ref)
            if oid:
                local[ref] = oid
        checked: dict[str, RunState] = {}  # run commit -> its state, read once for the check and the artifacts
        updates = [(ref, oid, remote_refs.get(ref)) for ref, oid in sorted(local.items())
                   if remote_refs.get(ref) != oid and _ours_to_send(repo, ref, oid, report, remote_refs.get(ref), checked)]
        # A run the remote still has as its own ref (pushed while it was live) and that is in our
        # ledger now (its content merged in above): the remote's ref goes, leased.
        updates += [(ref, "", oid) for ref, oid in sorted(remote_refs.items())
                    if (run_id := names.parse_run_ref(ref)) is not None and ref not in local
                    and store_ledger.lookup_folded(repo, run_id) is not None]
        updates += _tag_updates(repo, remote_refs, report)
        sent_runs = _runs_in_updates(repo, updates)
        flat = {run_id: oid for per_ref in sent_runs.values() for run_id, oid in per_ref.items()}
        tag_oids = [oid for ref, oid, _ in updates if ref.startswith("refs/tags/")]
        wanted = _artifact_oids(repo, list(flat.values()) + _version_commits(repo, tag_oids), checked)
        if wanted:
            from gitml.store.content import RemoteStore, transfer_objects
            from gitml.tracking.artifacts import content_store

            store = RemoteStore(repo, artifact_remote)
            report.artifact_remote = store.name
            local_store = content_store(repo)
            absent = local_store.missing(list(wanted))
            for md5 in absent:  # not in our cache (pulled without artifacts): cannot be sent
                for run_id, path in wanted.pop(md5):
                    paths = report.artifacts_missing.setdefault(run_id, [])
                    if path not in paths:
                        paths.append(path)
            todo = sorted(set(wanted) - store.exists(sorted(wanted)))
            copied, failed = transfer_objects(local_store.odb, store.odb, todo, progress)
            report.artifacts_copied += copied
            if failed:
                raise GitmlError(f"Could not upload {len(failed)} artifact objects to {store.name!r}; nothing was pushed to git")
        results = gitremote.push(repo, remote, updates, progress)
        for ref, new_oid, _ in updates:
            status = results.get(ref, "not pushed")
            if status != "ok":
                report.refs_rejected[ref] = status
            elif names.parse_run_ref(ref) or names.parse_ledger_ref(ref):
                if new_oid:
                    report.runs_sent += sorted(r for r in sent_runs.get(ref, {}) if r not in report.runs_sent)
            elif ref == names.NOTES_REF:
                report.notes = "sent"
            elif ref.startswith("refs/tags/"):
                report.tags_sent.append(ref[len("refs/tags/") :])
    finally:
        _checked.clear()
        gitremote.delete_refs(repo, [r for r, _ in repo.iter_refs(_incoming(remote))])


def pull(repo: GitRepo, remote: str = "origin", artifact_remote: str | None = None,
         progress: Progress | None = None) -> SyncReport:
    """Fetch runs, experiments, notes (and their artifacts) from ``remote`` and merge them in.

    Artifacts missing on the DVC remote are listed in the report; everything
    else is still pulled.

    Raises:
        RemoteError: the git remote cannot be reached.
        RemotePluginMissing: the DVC remote needs a plugin that is not installed (the runs are
            merged in by then; their artifacts are not).
    """
    process.flush_all(repo)
    recovery.recover(repo)
    put_back(repo)  # a shard a forced plain-git fetch replaced gets this clone's runs back first
    report = SyncReport(remote)
    try:
        incoming = _fetch_incoming(repo, remote, progress)
        _absorb(repo, incoming, report, count_received=True, progress=progress)
        # Every run's artifacts, not just this pull's: runs merged in by an
        # earlier push, or pulled before a remote was set up, get theirs now.
        versions = _version_commits(repo, list(_registry_tags(
            {"refs/tags/" + n: o for n, o in repo.tag_refs().items()}).values()))
        wanted = _artifact_oids(repo, list(store_ledger.all_run_commits(repo).values()) + versions)
        if wanted:
            from gitml.store.content import RemoteNotConfigured, RemotePluginMissing, RemoteStore, transfer_objects
            from gitml.tracking.artifacts import content_store

            local_store = content_store(repo)
            todo = local_store.missing(sorted(wanted))
            if todo:
                try:
                    store = RemoteStore(repo, artifact_remote)
                except RemoteNotConfigured:  # no remote: the runs come, their artifacts are listed missing
                    failed = set(todo)
                except RemotePluginMissing as e:
                    raise RemotePluginMissing(f"{e.message} (the runs were pulled; pull again for their "
                                              "artifacts)") from e
                else:
                    report.artifact_remote = store.name
                    copied, failed = transfer_objects(store.odb, local_store.odb, todo, progress)
                    failed |= local_store.verify(sorted(set(todo) - failed))
                    report.artifacts_copied = copied
                for md5 in sorted(failed):
                    for run_id, path in wanted[md5]:
                        report.artifacts_missing.setdefault(run_id, []).append(path)
    finally:
        _checked.clear()
        gitremote.delete_refs(repo, [r for r, _ in repo.iter_refs(_incoming(remote))])
    return report


def _absorb(repo: GitRepo, incoming: dict[str, str], report: SyncReport, count_received: bool,
            progress: Progress | None = None) -> list[str]:
    """Merge fetched refs into ours (compare-and-swap); return run commits that changed locally.
    ``progress`` hears ("merging refs", refs merged, refs)."""
    changed: list[str] = []
    tags = {ref: oid for ref, oid in incoming.items() if ref.startswith("refs/tags/")}
    _absorb_tags(repo, tags, report)
    refs = sorted((ref, oid) for ref, oid in incoming.items() if ref not in tags)
    for done, (ref, theirs) in enumerate(refs):
        if progress is not None:
            progress("merging refs", done + 1, len(refs))
        if names.parse_ledger_ref(ref) is not None:
            changed += _absorb_ledger(repo, ref, theirs, report, count_received)
            continue
        run_id = names.parse_run_ref(ref)
        if run_id is not None and repo.ref_target(ref) is None and store_ledger.lookup_folded(repo, run_id):
            # Their own ref of a run folded here (they pushed it while it was live): it joins
            # our ledger entry, as the ledger entry of theirs would.
            changed += _absorb_ledger(repo, names.ledger_ref(run_id), None, report, count_received,
                                      {run_id: theirs})
            continue
        for _ in range(20):
            ours = repo.ref_target(ref)
            try:
                kind, result = _merge_ref(repo, ref, ours, theirs)
            except CorruptRun as e:
                report.rejected[ref] = str(e)
                schema.warn_skipped(e, theirs, f"not taken from {report.remote}")
                kind, result = "rejected", ours
                break
            if result == ours or repo.cas_ref(ref, result, ours):
                break
        else:
            raise GitmlError(f"{ref} kept changing while merging; run the command again")
        run_id = names.parse_run_ref(ref)
        if run_id and kind in ("received", "merged") and result is not None:
            changed.append(result)
            if kind == "merged":
                report.runs_merged.append(run_id)
            elif count_received:
                report.runs_received.append(run_id)
        if ref == names.NOTES_REF and kind != "same":
            report.notes = kind
    if changed:
        # A merge may have changed a run's status or lifecycle: its note line
        # follows the run, whichever side's notes commit won the notes merge.
        for oid in changed:
            queue_note(repo, read_state(repo, oid)[0])
        write_notes(repo)
    # Their finished runs that arrived as own refs, and our copies of runs they folded, go into the ledger.
    fold_ledger(repo)
    if changed:
        from gitml.tracking import runs

        runs.index_for(repo).refresh(progress=progress)
    return changed


def _absorb_ledger(repo: GitRepo, ref: str, theirs: str | None, report: SyncReport, count_received: bool,
                   entries: dict[str, str] | None = None) -> list[str]:
    """Merge their ledger shard (or ``entries`` of theirs, run id -> commit) into ours: a union
    by run id, a run on both sides joined (``merge_runs``). Every run commit of theirs that is
    new here is checked as any incoming run; a malformed one is left out with a warning.
    Returns the run commits that changed here."""
    shard = names.parse_ledger_ref(ref)
    if theirs is not None:
        if not repo.is_commit(theirs):
            report.rejected[ref] = f"{ref} on the remote does not point at a commit"
            schema.warn_skipped(CorruptRun(report.rejected[ref]), theirs, f"not taken from {report.remote}")
            return []
    for _ in range(20):
        ours = repo.ref_target(ref)
        if theirs is not None and ours is not None and (ours == theirs or repo.is_ancestor(theirs, ours)):
            return []
        if entries is None:
            assert theirs is not None
            new = {r: oid for r, oid in store_ledger.changed_entries(repo, ours, theirs).items() if oid is not None}
        else:
            new = dict(entries)
        changes: dict[str, str] = {}
        kinds: dict[str, str] = {}
        for run_id, oid in sorted(new.items()):
            if run_id[0] != shard:
                continue  # an entry in the wrong shard is never read here: not taken
            mine = store_ledger.lookup(repo, ours, run_id) if ours else None
            try:
                _check_incoming_run(repo, oid, run_id)
            except CorruptRun as e:
                report.rejected[f"{ref}:{run_id}"] = str(e)
                schema.warn_skipped(e, oid, f"not taken from {report.remote}")
                continue
            if mine is None:
                changes[run_id], kinds[run_id] = oid, "received"
                continue
            try:
                merged = merge_runs(repo, mine, oid, run_id, keep_ours=_logging_here(repo, run_id))
            except CorruptRun:
                merged = oid  # ours is the malformed one: theirs repairs it
            if merged != mine:
                changes[run_id], kinds[run_id] = merged, "received" if merged == oid else "merged"
        if theirs is not None and (ours is None or repo.is_ancestor(ours, theirs)) \
                and all(changes.get(r) == oid for r, oid in new.items()):
            result = theirs  # a fast-forward: everything of theirs taken as it is
        elif changes or (theirs is not None and ours is None):
            extra = [theirs] if theirs is not None else []
            result = store_ledger.write(repo, ours, changes, "gitml: merge runs from another clone\n", extra)
        else:
            return []
        if store_ledger.move(repo, ref, result, ours):
            for run_id, kind in kinds.items():
                if kind == "merged":
                    report.runs_merged.append(run_id)
                elif count_received:
                    report.runs_received.append(run_id)
            return list(changes.values())
    raise GitmlError(f"{ref} kept changing while merging; run the command again")


# -- registry tags ------------------------------------------------------------------------------


def _version_commits(repo: GitRepo, tag_oids: list[str]) -> list[str]:
    """The run commits registry tags point at (a registered version pins its run's state then)."""
    from gitml.tracking.schema import RUN_FILE

    out = set()
    for oid in tag_oids:
        info = repo.read_tag(oid)
        # GTO may tag a plain commit, a tree or a blob: only run commits have artifacts
        if info is not None and repo.is_commit(info.target) \
                and repo.read_path(repo.commit_info(info.target).tree, RUN_FILE) is not None:
            out.add(info.target)
    return sorted(out)


def _registry_tags(refs: dict[str, str]) -> dict[str, str]:
    """The registry tags among ``refs/tags/...`` refs (other tags are the user's: never touched)."""
    from gitml.registry import tags as grammar

    return {ref: oid for ref, oid in refs.items()
            if ref.startswith("refs/tags/") and grammar.parse(ref[len("refs/tags/") :]) is not None}


def _absorb_tags(repo: GitRepo, incoming: dict[str, str], report: SyncReport) -> None:
    """Take the remote's registry tags. Tags are immutable: a name both sides wrote differently is
    a stage event numbered twice (two clones promoted at once); ours, unpublished, gets the next
    free counter (same tagger, time and message) and theirs takes the name. The same deprecation
    or deregistration made on both sides (no counter, same target) is theirs, silently. A version
    both registered differently is reported."""
    from gitml.registry import tags as grammar

    incoming = _registry_tags(incoming)
    local = {"refs/tags/" + name: oid for name, oid in repo.tag_refs().items()}
    counters: dict[str, int] = {}
    for ref in list(local) + list(incoming):
        parsed = grammar.parse(ref[len("refs/tags/") :])
        if parsed is not None and parsed.counter is not None:
            counters[parsed.model] = max(counters.get(parsed.model, 0), parsed.counter)
    for ref, theirs in sorted(incoming.items()):
        ours = local.get(ref)
        name = ref[len("refs/tags/") :]
        if ours == theirs:
            continue
        if ours is None:
            if repo.cas_ref(ref, theirs, None):
                report.tags_received.append(name)
            continue
        parsed = grammar.parse(name)
        info = repo.read_tag(ours)
        if parsed is None or info is None:
            report.tag_conflicts[name] = "the remote has a different tag of this name; yours was kept"
            continue
        if parsed.counter is None:
            their_info = repo.read_tag(theirs)
            same = (their_info is not None and their_info.target == info.target
                    and parsed.action in (grammar.DEPRECATE, grammar.DEREGISTER))
            if same and repo.cas_ref(ref, theirs, ours):  # the same change, made on both sides
                report.tags_received.append(name)
            elif same:
                report.tag_conflicts[name] = "changed while taking the remote's tag; run the command again"
            else:
                report.tag_conflicts[name] = "the remote has a different tag of this name; yours was kept"
            continue
        # Renumbered on an earlier run that stopped half-way? Then our event is already under
        # another name: take theirs for this one, and do not copy ours again.
        copy = _same_event(repo, local, ref, parsed, info)
        if copy is None:
            counters[parsed.model] += 1
            new_name = grammar.format(grammar.TagName(parsed.model, parsed.action, parsed.version, parsed.stage,
                                                      counters[parsed.model]))
            new_oid = repo.write_tag(new_name, info.target, info.message,
                                     signature=(info.tagger, info.email, info.time, info.offset))
            if not repo.cas_ref("refs/tags/" + new_name, new_oid, None):
                report.tag_conflicts[name] = "changed while renumbering; run the command again"
                continue
            local["refs/tags/" + new_name] = new_oid
            copy = new_name
        if repo.cas_ref(ref, theirs, ours):
            report.tags_renumbered[name] = copy
            report.tags_received.append(name)
        else:
            report.tag_conflicts[name] = "changed while renumbering; run the command again"


def _same_event(repo: GitRepo, local: dict[str, str], ref: str, parsed: Any, info: Any) -> str | None:
    """The name of another local tag recording the same event as ``info`` (same action, stage or
    version, target, message, tagger and time), or None."""
    from gitml.registry import tags as grammar

    for other, oid in sorted(local.items()):
        if other == ref:
            continue
        p = grammar.parse(other[len("refs/tags/") :])
        if (p is None or p.model != parsed.model or p.action != parsed.action or p.stage != parsed.stage
                or p.version != parsed.version):
            continue
        o = repo.read_tag(oid)
        if o is not None and (o.target, o.message, o.tagger, o.email, o.time, o.offset) == (
                info.target, info.message, info.tagger, info.email, info.time, info.offset):
            return other[len("refs/tags/") :]
    return None


def _tag_updates(repo: GitRepo, remote_refs: dict[str, str], report: SyncReport) -> list[tuple[str, str, str | None]]:
    """Registry tags to create on the remote (a tag there is never moved)."""
    updates: list[tuple[str, str, str | None]] = []
    for ref, oid in sorted(_registry_tags({"refs/tags/" + n: o for n, o in repo.tag_refs().items()}).items()):
        theirs = remote_refs.get(ref)
        if theirs is None:
            updates.append((ref, oid, None))
        elif theirs != oid:
            report.tag_conflicts[ref[len("refs/tags/") :]] = "the remote has a different tag of this name"
    return updates
