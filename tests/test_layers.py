"""STYLE.md's layer rules, checked on the source: imports point down only.

Every ``gitml`` import is checked, module-level and function-level alike
(a function-level import still makes the lower layer depend on the upper
one, only later). Imports under ``if TYPE_CHECKING:`` are left out: they
never run, and a lower layer may name an upper layer's type in an annotation.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gitml"

# module prefix -> where it may be imported
RULES = {
    "pygit2": ("gitml/store/",),
    "dvc_data": ("gitml/store/",),
    "dvc_objects": ("gitml/store/",),
    "click": ("gitml/cli/",),
    "flask": ("gitml/webview/", "gitml/serving/"),
    # the optional extra: only the plugin (store, registry store, artifact repository, autolog)
    "mlflow": ("gitml/mlflow_plugin/",),
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_heavy_and_shell_libraries_stay_in_their_layer():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for module in imports(path):
            allowed = RULES.get(module)
            if allowed is not None and not rel.startswith(allowed):
                bad.append(f"{rel} imports {module}")
    assert bad == []


def test_domain_never_prints():
    bad = []
    for layer in ("store", "tracking"):
        for path in (PACKAGE / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                    bad.append(f"{path.name}:{node.lineno}")
    assert bad == []


# -- gitml's own layers ---------------------------------------------------------------------

# Bottom first. A module may import its own group and any group of a lower layer;
# groups that share a layer are independent of one another, except in the two
# layers marked shared (the foundation modules, and the facade of top-level names).
LAYERS: list[tuple[tuple[str, ...], bool]] = [
    (("gitml.errors", "gitml.settings", "gitml.safeyaml", "gitml.version"), True),  # foundation
    (("gitml.store",), False),  # git and the content store
    (("gitml.tracking",), False),  # runs, experiments, artifacts (inner order below)
    (("gitml.registry",), False),  # versions and stages over GTO tags
    # models:/ URIs resolve through the registry, as MLflow's loader asks its registry client;
    # the registry needs no model code (it checks that <path>/MLmodel is in a run's manifest).
    (("gitml.models",), False),
    (("gitml.sync", "gitml.review", "gitml.projects", "gitml.serving", "gitml.mlflow_plugin"), False),
    (("gitml.hooks", "gitml.webview"), False),  # the pre-push hook syncs; the viewer diffs and serves
    (("gitml", "gitml.client", "gitml.entities", "gitml.exceptions", "gitml.data", "gitml.artifacts",
      "gitml.types", "gitml.sklearn", "gitml.pyfunc", "gitml.pytorch", "gitml.xgboost", "gitml.lightgbm"), True),
    (("gitml.cli",), False),
    (("gitml.__main__",), False),
]

# The tracking layer's own order, bottom first: each module imports only modules before it.
TRACKING = ["validation", "entities", "filters", "search", "uri", "location", "datasets", "schema", "events", "experiments",
            "runfiles", "merge", "notes", "commit", "ledger", "index", "recovery", "writer", "process", "sysmetrics", "runs", "artifacts",
            "history", "logged_models", "tables", "gc", "client", "fluent", "testing"]

# MLflow's module paths name its whole client: ``mlflow.tracking.MlflowClient`` and
# ``mlflow.tracking.client.MlflowClient``. These two names resolve to gitml.Client lazily
# (PEP 562 ``__getattr__``); the tracking layer's own code never reaches them.
ALLOWED_UP = {
    ("gitml.tracking", "gitml.client"),
    ("gitml.tracking.client", "gitml.client"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:``."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return ids


def gitml_imports(name: str, source: str) -> list[tuple[str, int]]:
    """(imported gitml module, line) for every import in ``source``, at any depth."""
    tree = ast.parse(source)
    skip = _type_checking_only(tree)
    package = name if MODULES.get(name, Path()).name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "gitml"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "gitml":
                continue
            # ``from gitml.tracking import runs`` imports the module gitml.tracking.runs
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            found += [(t, node.lineno) for t in subs or [target]]
    return found


def layer_of(module: str) -> tuple[int, str, bool]:
    """(layer index, group, shared layer) of a gitml module: its longest matching group."""
    best = None
    for i, (groups, shared) in enumerate(LAYERS):
        for g in groups:
            if (module == g or module.startswith(g + ".")) and (best is None or len(g) > len(best[1])):
                best = (i, g, shared)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def violations(name: str, source: str) -> list[str]:
    bad = []
    src_layer, src_group, shared = layer_of(name)
    for target, line in gitml_imports(name, source):
        if target == name or (name, target) in ALLOWED_UP:
            continue
        dst_layer, dst_group, _ = layer_of(target)
        if src_group == dst_group:
            if src_group == "gitml.tracking" and name != "gitml.tracking" and target != "gitml.tracking":
                a, b = name.rpartition(".")[2], target.rpartition(".")[2]
                if TRACKING.index(b) >= TRACKING.index(a):
                    bad.append(f"{name}:{line} imports {target} (tracking order: {b} is not below {a})")
            continue
        if dst_layer < src_layer or (dst_layer == src_layer and shared):
            continue
        bad.append(f"{name}:{line} imports {target} ({dst_group} is not below {src_group})")
    return bad


def test_every_gitml_import_points_down():
    bad = [v for name, path in sorted(MODULES.items()) for v in violations(name, path.read_text())]
    assert bad == []


def test_tracking_order_names_every_tracking_module():
    tracking = sorted(n.rpartition(".")[2] for n in MODULES if n.startswith("gitml.tracking."))
    assert sorted(TRACKING) == tracking


def test_no_import_cycle_among_gitml_modules():
    graph = {name: {t for t, _ in gitml_imports(name, path.read_text()) if t != name and (name, t) not in ALLOWED_UP}
             for name, path in MODULES.items()}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


@pytest.mark.parametrize("module, planted", [
    ("gitml.store.repo", "    from gitml.tracking import runs\n"),  # store reaching up, inside a function
    ("gitml.tracking.entities", "from gitml.tracking import fluent\n"),  # against tracking's own order
    ("gitml.registry.state", "from gitml.models.mlmodel import MLMODEL\n"),  # registry below models
    ("gitml.serving.app", "from gitml.webview import data\n"),  # siblings of one layer
    ("gitml.tracking.runs", "from ..cli.output import echo_json\n"),  # relative spelling
])
def test_a_planted_upward_import_is_caught(module, planted):
    source = MODULES[module].read_text()
    assert violations(module, source) == []
    if planted.startswith("    "):
        planted = "def _planted():\n" + planted
    assert len(violations(module, source + "\n" + planted)) == 1
