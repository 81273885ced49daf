"""The docs' examples run as written.

Every fenced block of README.md and docs/*.md whose info string says
``runnable`` (```` ```python runnable ```` or ```` ```bash runnable ````) is run as
pasted, in a fresh git repository with one commit, by a new interpreter (python)
or ``bash -euo pipefail`` with this environment's ``gitml`` first on PATH. A
block must be whole: it defines what it uses. (datasette keeps its docs honest
the same way.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import init_repo

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(?P<lang>\w+)(?P<info>[^\n]*)\n(?P<code>.*?)^```", re.S | re.M)
LANGS = {"python", "bash", "sh", "shell"}


def runnable_blocks() -> list[tuple[str, str, str]]:
    """(id "file:line", language, code) of every block marked runnable."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if "runnable" not in m["info"].split():
                continue
            assert m["lang"] in LANGS, f"{path.name}: a runnable block must be python or bash, not {m['lang']}"
            line = text.count("\n", 0, m.start()) + 1
            found.append((f"{path.relative_to(ROOT)}:{line}", m["lang"], m["code"]))
    return found


BLOCKS = runnable_blocks()


def test_the_readme_and_the_guides_have_runnable_examples():
    assert any(name.startswith("README.md") for name, _, _ in BLOCKS)
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("name,lang,code", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_a_runnable_block_runs_as_written(name: str, lang: str, code: str, tmp_path: Path):
    repo = init_repo(tmp_path / "repo")
    env = dict(os.environ)
    env.pop("GITML_REPO", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    cmd = [sys.executable, "-c", code] if lang == "python" else ["bash", "-euo", "pipefail", "-c", code]
    out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, f"{name} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
