"""The gitml command line, run as a user runs it (a real process per command)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from gitml.cli import main
from tests.conftest import git, gitml_cli, gitml_invoke, run_python, run_rev

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


# -- issue 18 (7): the verbs the API has and the CLI lacked ------------------------------------------


def _tags_in_git(repo: Path, run_id: str) -> dict[str, str]:
    """The run's tags as plain git has them: tags.json of its run commit."""
    return json.loads(git(repo, "show", f"{run_rev(repo, run_id)}:tags.json"))


def test_runs_show_names_the_experiment(logged):
    """Issue 18 (7): `gitml runs show` printed only the experiment's id."""
    run = json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout)[0]
    exp_id = run["info"]["experiment_id"]
    assert f"experiment cli-demo ({exp_id})\n" in gitml_invoke(logged, "runs", "show", run["info"]["run_id"]).stdout


def test_runs_rename_tag_untag_and_describe_are_commits_of_the_run(logged):
    """Issue 18 (7): each edit lands in the run's commit (tags.json), by a unique prefix, and --json
    says what changed and where."""
    rid = json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout)[0]["info"]["run_id"]

    renamed = json.loads(gitml_invoke(logged, "runs", "rename", rid[:8], "best-so-far", "--json").stdout)
    assert renamed == {"run_id": rid, "commit": run_rev(logged, rid), "run_name": "best-so-far"}
    assert _tags_in_git(logged, rid)["mlflow.runName"] == "best-so-far"
    shown = json.loads(gitml_invoke(logged, "runs", "show", rid, "--json").stdout)
    assert shown["info"]["run_name"] == "best-so-far" and shown["info"]["status"] == "FINISHED"
    # the note on the source commit shows the new name (a finished run's line holds it)
    assert f'run {rid} FINISHED "best-so-far"' in git(logged, "notes", "--ref=gitml", "show", "HEAD")

    out = gitml_invoke(logged, "runs", "tag", rid[:8], "team", "vision").stdout
    assert out == f"tagged {rid}: team=vision\n"
    assert _tags_in_git(logged, rid)["team"] == "vision"
    tagged = json.loads(gitml_invoke(logged, "runs", "tag", rid, "team", "nlp", "--json").stdout)
    assert tagged["tags"] == {"team": "nlp"} and tagged["commit"] == run_rev(logged, rid)

    untagged = json.loads(gitml_invoke(logged, "runs", "untag", rid, "team", "--json").stdout)
    assert untagged == {"run_id": rid, "commit": run_rev(logged, rid), "deleted_tags": ["team"]}
    assert "team" not in _tags_in_git(logged, rid)
    again = gitml_invoke(logged, "runs", "untag", rid, "team", check=False)
    assert again.returncode == 1 and again.stderr == f"Error: Run {rid} has no tag 'team'\n"

    text = "Baseline with the new tokenizer.\n\nSee PR 12."
    described = json.loads(gitml_invoke(logged, "runs", "describe", rid, "-", "--json", input=text + "\n").stdout)
    assert described["description"] == text
    assert _tags_in_git(logged, rid)["mlflow.note.content"] == text
    assert gitml_invoke(logged, "runs", "describe", rid, "").stdout == f"cleared the description of {rid}\n"
    assert "mlflow.note.content" not in _tags_in_git(logged, rid)
    # the Python API reads the same run
    out = run_python(f"import gitml\nr = gitml.get_run({rid!r})\nprint(r.info.run_name, sorted(r.data.tags))\n",
                     logged)
    assert out.stdout.startswith("best-so-far ") and "'team'" not in out.stdout, out.stderr


@pytest.mark.parametrize("args, message", [
    (("runs", "tag", "{deleted}", "k", "v"), "is deleted; restore it"),
    (("runs", "rename", "{run}", " "), "A run name cannot be empty"),
    (("runs", "tag", "{run}", "bad/../key", "v"), "bad/../key"),
    (("runs", "tag", "ffff", "k", "v"), "Run 'ffff' not found"),
    (("runs", "describe", "{run}", "x" * 70_000), "mlflow.note.content"),
    (("experiments", "rename", "cli-demo", "Default"), "'Default' already exists"),
    (("experiments", "delete", "nope"), "No experiment named or numbered 'nope'"),
    (("experiments", "restore", "cli-demo"), "active already"),
    (("artifacts", "log", "{run}", "/no/such/file"), "no such file"),
])
def test_edits_refused_are_one_line_errors(logged, args, message):
    """Issue 18 (7): a refused edit is `Error: ...` on one line, exit 1, and changes nothing."""
    found = json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout)
    run, deleted = found[0]["info"]["run_id"], found[1]["info"]["run_id"]
    gitml_invoke(logged, "runs", "delete", deleted)
    before = run_rev(logged, run)
    out = gitml_invoke(logged, *(a.format(run=run, deleted=deleted) for a in args), check=False)
    assert out.returncode == 1, out.stdout
    assert out.stderr.startswith("Error: ") and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    assert run_rev(logged, run) == before
    assert list((logged / ".git" / "gitml" / "live").glob(f"{run}.*")) == []  # no live log left for recovery


def test_experiments_rename_delete_and_restore_by_name_or_id(logged):
    """Issue 18 (7): the experiment ref's experiment.json changes; its runs follow a delete and a restore."""
    exp_id = json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout)[0]["info"]["experiment_id"]
    stored = lambda: json.loads(git(logged, "show", f"refs/gitml/experiments/{exp_id}:experiment.json"))  # noqa: E731

    out = gitml_invoke(logged, "experiments", "rename", "cli-demo", "vision", "--json").stdout
    assert json.loads(out) == {"experiment_id": exp_id, "name": "vision", "old_name": "cli-demo"}
    assert stored()["name"] == "vision"
    assert gitml_invoke(logged, "runs", "list", "-e", "vision", "--json").stdout.count('"run_id"') == 2

    out = gitml_invoke(logged, "experiments", "delete", exp_id).stdout
    assert out == f"deleted experiment vision ({exp_id}) and 2 runs\n"
    assert stored()["lifecycle_stage"] == "deleted"
    assert json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout) == []
    assert "vision" not in gitml_invoke(logged, "experiments", "list").stdout

    restored = json.loads(gitml_invoke(logged, "experiments", "restore", "vision", "--json").stdout)
    assert restored == {"experiment_id": exp_id, "name": "vision", "lifecycle_stage": "active", "runs_changed": 2}
    assert stored()["lifecycle_stage"] == "active"
    assert len(json.loads(gitml_invoke(logged, "runs", "list", "--json").stdout)) == 2


def test_artifacts_log_a_file_and_a_directory(repo, tmp_path):
    """Issue 18 (7): `gitml artifacts log` stores into the content store and records the files in the
    run's artifacts.json, as log_artifact(s) does; the download gives the same bytes back."""
    out = run_python("import gitml\nwith gitml.start_run() as r:\n    pass\nprint(r.info.run_id)\n", repo)
    rid = out.stdout.strip()
    (tmp_path / "report.txt").write_text("accuracy 0.9\n")
    (tmp_path / "plots" / "roc").mkdir(parents=True)
    (tmp_path / "plots" / "pr.csv").write_text("p,r\n1,0\n")
    (tmp_path / "plots" / "roc" / "a.csv").write_text("x,y\n")

    out = gitml_invoke(repo, "artifacts", "log", rid[:8], str(tmp_path / "report.txt")).stdout
    assert "report.txt  13" in out and out.endswith(f"1 file stored in run {rid}\n")
    logged = json.loads(gitml_invoke(repo, "artifacts", "log", rid, str(tmp_path / "plots"), "--artifact-path",
                                     "eval", "--json").stdout)
    assert logged["run_id"] == rid and logged["commit"] == run_rev(repo, rid)
    assert {p: e["size"] for p, e in logged["artifacts"].items()} == {"eval/pr.csv": 8, "eval/roc/a.csv": 4}

    manifest = json.loads(git(repo, "show", f"{run_rev(repo, rid)}:artifacts.json"))
    assert {"report.txt", "eval/pr.csv", "eval/roc/a.csv"} <= set(manifest)
    assert manifest["eval/pr.csv"]["md5"] == logged["artifacts"]["eval/pr.csv"]["md5"]
    dest = tmp_path / "dl"
    gitml_invoke(repo, "artifacts", "download", rid, "eval", "-d", str(dest))
    assert (dest / "eval" / "roc" / "a.csv").read_text() == "x,y\n"
    assert json.loads(gitml_invoke(repo, "runs", "show", rid, "--json").stdout)["info"]["status"] == "FINISHED"


# -- issue 18 (7): options out of range are click's one-line usage errors ------------------------------


@pytest.mark.parametrize("args, option", [
    (("runs", "list", "-n", "-1"), "'-n' / '--max-results'"),
    (("runs", "list", "-n", "0"), "'-n' / '--max-results'"),
    (("log", "-n", "-1"), "'-n' / '--max-count'"),
    (("ui", "--port", "70000"), "'-p' / '--port'"),
    (("ui", "--port", "99999999999999999999"), "'-p' / '--port'"),
    (("serve", "rf#production", "--port", "-1"), "'-p' / '--port'"),
    (("serve", "rf#production", "--timeout", "0"), "'--timeout'"),
])
def test_numbers_out_of_range_are_usage_errors_naming_the_option(logged, args, option):
    """Issue 18 (7): `-n -1` listed every run, `gitml ui --port 70000` ended in "unexpected OverflowError"."""
    out = gitml_invoke(logged, *args, check=False)
    assert out.returncode == 2
    error = out.stderr.splitlines()[-1]
    assert error.startswith(f"Error: Invalid value for {option}: ") and "is not in the range" in error
    assert "Overflow" not in out.stderr


def test_a_count_beyond_what_sqlite_holds_means_all(logged):
    out = gitml_invoke(logged, "runs", "list", "--json", "-n", "99999999999999999999")
    assert len(json.loads(out.stdout)) == 2


def test_shell_completion_scripts_and_repository_names(tracking, repo):
    import os
    import subprocess
    import sys

    for shell in ("bash", "zsh", "fish"):
        script = gitml_cli(repo, "completion", shell).stdout
        assert "_GITML_COMPLETE" in script, shell
    with tracking.start_run() as run:
        tracking.log_metric("m", 1.0)
    tracking.flush()

    def complete(words: str) -> list[str]:
        env = dict(os.environ, _GITML_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(words.split(" ")) - 1))
        env.pop("GITML_REPO", None)
        out = subprocess.run([sys.executable, "-m", "gitml"], cwd=repo, env=env, capture_output=True, text=True)
        return [line.split(",", 1)[1] for line in out.stdout.splitlines() if "," in line]

    rid = run.info.run_id
    assert complete(f"gitml runs show {rid[:3]}") == [rid]  # a run id from a prefix
    assert "show" in complete("gitml runs sh")
    assert complete("gitml runs show zzz") == []
    tracking.set_experiment("churn-model")
    assert complete("gitml runs list -e chu") == ["churn-model"]
