"""The gitml command line, run as a user runs it (a real process per command)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from gitml.cli import main
from tests.conftest import git, gitml_cli, gitml_invoke, run_python

SCRIPT = """
import gitml
gitml.set_experiment("cli-demo")
for alpha, rmse in [(0.1, 0.9), (0.5, 0.4)]:
    with gitml.start_run(run_name=f"alpha-{alpha}"):
        gitml.log_param("alpha", alpha)
        gitml.log_metric("rmse", rmse)
print("ok")
"""


@pytest.fixture
def logged(repo: Path) -> Path:
    out = run_python(SCRIPT, repo)
    assert out.stdout.strip() == "ok", out.stderr
    return repo


def test_runs_list_table_and_json(logged):
    table = gitml_invoke(logged, "runs", "list").stdout
    assert "alpha-0.1" in table and "alpha-0.5" in table and "cli-demo" in table
    data = json.loads(gitml_invoke(logged, "runs", "list", "--json", "-f", "metrics.rmse < 0.5").stdout)
    assert [r["info"]["run_name"] for r in data] == ["alpha-0.5"]
    ordered = json.loads(gitml_invoke(logged, "runs", "list", "--json", "-o", "metrics.rmse").stdout)
    assert [r["data"]["metrics"]["rmse"] for r in ordered] == [0.4, 0.9]
    only = json.loads(gitml_invoke(logged, "runs", "list", "--json", "-e", "cli-demo", "-n", "1").stdout)
    assert len(only) == 1


def test_runs_show_by_prefix(logged):
    data = json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout)
    rid = data[0]["info"]["run_id"]
    shown = gitml_invoke(logged, "runs", "show", rid[:8]).stdout
    assert rid in shown and "alpha" in shown and "rmse" in shown
    as_json = json.loads(gitml_invoke(logged, "runs", "show", rid, "--json").stdout)
    assert as_json["info"]["run_id"] == rid and as_json["source"]["branch"] == "main"


def test_runs_delete_restore(logged):
    rid = json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout)[0]["info"]["run_id"]
    assert "deleted" in gitml_invoke(logged, "runs", "delete", rid).stdout
    remaining = json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout)
    assert rid not in [r["info"]["run_id"] for r in remaining]
    deleted = json.loads(gitml_invoke(logged, "runs", "list", "--json", "--view", "deleted").stdout)
    assert [r["info"]["run_id"] for r in deleted] == [rid]
    gitml_invoke(logged, "runs", "restore", rid)
    assert len(json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout)) == 2


def test_experiments_list_and_create(logged):
    out = gitml_invoke(logged, "experiments", "list").stdout
    assert "Default" in out and "cli-demo" in out
    new_id = gitml_invoke(logged, "experiments", "create", "other").stdout.strip()
    exps = json.loads(gitml_invoke(logged, "experiments", "list", "--json").stdout)
    assert new_id in [e["experiment_id"] for e in exps]


def test_log_shows_commits_with_runs(logged):
    (logged / "train.py").write_text("print('v2')\n")
    git(logged, "commit", "-qam", "second commit")
    out = gitml_invoke(logged, "log").stdout
    assert "second commit" in out and "initial" in out
    assert out.index("alpha-0.1") > out.index("initial")
    entries = json.loads(gitml_invoke(logged, "log", "--json").stdout)
    assert [len(e["runs"]) for e in entries] == [0, 2]
    runs_only = json.loads(gitml_invoke(logged, "log", "--json", "--runs-only").stdout)
    assert len(runs_only) == 1


def test_repo_option_points_at_another_repo(logged, tmp_path):
    out = gitml_cli(tmp_path, "-C", str(logged), "runs", "list")
    assert "alpha-0.5" in out.stdout


def test_reindex(logged):
    assert gitml_invoke(logged, "reindex").stdout.strip() == "indexed 2 runs; notes on 1 commits"


@pytest.mark.parametrize(
    "args, message",
    [
        (("runs", "show", "0" * 32), "not found"),
        (("runs", "show", "zz"), "not found"),
        (("runs", "list", "-f", "metrics.rmse <"), "Invalid filter"),
        (("runs", "list", "-e", "nope"), "nope"),
        (("log", "no-such-branch"), "no-such-branch"),
    ],
)
def test_errors_are_one_clear_line(logged, args, message):
    out = gitml_cli(logged, *args, check=False)
    assert out.returncode == 1
    assert out.stderr.startswith("Error: ") and message in out.stderr
    assert "Traceback" not in out.stderr


def test_outside_a_repository(tmp_path):
    out = gitml_cli(tmp_path, "runs", "list", check=False)
    assert out.returncode == 1 and "Not a git repository" in out.stderr


def test_usage_error_exits_2(logged):
    assert gitml_invoke(logged, "runs", "list", "--view", "bogus", check=False).returncode == 2


def test_version(tmp_path):
    from gitml import __version__

    assert gitml_cli(tmp_path, "--version").stdout.strip() == f"gitml {__version__}"


def _walk(cmd: click.Command, path: str = "gitml"):
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_every_command_and_option_has_help():
    missing = []
    for path, cmd in _walk(main):
        if not (cmd.help or cmd.short_help):
            missing.append(path)
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.help and param.name not in ("help", "version"):
                missing.append(f"{path} {param.opts[0]}")
    assert missing == []


def test_environment_variables_the_cli_reads_are_settings():
    """The CLI spells its envvar names out (importing gitml.settings would slow `gitml --help`)."""
    from gitml.settings import SETTINGS

    envvars = {p.envvar for _, cmd in _walk(main) for p in cmd.params if p.envvar}
    assert envvars and envvars <= {s.env for s in SETTINGS.values()}


def test_runs_list_view_choices_are_the_view_names():
    from gitml.tracking.entities import VIEWS

    view = next(p for p in main.commands["runs"].commands["list"].params if p.name == "view")
    assert list(view.type.choices) == list(VIEWS)


def test_artifacts_list_and_download(repo, tmp_path):
    out = run_python("import gitml\nwith gitml.start_run() as r:\n    gitml.log_text('hi', 'docs/a.txt')\nprint(r.info.run_id)\n", repo)
    rid = out.stdout.strip()
    listed = json.loads(gitml_invoke(repo, "artifacts", "list", rid, "--json").stdout)
    assert listed == [{"path": "docs", "is_dir": True, "file_size": 2}]
    assert "docs/a.txt" in gitml_invoke(repo, "artifacts", "list", rid, "docs").stdout
    dest = tmp_path / "dl"
    gitml_invoke(repo, "artifacts", "download", rid, "docs/a.txt", "-d", str(dest))
    assert (dest / "docs" / "a.txt").read_text() == "hi"  # run-relative path kept, as in MLflow
    missing = gitml_invoke(repo, "artifacts", "download", rid, "nope", check=False)
    assert missing.returncode == 1 and "no artifact" in missing.stderr


EVIL_NAME = "evil\x1b[2J\x1b]0;pwned\x07\u202egnp.exe\x9b31m\u2028run " + "f" * 32 + " FINISHED"


def test_terminal_escapes_in_user_data_are_printed_as_visible_escapes(repo):
    """Issue 14 (14): terminal escape sequences in run names were printed raw (they can clear the
    screen or retitle the terminal), and a U+2028 in a run name forged a line in refs/notes/gitml.
    Every command writes such characters as JSON's \\uXXXX escapes; --json stays valid and decodes
    to the exact name; the note line keeps them escaped."""
    out = run_python(f"import gitml\nwith gitml.start_run(run_name={EVIL_NAME!r}) as r:\n"
                     f"    gitml.set_tag('note', {EVIL_NAME!r})\nprint(r.info.run_id)\n", repo)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    raw = ("\x1b", "\x07", "\u202e", "\x9b", "\u2028")
    for args in (["runs", "list"], ["runs", "show", run_id], ["log"], ["runs", "show", run_id, "--json"]):
        printed = gitml_invoke(repo, *args).stdout
        assert not any(c in printed for c in raw), (args, printed)
        assert "\\u009b31m" in printed, args
    listed = json.loads(gitml_invoke(repo, "runs", "list", "--json").stdout)
    assert listed[0]["info"]["run_name"] == EVIL_NAME and listed[0]["data"]["tags"]["note"] == EVIL_NAME
    missing = gitml_invoke(repo, "runs", "show", "abcd\x1b[2J", check=False)
    assert "\x1b" not in missing.stderr and missing.stderr.startswith("Error: ")
    note = git(repo, "notes", "--ref=gitml", "show", "HEAD")
    assert note.count("\n") == 1 and note.startswith(f"run {run_id} ") and "\u2028" not in note
    assert "\x1b" not in note


def test_a_closed_pipe_ends_a_command_quietly(logged):
    """Issue 14 (14): `gitml runs show X | head` printed "unexpected BrokenPipeError". The reader
    here is gone before gitml writes a byte (its end of the pipe is closed), so every write fails."""
    import os
    import subprocess
    import sys

    run_id = run_python("import gitml\nwith gitml.start_run() as r:\n    gitml.log_param('i', 1)\nprint(r.info.run_id)\n",
                        logged).stdout.strip()
    for args in (["runs", "show", run_id], ["runs", "list", "--json"]):
        read, write = os.pipe()
        os.close(read)
        out = subprocess.run([sys.executable, "-m", "gitml", *args], cwd=logged, stdout=write, stderr=subprocess.PIPE,
                             text=True)
        os.close(write)
        assert out.stderr == "" and out.returncode == 141, (args, out.stderr)
