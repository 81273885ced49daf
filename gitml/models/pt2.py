"""pt2 archives (``torch.export.save``): checked to hold no code before torch reads them.

``torch.export.load`` is not a pure data reader. Besides tensors it
unpickles some records with ``weights_only=False``, evaluates the symbolic
shape expressions with ``sympy.sympify`` (which calls ``eval``), compiles the
``guards_code`` strings with ``exec`` into the loaded module, resolves each
graph node's target by attribute lookup from ``torch``, ``operator`` and
``math``, and loads AOTInductor shared libraries. Whoever wrote the model
wrote all of that, so ``check_archive`` reads every record first and refuses
the archive unless each one is:

- a short text record (``version``, ``byteorder``...);
- tensor bytes that a payload config marks as raw (``use_pickle: false``);
- a ``torch.save`` checkpoint whose pickles name only tensor-rebuilding
  globals (read with ``pickletools``, never unpickled);
- JSON, in which graph node targets are ATen/torch operators or plain
  arithmetic, and shape expressions and guards are arithmetic over
  symbols and input sizes.

It runs nothing from the archive. Anything else (Python objects, TorchScript,
compiled code) is refused with the record's name.
"""

from __future__ import annotations

import ast
import io
import json
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

from gitml.errors import InvalidValue
from gitml.models.trust import refusal

_TEXT_NAMES = {"version", "archive_format", "archive_version", "byteorder", "serialization_id",
               ".format_version", ".storage_alignment"}
_TEXT_CONTENT = re.compile(r"[A-Za-z0-9._-]{1,64}\n?")
_PAYLOAD_CONFIG = re.compile(r"(?:^|/)data/(?:weights|constants)/[^/]+_config\.json$")
_TENSOR_PREFIXES = ("weight_", "tensor_")
# What a torch.save checkpoint of plain tensors holds, under its one top-level folder.
_CHECKPOINT_MEMBER = re.compile(
    r"[^/]+/(?:data\.pkl|data/\d+|byteorder|version|\.format_version|\.storage_alignment|"
    r"\.data/serialization_id|\.data/version)"
)
_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
             "ComplexFloat", "ComplexDouble")
# Globals a checkpoint of tensors (and dicts/tuples of them) may name.
SAFE_GLOBALS = frozenset({
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "collections.OrderedDict",
    "torch.storage.UntypedStorage",
    *(f"torch.{name}Storage" for name in _STORAGES),
})
_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
               "BINUNICODE8"}
_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}

# Graph node targets outside torch.ops: the symbolic-size arithmetic torch.export writes.
_OPERATOR_TARGETS = {"eq", "ne", "le", "ge", "lt", "gt", "neg", "pos", "mul", "add", "sub", "floordiv",
                     "mod", "pow", "truediv", "and_", "or_", "lshift", "rshift", "getitem", "not_", "abs"}
_TORCH_TARGETS = {"sym_not", "sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_sqrt", "sym_sum"}
# Functions a shape expression or a guard may call: sympy / torch size arithmetic.
_EXPR_CALLS = {
    # sympy's srepr names, which torch writes ("Symbol('s0', positive=True, integer=True)")
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Equality", "Unequality",
    "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan", "ExprCondPair", "Tuple",
    "Max", "Min", "Abs", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "Piecewise", "floor",
    "ceiling", "sqrt", "Mod", "FloorDiv", "ModularIndexing", "Where", "PythonMod",
    "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "IntTrueDiv", "FloatTrueDiv", "LShift", "RShift",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal",
    "ToFloat", "FloatPow", "PowByNatural", "Identity", "cast_symbool_to_symint_guardless",
    "max", "min", "abs", "int", "float", "round", "bool",
}
# Attributes a guard may read: tensor sizes, and math/torch size helpers.
_GUARD_ATTRS = {"size", "stride", "storage_offset", "dim", "numel"}
_MODULE_ATTRS = {"math": {"floor", "ceil", "trunc", "isnan", "isinf", "inf", "sqrt"},
                 "torch": _TORCH_TARGETS}
_EXPR_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Constant, ast.Name,
               ast.Load, ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.Tuple, ast.Call)


def check_archive(path: str | Path, content: bytes | None = None) -> None:
    """Refuse a pt2 archive that holds anything but tensors, JSON and plain shape arithmetic.

    ``content``, when given, is the archive's bytes as read from ``path``
    (the bytes the caller then hands to torch); ``path`` only names it.

    Raises:
        UntrustedModel: naming the first record that could run code when torch loads it.
        InvalidValue: not a zip archive.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(content) if content is not None else path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InvalidValue(f"{path} is not a pt2 (torch.export) archive: {e}") from e
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        _no_duplicates(path, [i.filename for i in infos])
        configs = {i.filename: archive.read(i) for i in infos if _PAYLOAD_CONFIG.search(i.filename)}
        raw, pickled = _payload_records(path, configs)
        for info in infos:
            name = info.filename
            if "data/aotinductor/" in name:
                raise _refusal(path, name, "it is compiled AOTInductor code")
            if name in raw:
                continue  # read as tensor bytes, never parsed
            content = archive.read(info)
            if name in pickled or name.endswith((".pt", ".pkl")):
                _check_checkpoint(path, name, content)
            elif name.rsplit("/", 1)[-1] in _TEXT_NAMES and _TEXT_CONTENT.fullmatch(
                    content.decode("ascii", "replace")):
                continue
            else:
                try:
                    data = json.loads(content)
                except (UnicodeDecodeError, ValueError):
                    raise _refusal(path, name, "it is not a record torch.export.save writes") from None
                _check_program(path, name, data)


def _refusal(path: str | Path, record: str, why: str) -> InvalidValue:
    return refusal(path, f"record {record!r} could run code when loaded ({why})", recordable=False)


def _no_duplicates(path: str | Path, names: list[str]) -> None:
    # Two records with one name could be read differently by Python's zipfile and torch's reader.
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _refusal(path, name, "the name appears twice in the archive")
        seen.add(name)


def _payload_records(path: str | Path, configs: dict[str, bytes]) -> tuple[set[str], set[str]]:
    """The records the payload configs name: (raw tensor bytes, pickled tensors)."""
    raw: set[str] = set()
    pickled: set[str] = set()
    for name, content in configs.items():
        try:
            entries = json.loads(content)["config"]
            items = list(entries.values())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise _refusal(path, name, "it is not a payload config") from None
        directory = name.rsplit("/", 1)[0]
        for entry in items:
            target = entry.get("path_name") if isinstance(entry, dict) else None
            if not isinstance(target, str) or "/" in target or not target.startswith(_TENSOR_PREFIXES):
                raise _refusal(path, name, f"it names a payload that is not a tensor: {target!r}")
            (raw if entry.get("use_pickle") is False else pickled).add(f"{directory}/{target}")
    return raw - pickled, pickled


def _check_checkpoint(path: str | Path, name: str, content: bytes) -> None:
    """A torch.save checkpoint of tensors: its pickles may name only SAFE_GLOBALS."""
    try:
        inner = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise _refusal(path, name, "it is a pickle outside torch's checkpoint format") from None
    with inner:
        members = inner.namelist()
        _no_duplicates(path, members)
        odd = [m for m in members if not _CHECKPOINT_MEMBER.fullmatch(m)]
        if odd:
            raise _refusal(path, name, f"the checkpoint holds {odd[0]!r}, not only tensors")
        pickles = [m for m in members if m.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise _refusal(path, name, "the checkpoint has no single data.pkl")
        try:
            names = pickle_globals(inner.read(pickles[0]))
        except ValueError as e:
            raise _refusal(path, name, f"its pickle cannot be checked: {e}") from None
    unsafe = sorted(names - SAFE_GLOBALS)
    if unsafe:
        raise _refusal(path, name, f"its pickle calls {unsafe}")


def pickle_globals(data: bytes) -> set[str]:
    """The ``module.name`` globals a pickle stream imports, read without unpickling it.

    Raises:
        ValueError: the stream is malformed, uses the extension registry, or
            builds a global from operands that are not string literals.
    """
    found: set[str] = set()
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.add(f"{module}.{attr}")
        elif op.name == "STACK_GLOBAL":
            if len(strings) < 2:
                raise ValueError("STACK_GLOBAL operands are not string literals")
            found.add(f"{strings[-2]}.{strings[-1]}")
            strings = []
        elif op.name in ("EXT1", "EXT2", "EXT4"):
            raise ValueError("the pickle uses the copyreg extension registry")
        elif op.name in _STRING_OPS:
            strings.append(str(arg))
        elif op.name not in _MEMO_OPS:
            strings = []
    return found


def _check_program(path: str | Path, name: str, data: Any) -> None:
    """Node targets, shape expressions and guards anywhere in a JSON record."""
    if isinstance(data, list):
        for item in data:
            _check_program(path, name, item)
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key == "expr_str" and not _safe_expr(value, guard=False):
            raise _refusal(path, name, f"shape expression {value!r} is not plain arithmetic")
        if key == "guards_code":
            for guard in value if isinstance(value, list) else [value]:
                if not _safe_expr(guard, guard=True):
                    raise _refusal(path, name, f"guard {guard!r} is not a check of input sizes")
        if key == "nodes" and isinstance(value, list):
            for node in value:
                target = node.get("target") if isinstance(node, dict) else None
                if not _safe_target(target):
                    raise _refusal(path, name, f"graph node target {target!r} is not a torch operator")
        _check_program(path, name, value)


def _safe_target(target: Any) -> bool:
    if not isinstance(target, str):
        return False
    parts = target.split(".")
    if any(not p.isidentifier() or p.startswith("__") for p in parts):
        return False
    if len(parts) == 2 and parts[0] == "_operator":
        return parts[1] in _OPERATOR_TARGETS
    if len(parts) == 2 and parts[0] == "math":
        import math

        return callable(getattr(math, parts[1], None))
    if len(parts) == 2 and parts[0] == "torch":
        return parts[1] in _TORCH_TARGETS
    if len(parts) in (4, 5) and parts[:2] == ["torch", "ops"]:
        import torch

        obj: Any = torch.ops
        for part in parts[2:]:
            obj = getattr(obj, part, None)
        return isinstance(obj, (torch._ops.OpOverload, torch._ops.OpOverloadPacket,
                                torch._ops.HigherOrderOperator))
    return False


def _safe_expr(text: Any, guard: bool) -> bool:
    """Arithmetic and comparisons over names and numbers; calls only to size functions.

    Guards may also index inputs (``L['x']``) and read their sizes.
    """
    if not isinstance(text, str):
        return False
    try:
        tree = ast.parse(text.replace("\n", " "), mode="eval")
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                return False
        elif isinstance(node, ast.Call):
            if not _safe_callee(node.func, guard) or not all(
                    isinstance(k.value, ast.Constant) and k.arg for k in node.keywords):
                return False
        elif isinstance(node, ast.keyword):
            continue  # checked with its call
        elif isinstance(node, ast.Attribute):
            if not guard or not _safe_attribute(node):
                return False
        elif isinstance(node, ast.Subscript):
            if not guard:
                return False
        elif guard and isinstance(node, ast.Slice):
            return False
        elif not isinstance(node, _EXPR_NODES):
            return False
    return True


def _safe_callee(func: ast.expr, guard: bool) -> bool:
    if isinstance(func, ast.Name):
        return func.id in _EXPR_CALLS
    return guard and isinstance(func, ast.Attribute) and _safe_attribute(func)


def _safe_attribute(node: ast.Attribute) -> bool:
    if isinstance(node.value, ast.Name) and node.value.id in _MODULE_ATTRS:
        return node.attr in _MODULE_ATTRS[node.value.id]
    return node.attr in _GUARD_ATTRS
