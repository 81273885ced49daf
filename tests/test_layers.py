"""STYLE.md's layer rules, checked on the source: imports point down only."""

from __future__ import annotations

import ast
from pathlib import Path

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
