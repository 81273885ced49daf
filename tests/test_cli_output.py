"""The CLI's one output convention (``--json`` on every command that prints data or changes
something) and its progress bars (on a terminal only, never with ``--quiet``)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import click
import pytest

from gitml.cli import main
from tests.conftest import git, gitml_cli, gitml_invoke, run_python
from tests.test_sync import team  # noqa: F401 - the fixture: a bare remote and two clones

# Commands without --json, and why.
NO_JSON = {
    "gitml completion": "prints a shell script",
    "gitml serve": "a server: it runs until stopped",
    "gitml ui": "a server: it runs until stopped",
    "gitml predict": "its output is JSON already (or the file given with -o)",
    "gitml hooks run post-commit": "git calls it; it prints the hook's own messages",
    "gitml hooks run pre-push": "git calls it; it prints the hook's own messages",
}


def _commands(cmd: click.Command, path: str = "gitml"):
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{path} {name}")
    else:
        yield path, cmd


def test_every_command_that_prints_or_changes_something_takes_json():
    missing = [path for path, cmd in _commands(main)
               if "--json" not in {o for p in cmd.params for o in getattr(p, "opts", [])} and path not in NO_JSON]
    assert missing == []
    assert set(NO_JSON) <= {path for path, _ in _commands(main)}  # the exemptions name real commands


def _json(repo: Path, *args: str) -> object:
    return json.loads(gitml_invoke(repo, *args, "--json").stdout)


def test_changes_print_what_they_did_as_json(repo, tmp_path):
    out = run_python("import gitml\nwith gitml.start_run() as r:\n    gitml.log_metric('rmse', 0.5)\n"
                     "    gitml.log_text('hi', 'docs/a.txt')\nprint(r.info.run_id)\n", repo)
    rid = out.stdout.strip()

    created = _json(repo, "experiments", "create", "churn")
    assert created["name"] == "churn" and created["experiment_id"]
    assert _json(repo, "runs", "commit", rid[:8]) == {"run_id": rid, "commit": git(repo, "rev-parse", f"{_commit(repo, rid)}").strip()}
    assert _json(repo, "runs", "delete", rid[:8]) == [{"run_id": rid, "lifecycle_stage": "deleted"}]
    assert _json(repo, "runs", "restore", rid) == [{"run_id": rid, "lifecycle_stage": "active"}]
    assert _json(repo, "reindex", "-q") == {"runs_indexed": 1, "commits_noted": 1}
    assert _json(repo, "runs", "recover") == {"recovered": [], "waiting": []}

    downloaded = _json(repo, "artifacts", "download", rid[:8], "docs", "-d", str(tmp_path / "dl"))
    assert downloaded == {"run_id": rid, "artifact_path": "docs", "local_path": str(tmp_path / "dl" / "docs")}
    assert (tmp_path / "dl" / "docs" / "a.txt").read_text() == "hi"

    added = _json(repo, "remote", "add", "store", str(tmp_path / "store"), "-d")
    assert added == {"name": "store", "url": str(tmp_path / "store"), "default": True, "options": {}}

    hooks = _json(repo, "hooks", "install", "--post-commit")
    assert [(h["name"], h["action"]) for h in hooks] == [("post-commit", "installed")]
    assert [h["action"] for h in _json(repo, "hooks", "uninstall", "--post-commit")] == ["removed"]


def _commit(repo: Path, run_id: str) -> str:
    return gitml_invoke(repo, "runs", "commit", run_id).stdout.strip()


def test_diff_json_is_format_json(repo):
    run_python("import gitml\nwith gitml.start_run():\n    gitml.log_metric('rmse', 0.5)\n", repo)
    run_python("import gitml\nwith gitml.start_run():\n    gitml.log_metric('rmse', 0.25)\n", repo)
    ids = [r["info"]["run_id"] for r in _json(repo, "runs", "list")]
    as_json = gitml_invoke(repo, "diff", ids[1], ids[0], "--json").stdout
    assert as_json == gitml_invoke(repo, "diff", ids[1], ids[0], "--format", "json").stdout
    assert json.loads(as_json)["metrics"]["rmse"]["new"] == 0.25


def test_registry_changes_print_versions_and_tags_as_json(tracking, repo):
    pytest.importorskip("sklearn")
    from tests.test_registry import log_models

    ids = log_models(tracking, 2)
    v = _json(repo, "models", "register", "rf", f"runs:/{ids[0]}/model")
    assert (v["name"], v["version"], v["number"], v["run_id"], v["tag"]) == ("rf", "v0.0.1", 1, ids[0], "rf@v0.0.1")
    assert v["commit"] == git(repo, "rev-parse", "rf@v0.0.1^{commit}").strip()
    promoted = _json(repo, "models", "promote", "rf", "1", "prod")
    assert promoted["stage"] == "prod" and promoted["tags_written"] == ["rf#prod#1"]
    assert _json(repo, "models", "promote", "rf", "1", "prod")["tags_written"] == []  # already there
    assert _json(repo, "models", "unassign", "rf", "1", "prod")["tags_written"][0].startswith("rf#prod!#")
    comment = _json(repo, "models", "comment", "rf", "1", "looks good")
    assert comment["text"] == "looks good" and comment["version"] == "1"
    assert _json(repo, "models", "tag", "rf", "team", "search") == {
        "name": "rf", "version": None, "key": "team", "value": "search"}
    assert _json(repo, "models", "describe", "rf", "forest")["description"] == "forest"
    copied = _json(repo, "models", "copy", "rf", "1", "rf-copy")
    assert (copied["name"], copied["version"], copied["run_id"]) == ("rf-copy", "v0.0.1", ids[0])
    assert _json(repo, "models", "create", "empty", "--tag", "a=b") == {"name": "empty", "description": None,
                                                                      "tags": {"a": "b"}}
    assert _json(repo, "models", "deregister", "rf-copy", "1")["tags_written"] == ["rf-copy@v0.0.1!"]
    assert _json(repo, "models", "deprecate", "rf-copy")["tags_written"] == ["rf-copy@deprecated"]
    assert _json(repo, "models", "rename", "rf", "forest") == {"name": "forest", "old_name": "rf"}


def test_versions_complete_from_the_model_on_the_line(tracking, repo):
    pytest.importorskip("sklearn")
    from tests.test_registry import log_models

    ids = log_models(tracking, 2)
    for rid in ids:
        tracking.register_model(f"runs:/{rid}/model", "rf")

    def complete(words: str) -> list[str]:
        env = dict(os.environ, _GITML_COMPLETE="bash_complete", COMP_WORDS=words,
                   COMP_CWORD=str(len(words.split(" ")) - 1))
        env.pop("GITML_REPO", None)
        out = subprocess.run([sys.executable, "-m", "gitml"], cwd=repo, env=env, capture_output=True, text=True)
        return [line.split(",", 1)[1] for line in out.stdout.splitlines() if "," in line]

    assert complete("gitml models promote rf ") == ["v0.0.2", "v0.0.1", "latest"]
    assert complete("gitml models promote rf v0.0.1") == ["v0.0.1"]
    assert complete("gitml models promote rf 2") == ["2"]
    assert complete("gitml models deregister nope ") == []
    assert complete("gitml models copy rf v0.0.2 r") == ["rf"]  # the destination is a model name


# -- progress bars ---------------------------------------------------------------------------


def _on_a_terminal(cwd: Path, *args: str) -> tuple[int, str]:
    """Run ``gitml ARGS`` with stdout and stderr on a pseudo-terminal 100 columns wide (as in a
    shell); return its exit code and everything it drew."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "GITML_REPO"}
    proc = subprocess.Popen([sys.executable, "-m", "gitml", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("gitml drew nothing for 60 s")
        try:
            data = os.read(leader, 65536)
        except OSError:  # the follower closed: the process is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def big_artifact(repo: Path, tmp_path: Path) -> tuple[Path, str]:
    """A run and a 24 MiB file (several 4 MiB blocks, so a bar has steps to draw)."""
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(24 << 20))
    rid = run_python("import gitml\nwith gitml.start_run() as r:\n    gitml.log_param('a', 1)\nprint(r.info.run_id)\n",
                     repo).stdout.strip()
    return src, rid


def test_artifact_log_and_download_draw_byte_bars_on_a_terminal_only(repo, tmp_path, big_artifact):
    src, rid = big_artifact
    code, drawn = _on_a_terminal(repo, "artifacts", "log", rid, str(src))
    assert code == 0, drawn
    assert "store:" in drawn and "24.0M/24.0M" in drawn  # bytes, scaled, to the end
    assert "1 file stored" in drawn

    code, drawn = _on_a_terminal(repo, "artifacts", "download", rid, "weights.bin", "-d", str(tmp_path / "a"))
    assert code == 0 and "download:" in drawn and "24.0M/24.0M" in drawn
    assert (tmp_path / "a" / "weights.bin").read_bytes() == src.read_bytes()

    code, drawn = _on_a_terminal(repo, "artifacts", "download", rid, "weights.bin", "-d", str(tmp_path / "b"), "-q")
    assert code == 0 and "download:" not in drawn and drawn.strip() == str(tmp_path / "b" / "weights.bin")

    piped = gitml_cli(repo, "artifacts", "download", rid, "weights.bin", "-d", str(tmp_path / "c"))
    assert piped.stderr == "" and piped.stdout.strip() == str(tmp_path / "c" / "weights.bin")


def test_reindex_and_recover_draw_bars_on_a_terminal(repo):
    run_python("import gitml\nfor i in range(3):\n    with gitml.start_run():\n        gitml.log_metric('m', i)\n", repo)
    code, drawn = _on_a_terminal(repo, "reindex")
    assert code == 0 and "index:" in drawn and "run" in drawn and "indexed 3 runs" in drawn
    code, drawn = _on_a_terminal(repo, "reindex", "--quiet")
    assert code == 0 and "index:" not in drawn

    # a killed writer's live log: recovery draws its bar and commits the run
    run_python("import os, gitml\ngitml.start_run()\ngitml.log_metric('m', 1.0)\nos._exit(9)\n", repo)
    code, drawn = _on_a_terminal(repo, "runs", "recover")
    assert code == 0 and "recover:" in drawn and "recovered " in drawn


def test_push_and_pull_pass_gits_own_meter_to_the_bars(team):
    a, b, _, _ = team
    run_python("import gitml\nfor i in range(30):\n    with gitml.start_run():\n        gitml.log_metric('m', i)\n", a)
    code, drawn = _on_a_terminal(a, "push")
    assert code == 0 and "writing objects:" in drawn and "push: 30 runs sent" in drawn, drawn
    code, drawn = _on_a_terminal(b, "pull")
    assert code == 0, drawn
    for phase in ("receiving objects:", "merging refs:", "index:"):
        assert phase in drawn, (phase, drawn)
    assert "pull: 30 runs received" in drawn
    assert "\\u001b" not in drawn  # the bars reach the terminal as they are, not escaped

    piped = gitml_cli(b, "pull")  # off a terminal: no meter, and git's progress is not asked for
    assert piped.stderr == "" and "pull: 0 runs received" in piped.stdout


def test_a_failed_fetch_with_a_meter_is_still_one_line(repo):
    from gitml.store.gitremote import RemoteError, fetch
    from gitml.store.repo import GitRepo

    heard = []
    with pytest.raises(RemoteError) as e:
        fetch(GitRepo.discover(repo), "/nonexistent/remote.git", ["+refs/gitml/*:refs/x/*"],
              lambda *a: heard.append(a))
    assert "Cannot fetch from git remote '/nonexistent/remote.git'" in str(e.value)
    assert "\n" not in str(e.value) and "does not appear to be a git repository" in str(e.value)
