"""`gitml diff`, `gitml report` and `gitml log --graph` on real branches with real runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import git, gitml_invoke

TRAIN = """
import sys
import gitml
lr, label = sys.argv[1], sys.argv[2]
with gitml.start_run(run_name=label):
    gitml.log_param("lr", lr)
    gitml.log_param("label", label)
    for step in range(4):
        gitml.log_metric("rmse", float(lr) / (step + 1), step=step)
    gitml.log_metric("acc", 1 - float(lr))
print(gitml.last_active_run().info.run_id)
"""


def train(repo: Path, lr: str, label: str) -> str:
    import subprocess

    res = subprocess.run([sys.executable, "train.py", lr, label], cwd=repo, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


@pytest.fixture
def branches(repo: Path, monkeypatch):
    """main: one run (lr 0.5); feature: two runs (lr 0.3, lr 0.1) on its tip; a merge-less ancestor chain."""
    monkeypatch.delenv("GITML_REPO", raising=False)
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "train")
    base = train(repo, "0.5", "base")
    git(repo, "checkout", "-qb", "feature")
    (repo / "model.txt").write_text("bigger\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "feature")
    first = train(repo, "0.3", "first")
    second = train(repo, "0.1", "second")
    (repo / "notes.txt").write_text("no run here\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "docs only")
    return repo, base, first, second


def test_diff_formats_against_known_values(branches):
    repo, base, first, second = branches
    data = json.loads(gitml_invoke(repo, "diff", "main", "feature", "--format", "json").stdout)
    # feature's tip has no run: its nearest ancestor's latest run (second, lr 0.1) stands for it
    assert data["metrics"]["acc"]["old"] == 0.5 and data["metrics"]["acc"]["new"] == pytest.approx(0.9)
    assert data["metrics"]["acc"]["diff"] == pytest.approx(0.4)
    assert data["metrics"]["rmse"] == {"old": pytest.approx(0.125), "new": pytest.approx(0.025),
                                       "diff": pytest.approx(-0.1), "verdict": "better"}  # lower rmse is better
    assert data["metrics"]["acc"]["verdict"] == "better"  # higher accuracy is better
    assert data["params"]["lr"]["old"] == "0.5" and data["params"]["lr"]["new"] == "0.1"
    table = gitml_invoke(repo, "diff", "main", "feature").stdout
    assert "from ancestor" in table and "-80.00%" in table and "+80.00%" in table
    md = gitml_invoke(repo, "diff", "main", "feature", "--format", "markdown", "--precision", "2").stdout
    assert md.splitlines()[0].startswith("| kind | name |") and "| metric | acc | 0.5 | 0.9 | +0.4 | +80.0% | better |" in md
    unchanged = json.loads(gitml_invoke(repo, "diff", first, first, "--format", "json", "--all").stdout)
    assert unchanged["metrics"]["acc"]["diff"] == 0
    assert json.loads(gitml_invoke(repo, "diff", first, first, "--format", "json").stdout) == {"metrics": {}, "params": {}}


def test_pick_rule_chooses_among_a_commits_runs(branches):
    repo, base, first, second = branches
    latest = json.loads(gitml_invoke(repo, "diff", "main", "feature~1", "--format", "json").stdout)
    assert latest["params"]["label"]["new"] == "second"
    worst = json.loads(gitml_invoke(repo, "diff", "main", "feature~1", "--format", "json", "--pick", "best:rmse:max").stdout)
    assert worst["params"]["label"]["new"] == "first"
    git(repo, "config", "gitml.diff.pick", "best:acc")  # lowest acc: first
    assert json.loads(gitml_invoke(repo, "diff", "main", "feature~1", "--format", "json").stdout)["params"]["label"]["new"] == "first"
    bad = gitml_invoke(repo, "diff", "main", "feature", "--pick", "worst", check=False)
    assert bad.returncode != 0 and "Invalid pick rule" in bad.stderr
    bad = gitml_invoke(repo, "diff", "nope-branch", check=False)
    assert bad.returncode != 0 and "'nope-branch' is neither a commit" in bad.stderr


def test_metric_directions_by_name_config_and_flag(branches):
    from gitml.review.direction import by_name

    assert [by_name(k) for k in ("val_loss", "train/acc", "test-rmse", "roc_auc", "R2", "epoch", "loss_accuracy")] \
        == ["lower", "higher", "lower", "higher", "higher", None, "higher"]
    repo, base, first, second = branches

    def verdicts(*extra: str) -> dict:
        out = json.loads(gitml_invoke(repo, "diff", "main", "feature", "--format", "json", *extra).stdout)
        return {k: row.get("verdict") for k, row in out["metrics"].items()}

    assert verdicts() == {"rmse": "better", "acc": "better"}
    git(repo, "config", "gitml-metric.acc.better", "lower")  # this team's "acc" is something to bring down
    assert verdicts() == {"rmse": "better", "acc": "worse"}
    assert verdicts("--better", "acc:higher", "--better", "rmse:higher") == {"rmse": "worse", "acc": "better"}
    table = gitml_invoke(repo, "diff", "main", "feature").stdout
    assert table.splitlines()[0].split()[-1] == "verdict" and "worse" in table
    bad = gitml_invoke(repo, "diff", "main", "feature", "--better", "acc", check=False)
    assert bad.returncode != 0 and "<metric>:lower" in bad.stderr


def test_a_commits_top_level_run_stands_for_it_and_the_side_says_why(repo, monkeypatch):
    monkeypatch.delenv("GITML_REPO", raising=False)
    code = ("import gitml\n"
            "with gitml.start_run(run_name='sweep') as p:\n"
            "    gitml.log_metric('loss', 0.3)\n"
            "    for i in range(3):\n"
            "        with gitml.start_run(run_name=f'fold-{i}', nested=True):\n"
            "            gitml.log_metric('loss', 0.1 * i)\n")
    (repo / "sweep.py").write_text(code)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "sweep")
    import subprocess

    out = subprocess.run([sys.executable, "sweep.py"], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    table = gitml_invoke(repo, "diff", "HEAD", "HEAD").stdout + gitml_invoke(repo, "diff", "HEAD", "HEAD", "--all").stdout
    assert "latest of 1 runs; 3 nested left out" in table  # the parent, though a fold started last
    best = json.loads(gitml_invoke(repo, "diff", "HEAD~1", "HEAD", "--format", "json", "--pick", "best:loss").stdout)
    assert best["metrics"]["loss"]["new"] == pytest.approx(0.3)  # nested folds are not candidates while the parent is


def test_diff_defaults_to_head_vs_newest_run(branches):
    repo, base, first, second = branches
    git(repo, "checkout", "-q", "main")
    newest = train(repo, "0.2", "dirty-try")
    out = json.loads(gitml_invoke(repo, "diff", "--format", "json").stdout)
    assert out["params"]["lr"] == {"old": "0.5", "new": "0.2", "diff": pytest.approx(-0.3)}
    by_id = json.loads(gitml_invoke(repo, "diff", base[:8], newest, "--format", "json").stdout)
    assert by_id == out


def test_report_writes_markdown_and_plots(branches, tmp_path):
    repo, base, first, second = branches
    out = tmp_path / "report"
    gitml_invoke(repo, "report", "main..feature", "-o", str(out), "--run-url", "https://ml.example.com/r/{run_id}",
              "--image-prefix", "https://img.example.com/pr7/")
    md = (out / "report.md").read_text()
    assert md.startswith("<!-- gitml-report -->")
    assert f"https://ml.example.com/r/{base}" in md and f"https://ml.example.com/r/{second}" in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 2 and all(f"](https://img.example.com/pr7/{p})" in md for p in pngs)
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000
    assert "| metric | rmse |" in md
    bad = gitml_invoke(repo, "report", "main", check=False)
    assert bad.returncode != 0 and "BASE..HEAD" in bad.stderr


def test_log_graph_shows_runs_metrics(branches):
    repo, base, first, second = branches
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "feature", "-m", "merge feature")
    out = gitml_invoke(repo, "log", "--graph", "-n", "10").stdout
    lines = out.splitlines()
    assert any(ln.startswith("*") and "merge feature" in ln for ln in lines)
    assert any("feature" in ln and second[:8] in ln and "acc=0.9" in ln and "(+1 more)" in ln for ln in lines)
    assert any("|" in ln or "\\" in ln for ln in lines)  # git drew the graph
