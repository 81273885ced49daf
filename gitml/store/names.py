"""The names gitml owns inside git: ref and note namespaces, paths under .git.

One module so every layer agrees. Each name is a template plus a parse
function; tests round-trip them.
"""

from __future__ import annotations

import re

#: A run's own ref, while it is live (or changed and not yet folded into the ledger).
RUNS_PREFIX = "refs/gitml/runs/"
#: Finished runs: one ledger ref per first hex digit of the run id (gitml.store.ledger).
LEDGER_PREFIX = "refs/gitml/ledger/"
LEDGER_SHARDS = "0123456789abcdef"
#: This clone's last own write of each ledger shard (never pushed or fetched: outside refs/gitml/),
#: so a shard replaced by a forced plain-git fetch gets this clone's runs back.
LEDGER_MINE_PREFIX = "refs/gitml-local/ledger/"
EXPERIMENTS_PREFIX = "refs/gitml/experiments/"
#: Where ``gitml gc --remote`` fetches each git remote's refs for the length of the command, so the
#: runs teammates pushed count as references (deleted afterwards; outside refs/gitml/: never pushed).
GC_FETCH_PREFIX = "refs/gitml-gc/"
NOTES_REF = "refs/notes/gitml"
REGISTRY_NOTES_REF = "refs/notes/gitml-registry"
#: The content of a registered model's anchor blob: the object its metadata note (description,
#: tags, version tags, renames) hangs on in REGISTRY_NOTES_REF. Every clone computes the same
#: oid from the name alone, so a model with no version yet has a place for its note too.
MODEL_ANCHOR = "gitml-model {name}\n"

#: Everything `gitml push` / `git fetch` moves besides registry tags.
SYNC_REFSPECS = ("refs/gitml/*", "refs/notes/gitml*")

#: Directory under the git dir for derived and live state (never committed).
STATE_DIR = "gitml"
LIVE_DIR = "gitml/live"
#: Live logs recovery could not apply yet (retried by every recovery).
LIVE_FAILED_DIR = "gitml/live-failed"
INDEX_FILE = "gitml/index.sqlite"
#: Keyed hashes of the model files this machine wrote (gitml.models.trust), in the common git dir.
#: Local only: no refspec or artifact transfer ever writes it.
TRUSTED_MODEL_FILES = "gitml/trusted-model-files"

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
EXPERIMENT_ID_RE = re.compile(r"^[0-9]{1,20}$")


def run_ref(run_id: str) -> str:
    """The ref that points at the run commit of ``run_id``."""
    return RUNS_PREFIX + run_id


def parse_run_ref(name: str) -> str | None:
    """The run id in a run ref name, or None if ``name`` is not a run ref."""
    if name.startswith(RUNS_PREFIX):
        run_id = name[len(RUNS_PREFIX) :]
        if RUN_ID_RE.match(run_id):
            return run_id
    return None


def model_anchor(name: str) -> bytes:
    """The anchor blob of registered model ``name`` (its oid carries the model's metadata note)."""
    return MODEL_ANCHOR.format(name=name).encode("utf-8")


def parse_model_anchor(data: bytes) -> str | None:
    """The model name an anchor blob names, or None if ``data`` is not an anchor."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    prefix, _, suffix = MODEL_ANCHOR.partition("{name}")
    if text.startswith(prefix) and text.endswith(suffix) and len(text) > len(prefix) + len(suffix):
        name = text[len(prefix) : len(text) - len(suffix)]
        return name if "\n" not in name else None
    return None


def ledger_ref(run_id: str) -> str:
    """The ledger ref that holds run ``run_id`` once it is folded."""
    return LEDGER_PREFIX + run_id[0]


def ledger_refs() -> list[str]:
    return [LEDGER_PREFIX + h for h in LEDGER_SHARDS]


def parse_ledger_ref(name: str) -> str | None:
    """The shard (one hex digit) of a ledger ref name, or None."""
    if name.startswith(LEDGER_PREFIX):
        shard = name[len(LEDGER_PREFIX) :]
        if len(shard) == 1 and shard in LEDGER_SHARDS:
            return shard
    return None


def gc_fetch_prefix(remote: str) -> str:
    """The namespace ``gitml gc`` fetches git remote ``remote`` (a name or a URL) into."""
    import hashlib

    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", remote).strip("-")[:40] or "remote"
    return f"{GC_FETCH_PREFIX}{slug}-{hashlib.sha1(remote.encode()).hexdigest()[:8]}/"


def parse_gc_fetch_ref(name: str) -> str | None:
    """The ref a remote has, for a ref under ``gc_fetch_prefix``: ``refs/heads/main`` for
    ``refs/gitml-gc/origin-1a2b3c4d/heads/main``; None for any other name."""
    if not name.startswith(GC_FETCH_PREFIX):
        return None
    slug, sep, rest = name[len(GC_FETCH_PREFIX) :].partition("/")
    return "refs/" + rest if slug and sep and rest else None


def experiment_ref(experiment_id: str) -> str:
    """The ref that points at the commit holding an experiment's definition."""
    return EXPERIMENTS_PREFIX + experiment_id


def parse_experiment_ref(name: str) -> str | None:
    """The experiment id in an experiment ref name, or None."""
    if name.startswith(EXPERIMENTS_PREFIX):
        experiment_id = name[len(EXPERIMENTS_PREFIX) :]
        if EXPERIMENT_ID_RE.match(experiment_id):
            return experiment_id
    return None


_BAD_REF_CHARS = frozenset(b" :?[\\^~*\x7f") | frozenset(range(0x20))


def valid_ref_name(name: str) -> bool:
    """True if git accepts ``name`` as a full ref name (``git check-ref-format``, no options).

    git's rules, per slash-separated component: not empty, not starting with
    '.', not ending with '.lock'; and in the whole name: no '..', no '@{',
    no control characters, space, ':', '?', '[', '\\', '^', '~' or '*'; not
    '@' alone, not ending with '.', and at least two components.
    """
    raw = name.encode("utf-8", "surrogateescape")
    if raw == b"@" or b".." in raw or b"@{" in raw or any(c in _BAD_REF_CHARS for c in raw):
        return False
    parts = raw.split(b"/")
    if len(parts) < 2 or raw.endswith(b"."):
        return False
    return all(p and not p.startswith(b".") and not p.endswith(b".lock") for p in parts)
