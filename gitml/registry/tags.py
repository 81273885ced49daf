"""GTO's tag grammar: one parser and one formatter for every registry tag.

=============================  ======================================
``rf@v1.2.0``                  register version v1.2.0 of model rf
``rf@v1.2.0!#7``               deregister it (7 = the model's event counter)
``rf#production#5``            assign stage production to the tagged commit's version
``rf#production!#6``           unassign it
``rf@deprecated``              deprecate the model
=============================  ======================================

The patterns are GTO's (gto/constants.py), so ``gto show`` and gitml read
the same tags. A model name may carry GTO's folder prefix ``dir:name``,
written ``dir=name`` inside a tag.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from gitml.errors import InvalidName, InvalidValue
from gitml.store.names import valid_ref_name

REGISTER, DEREGISTER, ASSIGN, UNASSIGN, DEPRECATE, CREATE = (
    "register", "deregister", "assign", "unassign", "deprecate", "create",
)

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9\-/_]*[a-zA-Z0-9])?"
_SEMVER = (
    r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-(?:(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?:[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
_FULLNAME_IN_TAG = rf"(?:[a-zA-Z0-9\-_./]+=)?{_NAME}"

TAG_RE = re.compile(
    rf"^(?P<model>{_FULLNAME_IN_TAG})"
    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?)|@(?P<special>deprecated|created))"
    rf"(?:#(?P<counter>[0-9]+))?$"
)
NAME_RE = re.compile(rf"^{_NAME}$")
FULLNAME_RE = re.compile(rf"^(?:[a-zA-Z0-9\-_./]+:)?{_NAME}$")
VERSION_RE = re.compile(rf"^v{_SEMVER}$")
#: ``rf@v1.2.0``, ``rf@latest``, ``rf#production``: GTO's shorthands for one version.
SHORTCUT_RE = re.compile(rf"^(?P<model>(?:[a-zA-Z0-9\-_./]+:)?{_NAME})(?:#(?P<stage>{_NAME})|@(?P<version>latest|greatest|v{_SEMVER}))$")


@dataclass(frozen=True)
class TagName:
    """What a registry tag's name says."""

    model: str
    action: str
    version: str | None = None
    stage: str | None = None
    counter: int | None = None


@functools.lru_cache(maxsize=65536)
def parse(tag: str) -> TagName | None:
    """The registry event a tag name encodes, or None for any other tag."""
    if "@" not in tag and "#" not in tag:
        return None
    m = TAG_RE.match(tag)
    if m is None:
        return None
    model = m["model"].replace("=", ":")
    counter = int(m["counter"]) if m["counter"] else None
    if m["special"]:
        return TagName(model, DEPRECATE if m["special"] == "deprecated" else CREATE, counter=counter)
    cancel = m["cancel"] == "!"
    if m["version"]:
        return TagName(model, DEREGISTER if cancel else REGISTER, version=m["version"], counter=counter)
    return TagName(model, UNASSIGN if cancel else ASSIGN, stage=m["stage"], counter=counter)


def format(event: TagName) -> str:  # noqa: A001 - the inverse of parse
    """The tag name for ``event`` (inverse of ``parse``)."""
    model = event.model.replace(":", "=")
    if event.action in (REGISTER, DEREGISTER):
        body = f"{model}@{event.version}" + ("!" if event.action == DEREGISTER else "")
    elif event.action in (ASSIGN, UNASSIGN):
        body = f"{model}#{event.stage}" + ("!" if event.action == UNASSIGN else "")
    elif event.action == DEPRECATE:
        body = f"{model}@deprecated"
    else:
        body = f"{model}@created"
    return body if event.counter is None else f"{body}#{event.counter}"


#: The longest model name gitml writes tags for, in UTF-8 bytes. A tag name is one
#: file under .git/refs/tags (per '/'-part), and file names stop at 255 bytes
#: (NAME_MAX); git also writes ``<name>.lock`` beside it. 200 leaves room for
#: ``@v<semver>`` or ``#<stage>!#<n>`` after the name.
MAX_MODEL_NAME_BYTES = 200
#: The longest part (between slashes) of a tag name: NAME_MAX 255 less ``.lock``.
MAX_TAG_PART_BYTES = 250
#: git's special top-level refs (``git rev-parse HEAD`` etc.): a model named so reads
#: as one of them. Any all-capitals name ending in ``_HEAD`` is one too.
SPECIAL_REFS = frozenset({"HEAD", "FETCH_HEAD", "ORIG_HEAD", "MERGE_HEAD", "CHERRY_PICK_HEAD",
                          "REVERT_HEAD", "REBASE_HEAD", "BISECT_HEAD", "AUTO_MERGE", "MERGE_AUTOSTASH"})
_SPECIAL_REF_RE = re.compile(r"^[A-Z_]*_HEAD$")
#: First parts git reads as a ref namespace: ``git show tags/rf@v1.0.0`` is ``refs/tags/rf@v1.0.0``
#: (model rf's tag), not model ``tags/rf``'s.
REF_NAMESPACES = frozenset({"refs", "heads", "tags", "remotes", "notes"})


def check_model_ref(name: str) -> str:
    """``name`` if it can name a model in the registry's tags (GTO's grammar): for reading.

    Models that gto or git wrote under names gitml would not write (``HEAD``)
    can still be read, resolved and loaded.

    Raises:
        InvalidName: the name has characters a tag cannot carry, or would
        not read back as the same model.
    """
    if not isinstance(name, str) or not FULLNAME_RE.match(name) or "//" in name or ".." in name or name.endswith(".lock"):
        raise InvalidName(
            f"Invalid model name {name!r}: use letters, digits, '-', '_' and '/', "
            "starting and ending with a letter or digit (GTO's naming rules)"
        )
    tag = format(TagName(name, REGISTER, version="v0.0.1"))
    parts = tag.split("/")
    if not valid_ref_name("refs/tags/" + tag) or any(p.endswith(".") for p in parts):
        raise InvalidName(
            f"Invalid model name {name!r}: its tags ({tag}) would not be valid git ref names "
            "(no part between slashes may start with '.' or end with '.' or '.lock')"
        )
    return name


def check_model_name(name: str) -> str:
    """``name`` if gitml may write registry tags for it: GTO's rules (``check_model_ref``) and more.

    Also refused, so that what gitml writes is a subset of what ``gto``
    accepts and reads unambiguously in git: names over
    ``MAX_MODEL_NAME_BYTES``; a part between slashes that does not start and
    end with a letter or digit; a part that is one of git's special refs
    (``HEAD``, ``FETCH_HEAD``...); a first part that git reads as a ref
    namespace (``refs/``, ``tags/``...).

    Raises:
        InvalidName: naming the name and the rule it breaks.
    """
    check_model_ref(name)
    size = len(name.encode("utf-8"))
    if size > MAX_MODEL_NAME_BYTES:
        raise InvalidName(f"Invalid model name {_short(name)} ({size} bytes): a model name is at most "
                          f"{MAX_MODEL_NAME_BYTES} bytes, so that its tags fit in a file name")
    folder, _, base = name.rpartition(":")
    parts = [p for p in folder.split("/") if p] + base.split("/")
    for part in base.split("/"):
        if not NAME_RE.match(part):
            raise InvalidName(f"Invalid model name {name!r}: each part between slashes must start and end "
                              f"with a letter or digit, and {part!r} does not")
    for part in parts:
        if part.upper() in SPECIAL_REFS or _SPECIAL_REF_RE.match(part):
            raise InvalidName(f"Invalid model name {name!r}: {part!r} is one of git's special refs "
                              "(HEAD, FETCH_HEAD, ORIG_HEAD...), which a model name may not be or contain")
    if parts[0].lower() in REF_NAMESPACES:
        raise InvalidName(f"Invalid model name {name!r}: a name starting with '{parts[0]}/' reads as a git "
                          f"ref (git looks for refs/{parts[0]}/... first); choose another")
    return name


def check_tag_name(tag: str) -> str:
    """``tag`` if git can store it: every part between slashes fits in a file name with ``.lock``.

    Raises:
        InvalidName: a part is over ``MAX_TAG_PART_BYTES`` (a long stage or version).
    """
    for part in tag.split("/"):
        size = len(part.encode("utf-8"))
        if size > MAX_TAG_PART_BYTES:
            raise InvalidName(f"Tag name {_short(tag)} is too long for a file name: its part {_short(part)} is "
                              f"{size} bytes, over {MAX_TAG_PART_BYTES}; use a shorter stage or version")
    return tag


def _short(text: str, keep: int = 40) -> str:
    """``text`` quoted, cut to its first ``keep`` characters (an error message stays one short line)."""
    return repr(text) if len(text) <= keep else repr(text[:keep]) + "..."


def check_stage(stage: str) -> str:
    """The stage name, as given. Stages match case-insensitively (``Production`` and
    ``production`` are one stage): ``ModelState.stage_name`` finds how a model's tags
    spell it, and a new stage is written lower-case.

    Raises:
        InvalidName: not a valid GTO stage name.
    """
    if not isinstance(stage, str) or not NAME_RE.match(stage) or "//" in stage:
        raise InvalidName(
            f"Invalid stage name {stage!r}: use letters, digits, '-', '_' and '/', "
            "starting and ending with a letter or digit (GTO's naming rules)"
        )
    if stage.lower() == "none":
        raise InvalidName("'None' is not a stage: to take a version out of a stage, unassign it")
    return stage


def split_reference(spec: str) -> tuple[str, str, str]:
    """``(name, separator, ref)`` of a reference to one version: ``rf/3``, ``rf/v1.2.0``,
    ``rf/Production``, ``rf/latest``, ``rf@production``, ``rf@v1.2.0``, ``rf#production``.

    The last ``#`` splits it, else the last ``@``, else the last ``/`` (a name may hold ``/``).

    Raises:
        InvalidValue: no separator with text on both sides.
    """
    for sep in ("#", "@", "/"):
        name, found, ref = spec.rpartition(sep)
        if found and name and ref:
            return name, sep, ref
    raise InvalidValue(
        f"Invalid model reference {spec!r}: expected <name>/<version>, <name>/<stage>, "
        "<name>@<stage>, <name>@v<semver> or <name>#<stage>"
    )


def check_version(version: str) -> str:
    """A semantic version written with a leading ``v`` (``1.2.0`` becomes ``v1.2.0``).

    Raises:
        InvalidValue: not a semantic version.
    """
    v = version if version.startswith("v") else f"v{version}"
    if not VERSION_RE.match(v):
        raise InvalidValue(f"Invalid version {version!r}: expected a semantic version like v1.2.0")
    return v
