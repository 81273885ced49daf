"""git notes: reading them, and rewriting several in one compare-and-swap notes commit.

A notes ref points at a commit whose tree maps annotated object ids to note
blobs, flat (``<oid>``) or fanned out (``<2>/<38>``) as git lays it out once
the tree grows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from gitml.errors import ConcurrentUpdate

if TYPE_CHECKING:
    from gitml.store.repo import GitRepo


def read_note(repo: GitRepo, notes_ref: str, target: str) -> str | None:
    """The note attached to ``target`` in ``notes_ref``, or None."""
    with repo.lock:
        try:
            return repo.raw.lookup_note(target, notes_ref).message
        except KeyError:
            return None


def update_notes(
    repo: GitRepo, notes_ref: str, edits: Mapping[str, Callable[[str | None], str | None]], message: str,
    retries: int,
) -> None:
    """Rewrite the notes on several objects in one notes commit, compare-and-swap.

    ``edits`` maps a target oid to ``edit(old_text) -> new_text``; an edit
    may run several times (once per lost race), so it must be a pure
    function of the old text. Returning None removes the note.

    Raises:
        ConcurrentUpdate: the notes ref kept moving for ``retries`` attempts.
    """
    for _ in range(retries):
        old = repo.ref_target(notes_ref)
        base_tree = repo.commit_info(old).tree if old else None
        changes: dict[str, bytes | None] = {}
        for target, edit in edits.items():
            path = note_path(repo, base_tree, target)
            raw = repo.read_path(base_tree, path) if base_tree else None
            current = raw.decode("utf-8", "replace") if raw is not None else None
            text = edit(current)
            if text != current:
                changes[path] = None if text is None else text.encode()
        if not changes:
            return
        with repo.batch():
            tree = repo.update_tree(base_tree, changes)
            commit = repo.write_commit(tree, [old] if old else [], message)
        if repo.cas_ref(notes_ref, commit, old):
            return
    raise ConcurrentUpdate(f"Gave up updating {notes_ref} after {retries} attempts")


def note_path(repo: GitRepo, tree: str | None, target: str) -> str:
    """Where the note on ``target`` goes in notes tree ``tree`` (flat or fanned out)."""
    # git switches to 2/38 fan-out directories once a notes tree grows;
    # write where a reader following the existing layout will look.
    if tree is not None:
        for name, _, is_tree in repo.list_dir(tree):
            if is_tree and len(name) == 2:
                return f"{target[:2]}/{target[2:]}"
    return target


def notes_in_tree(repo: GitRepo, tree: str) -> list[tuple[str, str]]:
    """(annotated oid, text) of every note in a notes tree (flat or fanned out)."""
    out = []
    for path, blob in repo.walk_blobs(tree):
        target = path.replace("/", "")
        if len(target) == 40:
            out.append((target, repo.read_blob(blob).decode("utf-8", "replace")))
    return out


def note_targets(repo: GitRepo, notes_ref: str) -> Iterator[tuple[str, str]]:
    """(annotated object id, note text) for every note in ``notes_ref``."""
    import pygit2

    with repo.lock:
        try:
            found = list(repo.raw.notes(notes_ref))  # type: ignore[call-arg]  # the stub lacks the ref argument
        except (KeyError, pygit2.GitError):
            return iter(())
        return iter([(str(n.annotated_id), n.message) for n in found])
