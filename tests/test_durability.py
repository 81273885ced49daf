"""Durability of tracking under real concurrency and real crashes.

Every test drives real Python processes (``sys.executable``) against a real
git repository and checks the result with the real ``git`` binary: ref
compare-and-swap between processes, several processes logging at once,
SIGKILL mid-run and recovery (by ``gitml runs recover`` and by any other
command), recoverers racing each other, live writers left alone, exit
statuses, the dirty-tree source snapshot, and a clone round trip.

Processes are synchronised with pipes, never with sleeps: a child prints a
line ("ready ...") once its logging calls have returned and then blocks
reading stdin until the test writes "go" (or kills it).
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import git, git_run_ids, gitml_cli, run_python, run_rev

TIMEOUT = 60.0  # seconds any one child may take to reach a barrier; generous for slow CI

# Put at the top of every child script: tiny barrier helpers.
PRELUDE = textwrap.dedent(
    """\
    import sys
    import gitml

    def say(*words):
        print(*words, flush=True)

    def wait_for_go():
        line = sys.stdin.readline()
        if line.strip() != "go":
            raise SystemExit("parent went away")
    """
)


class Child:
    """A real Python process running ``code``, talked to over stdin/stdout."""

    def __init__(self, code: str, cwd: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._buf = b""

    def expect(self, word: str, timeout: float = TIMEOUT) -> list[str]:
        """Wait for the child's next stdout line, check it starts with ``word``; its other words."""
        fields = self.line(timeout, word)
        assert fields and fields[0] == word, f"expected {word!r} from child, got {fields!r}"
        return fields[1:]

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def line(self, timeout: float = TIMEOUT, waiting_for: str = "a line") -> list[str]:
        """The words of the child's next stdout line."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"timed out after {timeout}s waiting for {waiting_for!r}")
            readable, _, _ = select.select([fd], [], [], left)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._fail(f"exited before printing {waiting_for!r}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode().split()

    def go(self) -> None:
        self.send("go")

    def finish(self, timeout: float = TIMEOUT) -> str:
        """Wait for a normal exit (code 0); return the rest of its stdout."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._fail(f"did not exit within {timeout}s")
        if self.proc.returncode != 0:
            raise AssertionError(f"child exited {self.proc.returncode}:\n{err.decode()}")
        return (self._buf + out).decode()

    def kill(self) -> None:
        """SIGKILL the child and reap it (its flock on the live log is gone after this)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        assert self.proc.returncode == -signal.SIGKILL
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            stream.close()  # type: ignore[union-attr]

    def _fail(self, why: str) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate()
        raise AssertionError(f"child {why} (exit {self.proc.returncode}):\n{err.decode()}")


@pytest.fixture
def spawn(repo: Path):
    """Start ``Child`` processes in ``repo``; any still alive at teardown are killed."""
    started: list[Child] = []

    def start(code: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Child:
        child = Child(code, cwd or repo, args, env)
        started.append(child)
        return child

    yield start
    for child in started:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.communicate()


# -- reading what is in git, with git (no gitml code, so nothing is recovered by reading) ----


def raw_run(repo: Path, run_id: str) -> dict:
    return json.loads(git(repo, "show", f"{run_rev(repo, run_id)}:run.json"))


def has_run(repo: Path, run_id: str) -> bool:
    """Git holds the run at all (its own ref or a ledger entry)."""
    return run_id in git_run_ids(repo)


def assert_only_flushed_in_git(repo: Path, run_id: str, points: int) -> None:
    """Git holds the run as RUNNING with exactly ``points`` loss points, or (before
    the writer's first flush, if it has not flushed) not at all."""
    if points == 0 and not has_run(repo, run_id):
        return
    before = raw_run(repo, run_id)
    assert before["status"] == "RUNNING"
    assert before["end_time"] is None
    assert len(raw_points(repo, run_id, "loss")) == points


def raw_points(repo: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of every point of ``key`` in the run commit, in file order."""
    ref = run_rev(repo, run_id)
    chunks = git(repo, "ls-tree", "-r", "--name-only", ref, "--", f"metrics/{key}/").split()
    points = []
    for chunk in sorted(chunks):
        for line in git(repo, "show", f"{ref}:{chunk}").splitlines():
            step, _ts, value = line.split("\t")
            points.append((int(step), float(value)))
    return points


def writer_trailers(repo: Path, run_id: str) -> list[str]:
    """The ``Gitml-Writer`` trailers of the run commit (per-writer applied counts)."""
    message = git(repo, "log", "-1", "--format=%B", run_rev(repo, run_id))
    return [ln for ln in message.splitlines() if ln.startswith("Gitml-Writer:")]


def run_files(repo: Path, run_id: str) -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", run_rev(repo, run_id)).split()


def live_files(repo: Path) -> list[Path]:
    """Everything under .git/gitml/live (live logs and their run directories)."""
    live = repo / ".git" / "gitml" / "live"
    return sorted(live.rglob("*")) if live.exists() else []


def assert_fsck_clean(repo: Path) -> None:
    out = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    problems = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip() and not ln.startswith("Checking")]
    assert problems == [], problems


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


# -- 1. many processes, many runs ---------------------------------------------------------------

LOG_OWN_RUN = """
    idx = int(sys.argv[1])
    with gitml.start_run(run_name=f"worker-{idx}") as run:
        say("ready", run.info.run_id)
        wait_for_go()
        gitml.log_params({f"p{j}": f"{idx}-{j}" for j in range(5)})
        for step in range(500):
            gitml.log_metric("loss", idx * 1000.0 + step, step=step)
            gitml.log_metric("acc", step / 500, step=step)
            if step % 100 == 99:
                gitml.flush()
    say("done")
"""


def test_four_processes_four_runs_lose_nothing(repo, tracking, spawn):
    children = [spawn(LOG_OWN_RUN, str(i), env={"GITML_FLUSH_INTERVAL": "0.01"}) for i in range(4)]
    run_ids = [c.expect("ready")[0] for c in children]
    for c in children:  # release all four at once
        c.go()
    for c in children:
        c.expect("done")
        c.finish()

    client = tracking.Client(repo)
    for idx, run_id in enumerate(run_ids):
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"worker-{idx}"
        assert run.data.params == {f"p{j}": f"{idx}-{j}" for j in range(5)}
        assert history(client, run_id, "loss") == [(s, idx * 1000.0 + s) for s in range(500)]
        assert history(client, run_id, "acc") == [(s, s / 500) for s in range(500)]
        assert set(run_files(repo, run_id)) >= {"run.json", "params.json", "tags.json"}
        assert len(writer_trailers(repo, run_id)) == 1  # only the last writer's count is kept
    assert_fsck_clean(repo)
    note = git(repo, "notes", "--ref=gitml", "show", "HEAD")
    for run_id in run_ids:
        assert f"run {run_id} FINISHED" in note
    assert live_files(repo) == []


# -- compare-and-swap of refs across processes (DESIGN invariant 2) ---------------------------------

# Each round the parent names a ref and the value every child must expect ("-": the
# ref must not exist yet); all children try to move it to their own commit at once and
# answer 1 if cas_ref said they won. The answers are the barrier between rounds.
CAS_CONTENDER = """
    from gitml.store.repo import GitRepo

    repo = GitRepo.discover(".")
    commit = repo.write_commit(repo.update_tree(None, {"who": sys.argv[1].encode()}), [], "contender")
    say("ready", commit)
    for line in sys.stdin:
        name, old = line.split()
        say(int(repo.cas_ref(name, commit, None if old == "-" else old)))
"""

CAS_ROUNDS = 200


def contend(spawn, repo: Path, round_ref) -> None:
    """Rounds of 4 processes racing one cas_ref each: exactly one wins, and the ref holds its commit."""
    children = [spawn(CAS_CONTENDER, str(i)) for i in range(4)]
    commits = [c.expect("ready")[0] for c in children]
    for k in range(CAS_ROUNDS):
        name, old = round_ref(k)
        for c in children:
            c.send(f"{name} {old or '-'}")
        won = [commit for c, commit in zip(children, commits) if c.line() == ["1"]]
        assert len(won) == 1, f"round {k}: {len(won)} processes were told they won the CAS of {name}"
        assert git(repo, "rev-parse", name).strip() == won[0]


def test_ref_update_cas_has_one_winner_across_processes(repo, spawn):
    base = git(repo, "rev-parse", "HEAD").strip()
    commands = "".join(f"create refs/gitml/race/{k} {base}\n" for k in range(CAS_ROUNDS))
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=commands, text=True, check=True)
    contend(spawn, repo, lambda k: (f"refs/gitml/race/{k}", base))


def test_ref_creation_cas_has_one_winner_across_processes(repo, spawn):
    """Regression: creating a ref checked existence before taking its lock, so two
    processes could both win (seen as run lines lost from a new notes ref)."""
    contend(spawn, repo, lambda k: (f"refs/gitml/race/{k}/ref", None))


# -- 2. many processes, one run --------------------------------------------------------------------

CREATE_RUN = """
    run = gitml.Client().create_run("0", run_name="shared")
    say(run.info.run_id)
"""

LOG_SHARED_RUN = """
    run_id, who, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
    gitml.start_run(run_id=run_id)
    say("ready")
    wait_for_go()
    gitml.log_param(f"from_{who}", who)
    for i in range(1000):
        # every 10th call commits at once: ~100 compare-and-swap flushes per process,
        # on top of the background flusher.
        gitml.log_metric("shared", float(base + i), step=base + i, synchronous=(i % 10 == 9))
    gitml.end_run()
    say("done")
"""


def create_run(repo: Path) -> str:
    out = run_python(PRELUDE + textwrap.dedent(CREATE_RUN), repo)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_two_processes_one_run_lose_nothing(repo, tracking, spawn):
    run_id = create_run(repo)
    env = {"GITML_FLUSH_INTERVAL": "0.05"}
    a = spawn(LOG_SHARED_RUN, run_id, "a", "0", env=env)
    b = spawn(LOG_SHARED_RUN, run_id, "b", "1000", env=env)
    a.expect("ready")
    b.expect("ready")
    a.go()
    b.go()
    for c in (a, b):
        c.expect("done")
        c.finish()

    client = tracking.Client(repo)
    points = history(client, run_id, "shared")
    assert len(points) == 2000
    assert sorted(points) == [(s, float(s)) for s in range(2000)]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"from_a": "a", "from_b": "b"}
    assert run.data.metrics["shared"] == 1999.0
    assert len(writer_trailers(repo, run_id)) == 1  # only the last writer's count is kept
    assert live_files(repo) == []
    assert_fsck_clean(repo)


# -- 3. SIGKILL and recovery ------------------------------------------------------------------------

N = 1000

# Logs params and N points (committing the first ``flush_at`` of them), reports,
# then blocks until killed. No background flusher: what git holds before the kill
# is exactly what the script flushed.
DOOMED = """
    n, flush_at = int(sys.argv[1]), int(sys.argv[2])
    run = gitml.start_run(run_name="doomed")
    gitml.log_params({"alpha": "0.5", "layers": "3"})
    for i in range(n):
        gitml.log_metric("loss", 1.0 / (i + 1), step=i)
        if i + 1 == flush_at:
            gitml.flush()
    say("ready", run.info.run_id)
    wait_for_go()
"""

NO_FLUSHER = {"GITML_FLUSH_INTERVAL": "0"}


def start_and_kill(spawn, repo: Path, flush_at: int) -> str:
    """Run DOOMED to its barrier, check git holds only the flushed part, SIGKILL it."""
    child = spawn(DOOMED, str(N), str(flush_at), env=NO_FLUSHER)
    (run_id,) = child.expect("ready")
    assert_only_flushed_in_git(repo, run_id, flush_at)
    assert len(live_files(repo)) == 1  # the one writer log, <run_id>.<writer_id>.log
    child.kill()
    return run_id


def assert_recovered(repo: Path, client, run_id: str) -> None:
    """The killed run is KILLED with every point logged before the kill, exactly once."""
    assert live_files(repo) == []
    raw = raw_run(repo, run_id)
    assert raw["status"] == "KILLED"
    assert raw["end_time"] is not None and raw["end_time"] >= raw["start_time"]
    expected = [(i, 1.0 / (i + 1)) for i in range(N)]
    assert raw_points(repo, run_id, "loss") == expected
    assert len(writer_trailers(repo, run_id)) == 1  # only the last writer's count is kept
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.params == {"alpha": "0.5", "layers": "3"}
    assert history(client, run_id, "loss") == expected
    assert run.data.metrics["loss"] == 1.0 / N
    assert_fsck_clean(repo)


@pytest.mark.parametrize("flush_at", [0, N // 2], ids=["nothing-flushed", "half-flushed"])
def test_sigkill_recovered_by_recover_command(repo, tracking, spawn, flush_at):
    run_id = start_and_kill(spawn, repo, flush_at)
    out = gitml_cli(repo, "runs", "recover")
    assert out.stdout.split() == ["recovered", run_id]
    assert_recovered(repo, tracking.Client(repo), run_id)


@pytest.mark.parametrize(
    "command",
    [("runs", "list"), ("runs", "list", "--json"), ("runs", "show", "{run}"), ("experiments", "list"), ("log",)],
    ids=lambda c: " ".join(c),
)
def test_sigkill_recovered_by_any_command(repo, tracking, spawn, command):
    run_id = start_and_kill(spawn, repo, N // 2)
    gitml_cli(repo, *(arg.format(run=run_id) for arg in command))
    assert_recovered(repo, tracking.Client(repo), run_id)


def test_sigkill_run_listed_as_killed(repo, spawn):
    run_id = start_and_kill(spawn, repo, 0)
    listed = json.loads(gitml_cli(repo, "runs", "list", "--json").stdout)
    assert [(r["info"]["run_id"], r["info"]["status"]) for r in listed] == [(run_id, "KILLED")]
    assert listed[0]["data"]["params"] == {"alpha": "0.5", "layers": "3"}
    assert listed[0]["data"]["metrics"] == {"loss": 1.0 / N}


# -- 4. recovery is idempotent, and safe with recoverers racing ------------------------------------


def test_concurrent_recoverers_apply_the_log_once(repo, tracking, spawn):
    run_id = start_and_kill(spawn, repo, N // 2)
    cmd = [sys.executable, "-m", "gitml", "runs", "recover"]
    procs = [subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outs]
    said = sorted(out.strip() for out, _ in outs)
    assert said == ["nothing to recover"] * 3 + [f"recovered {run_id}"]
    assert_recovered(repo, tracking.Client(repo), run_id)

    again = gitml_cli(repo, "runs", "recover")
    assert again.stdout.strip() == "nothing to recover"
    assert_recovered(repo, tracking.Client(repo), run_id)


def test_recovery_after_crash_between_commit_and_unlink_applies_nothing_twice(repo, tracking, spawn):
    """A recoverer killed after its commit but before deleting the log leaves exactly this state:
    the orphan log, intact and unlocked, and a run ref that already holds its events."""
    run_id = start_and_kill(spawn, repo, N // 2)
    (log_path,) = [p for p in live_files(repo) if p.suffix == ".log"]
    saved = log_path.read_bytes()
    gitml_cli(repo, "runs", "recover")
    assert_recovered(repo, tracking.Client(repo), run_id)

    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(saved)  # the log the dead recoverer did not get to delete
    gitml_cli(repo, "runs", "recover")
    assert_recovered(repo, tracking.Client(repo), run_id)


# Logs, reports, waits for "go", then ends its run normally.
BLOCKED = """
    n = int(sys.argv[1])
    run = gitml.start_run(run_name="alive")
    gitml.log_param("alpha", "0.5")
    for i in range(n):
        gitml.log_metric("loss", float(i), step=i)
    say("ready", run.info.run_id)
    wait_for_go()
    gitml.end_run()
    say("done")
"""


def test_end_run_crash_between_commit_and_unlink_applies_nothing_twice(repo, tracking, spawn, tmp_path):
    """A writer killed after end_run's commit but before deleting its log: the complete
    log is left unlocked. A hard link taken while the writer was blocked sees every
    byte it appended afterwards and outlives its unlink, so it is exactly that log."""
    child = spawn(BLOCKED, str(N), env=NO_FLUSHER)
    (run_id,) = child.expect("ready")
    (log_path,) = [p for p in live_files(repo) if p.suffix == ".log"]
    kept = tmp_path / "kept.log"
    os.link(log_path, kept)
    child.go()
    child.expect("done")
    child.finish()
    assert live_files(repo) == []

    log_path.parent.mkdir(parents=True, exist_ok=True)
    os.link(kept, log_path)
    gitml_cli(repo, "runs", "recover")
    assert live_files(repo) == []
    client = tracking.Client(repo)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert history(client, run_id, "loss") == [(i, float(i)) for i in range(N)]
    assert client.get_run(run_id).data.params == {"alpha": "0.5"}


# -- 5. a live writer is never recovered ----------------------------------------------------------


def test_live_writer_is_not_recovered(repo, tracking, spawn):
    child = spawn(BLOCKED, str(N), env=NO_FLUSHER)
    (run_id,) = child.expect("ready")
    logs_before = [p for p in live_files(repo) if p.suffix == ".log"]
    assert len(logs_before) == 1

    assert gitml_cli(repo, "runs", "recover").stdout.strip() == "nothing to recover"
    gitml_cli(repo, "runs", "list")
    assert_only_flushed_in_git(repo, run_id, 0)  # the points are only in the writer's log
    assert [p for p in live_files(repo) if p.suffix == ".log"] == logs_before

    child.go()
    child.expect("done")
    child.finish()
    client = tracking.Client(repo)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.5"}
    assert history(client, run_id, "loss") == [(i, float(i)) for i in range(N)]
    assert live_files(repo) == []


# The killed writer resumes the run with the fluent API and (no background flusher)
# holds its points only in its live log; the surviving one logs through the Client.
RESUMED_WRITER = """
    run_id, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    gitml.start_run(run_id=run_id)
    for i in range(n):
        gitml.log_metric(key, float(i), step=i)
    say("ready")
    wait_for_go()
"""

CLIENT_WRITER = """
    run_id, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = gitml.Client()
    client.log_batch(run_id, metrics=[gitml.Metric(key, float(i), 0, i) for i in range(n)])
    say("ready")
    wait_for_go()
    client.set_terminated(run_id)
    say("done")
"""


def test_dead_writer_recovered_while_another_writer_of_the_run_lives(repo, tracking, spawn):
    run_id = create_run(repo)
    dead = spawn(RESUMED_WRITER, run_id, "dead", str(N), env=NO_FLUSHER)
    alive = spawn(CLIENT_WRITER, run_id, "alive", str(N), env=NO_FLUSHER)
    dead.expect("ready")
    alive.expect("ready")
    assert raw_points(repo, run_id, "dead") == []  # only in the dead writer's log
    dead.kill()

    assert gitml_cli(repo, "runs", "recover").stdout.split() == ["recovered", run_id]
    assert raw_run(repo, run_id)["status"] == "RUNNING"  # the other writer is still logging
    assert raw_points(repo, run_id, "dead") == [(i, float(i)) for i in range(N)]
    assert len([p for p in live_files(repo) if p.suffix == ".log"]) == 1

    alive.go()
    alive.expect("done")
    alive.finish()
    client = tracking.Client(repo)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert history(client, run_id, "dead") == [(i, float(i)) for i in range(N)]
    assert history(client, run_id, "alive") == [(i, float(i)) for i in range(N)]
    assert live_files(repo) == []
    assert_fsck_clean(repo)


# -- logging by run id writes no git objects per call ---------------------------------------------

LOG_BY_RUN_ID = """
    run_id, api = sys.argv[1], sys.argv[2]
    client = gitml.Client()
    log = {
        "client": lambda i: client.log_metric(run_id, "k", float(i), step=i),
        "fluent": lambda i: gitml.log_metric("k", float(i), step=i, run_id=run_id),
    }[api]
    log(0)  # the first call may open the writer and flush once
    say("ready")
    wait_for_go()
    for i in range(1, 301):
        log(i)
    say("logged")
    wait_for_go()
"""


def git_object_count(repo: Path) -> int:
    counts = dict(ln.split(": ") for ln in git(repo, "count-objects", "-v").splitlines())
    return int(counts["count"]) + int(counts["in-pack"])


@pytest.mark.parametrize("api", ["client", "fluent"])
def test_logging_by_run_id_does_not_write_git_per_call(repo, spawn, api):
    """DESIGN invariant 3: logging never does a git write per call."""
    run_id = create_run(repo)
    child = spawn(LOG_BY_RUN_ID, run_id, api, env=NO_FLUSHER)
    child.expect("ready")
    before = git_object_count(repo)
    child.go()
    child.expect("logged")
    written = git_object_count(repo) - before
    # At most one flush's worth of objects; a commit per call would be well over 300.
    assert written < 20
    child.go()
    child.finish()
    assert len(raw_points(repo, run_id, "k")) == 301


# -- 6. how a script ends decides the status ---------------------------------------------------------

ENDINGS = {
    "with-block-raises": (
        """
        with gitml.start_run() as run:
            say(run.info.run_id)
            gitml.log_metric("x", 1.0)
            raise RuntimeError("boom")
        """,
        1,
        "FAILED",
    ),
    "with-block-returns": (
        """
        with gitml.start_run() as run:
            say(run.info.run_id)
            gitml.log_metric("x", 1.0)
        """,
        0,
        "FINISHED",
    ),
    "no-with-exits-normally": (
        """
        run = gitml.start_run()
        say(run.info.run_id)
        gitml.log_metric("x", 1.0)
        """,
        0,
        "FINISHED",
    ),
    "no-with-raises-at-top-level": (
        """
        run = gitml.start_run()
        say(run.info.run_id)
        gitml.log_metric("x", 1.0)
        raise RuntimeError("boom")
        """,
        1,
        "FAILED",
    ),
    "implicit-run-exits-normally": (
        """
        gitml.log_metric("x", 1.0)
        say(gitml.active_run().info.run_id)
        """,
        0,
        "FINISHED",
    ),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_script_ending_sets_status(repo, tracking, ending):
    code, exit_code, status = ENDINGS[ending]
    out = run_python(PRELUDE + textwrap.dedent(code), repo, timeout=TIMEOUT)
    assert out.returncode == exit_code, out.stderr
    if exit_code:
        assert "RuntimeError: boom" in out.stderr
    run_id = out.stdout.strip()
    run = tracking.Client(repo).get_run(run_id)
    assert run.info.status == status
    assert run.info.end_time is not None
    assert run.data.metrics == {"x": 1.0}
    assert live_files(repo) == []


# -- 7. the source snapshot of a dirty work tree ------------------------------------------------------


def work_tree_files(root: Path) -> dict[str, bytes]:
    files = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel == ".git" or rel.startswith(".git/") or not path.is_file():
            continue
        files[rel] = path.read_bytes()
    return files


def user_git_state(repo: Path) -> dict[str, str]:
    """Everything of the user's that gitml must leave alone, as git reports it."""
    return {
        "status": git(repo, "status", "--porcelain=v1", "-uall", "--ignored"),
        "cached": git(repo, "diff", "--cached", "--binary"),
        "unstaged": git(repo, "diff", "--binary"),
        "head": git(repo, "symbolic-ref", "HEAD") + git(repo, "rev-parse", "HEAD"),
        "refs": git(repo, "for-each-ref", "refs/heads", "refs/tags", "refs/stash"),
        "stash": git(repo, "stash", "list"),
    }


def test_dirty_tree_snapshot_reproduces_work_tree(repo, tracking):
    (repo / ".gitignore").write_text("*.log\nsecrets/\n")
    (repo / "delete_me.txt").write_text("going away\n")
    (repo / "src").mkdir()
    (repo / "src" / "model.py").write_text("W = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "more files")
    head = git(repo, "rev-parse", "HEAD").strip()

    (repo / "train.py").write_text("print('train, edited')\n")  # tracked, modified
    (repo / "delete_me.txt").unlink()  # tracked, deleted
    (repo / "src" / "new_module.py").write_text("NEW = True\n")  # untracked
    (repo / "run.sh").write_text("#!/bin/sh\necho run\n")  # untracked, executable
    (repo / "run.sh").chmod(0o755)
    (repo / "staged.txt").write_text("staged\n")  # staged new file ...
    git(repo, "add", "staged.txt")
    (repo / "staged.txt").write_text("staged, then edited\n")  # ... edited after staging
    (repo / "debug.log").write_text("ignored\n")  # ignored
    (repo / "secrets").mkdir()
    (repo / "secrets" / "key.txt").write_text("hunter2\n")  # ignored directory
    (repo / "data").mkdir()
    (repo / "data" / "big.bin").write_bytes(b"\0" * 5000)  # over the size limit

    # Old mtimes everywhere, then one status to refresh the index: afterwards no
    # entry is racily clean, so git itself has no reason to rewrite the index.
    old = time.time() - 3600
    for path in repo.rglob("*"):
        if ".git" not in path.relative_to(repo).parts:
            os.utime(path, (old, old))
    git(repo, "status", "--porcelain")
    before = user_git_state(repo)
    index_before = (repo / ".git" / "index").read_bytes()
    files_before = work_tree_files(repo)

    out = run_python(
        PRELUDE + "with gitml.start_run() as run:\n    say(run.info.run_id)\n",
        repo,
        env={"GITML_SNAPSHOT_MAX_FILE_SIZE": "1000"},
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()

    # The user's index, work tree, branches and HEAD are untouched.
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert work_tree_files(repo) == files_before
    assert user_git_state(repo) == before
    assert "staged.txt" in before["cached"]

    # run commit -> snapshot commit -> HEAD
    snapshot = git(repo, "rev-parse", f"{run_rev(repo, run_id)}^").strip()
    assert snapshot != head
    assert git(repo, "rev-list", "--parents", "-n", "1", snapshot).split() == [snapshot, head]
    info = raw_run(repo, run_id)
    assert info["source"]["commit"] == snapshot
    assert info["source"]["head"] == head
    assert info["source"]["dirty"] is True
    assert info["source"]["skipped"] == ["data/big.bin"]
    tags = tracking.Client(repo).get_run(run_id).data.tags
    assert tags["mlflow.source.git.commit"] == head
    assert tags["mlflow.source.git.dirty"] == "true"

    # The snapshot holds exactly the work tree: edits, untracked files and modes in;
    # ignored, deleted and oversized files out.
    expected = {p: data for p, data in files_before.items()
                if p not in ("debug.log", "secrets/key.txt", "data/big.bin")}
    assert len(expected) == len(files_before) - 3
    archive = subprocess.run(["git", "archive", "--format=tar", snapshot], cwd=repo, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        snapshot_files = {name: tar.extractfile(m).read() for name, m in members.items()}  # type: ignore[union-attr]
        assert snapshot_files == expected
        assert members["run.sh"].mode & stat.S_IXUSR
        assert not members["train.py"].mode & stat.S_IXUSR
    listed = git(repo, "ls-tree", "-r", "--name-only", snapshot).split()
    assert sorted(listed) == sorted(expected)
    assert_fsck_clean(repo)


# -- 8. runs travel with plain git ----------------------------------------------------------------------

LOG_TWO_RUNS = """
    gitml.set_experiment("travel")
    with gitml.start_run(run_name="first") as run:
        gitml.log_params({"alpha": "0.5", "depth": "3"})
        for step in range(300):
            gitml.log_metric("loss", 1.0 / (step + 1), step=step)
        gitml.set_tag("team", "blue")
    say(run.info.run_id)
    with gitml.start_run(run_name="second") as run:
        gitml.log_param("alpha", "0.1")
        gitml.log_metric("loss", 0.25)
    say(run.info.run_id)
"""


def listed_runs(cwd: Path) -> dict[str, dict]:
    listed = json.loads(gitml_cli(cwd, "runs", "list", "--json").stdout)
    return {
        r["info"]["run_id"]: {
            "info": r["info"], "params": r["data"]["params"], "metrics": r["data"]["metrics"],
            "tags": r["data"]["tags"], "commit": r["commit"],
        }
        for r in listed
    }


@pytest.mark.parametrize("via", ["clone", "bare-remote"])
def test_runs_round_trip_through_git_clone_and_fetch(repo, tracking, tmp_path, via):
    out = run_python(PRELUDE + textwrap.dedent(LOG_TWO_RUNS), repo, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    run_ids = out.stdout.split()
    original = listed_runs(repo)
    assert sorted(original) == sorted(run_ids)

    if via == "clone":
        source = repo
    else:
        source = tmp_path / "remote.git"
        git(tmp_path, "init", "-q", "--bare", str(source))
        git(repo, "push", "-q", str(source), "main", "refs/gitml/*:refs/gitml/*", "refs/notes/*:refs/notes/*")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(source), str(clone))
    git(clone, "fetch", "-q", "origin", "refs/gitml/*:refs/gitml/*", "refs/notes/*:refs/notes/*")

    assert listed_runs(clone) == original
    exps = json.loads(gitml_cli(clone, "experiments", "list", "--json").stdout)
    assert "travel" in json.dumps(exps)
    client, clone_client = tracking.Client(repo), tracking.Client(clone)
    for run_id in run_ids:
        assert history(clone_client, run_id, "loss") == history(client, run_id, "loss")
    assert len(history(clone_client, run_ids[0], "loss")) == 300

    logged = git(clone, "log", "--notes=gitml", "-1")
    assert "Notes (gitml):" in logged
    for run_id in run_ids:
        assert f"run {run_id} FINISHED" in logged
    assert_fsck_clean(clone)


# -- 5. locks and logs a killed process leaves behind (issue 14) -----------------------------------

HOLD_LOCK = """
    import fcntl, os, pygit2
    ref, own = sys.argv[1], sys.argv[2] == "own"
    repo = pygit2.Repository(".")
    with repo.transaction() as tx:
        tx.lock_ref(ref)
        if own:  # as gitml does: the lock file flocked while held
            fd = os.open(os.path.join(repo.path, ref + ".lock"), os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
        say("locked")
        wait_for_go()
"""


@pytest.mark.parametrize("holder", ["gitml", "other-git"])
def test_stale_ref_lock_left_by_a_killed_process_is_removed_and_the_run_recovered(repo, tracking, spawn, holder):
    """Issue 14 (4): kill -9 between taking a run ref's lock and releasing it left
    refs/gitml/runs/<id>.lock; recovery then gave up after 200 attempts, moved the log to
    live-failed/ and left the run RUNNING. A lock no live process holds is removed once it is
    clearly stale (STALE_LOCK_SECONDS), and the run is recovered with every point."""
    run_id = start_and_kill(spawn, repo, N // 2)
    lock = repo / ".git" / "refs" / "gitml" / "runs" / f"{run_id}.lock"
    holder_proc = spawn(HOLD_LOCK, f"refs/gitml/runs/{run_id}", "own" if holder == "gitml" else "plain")
    holder_proc.expect("locked")
    holder_proc.kill()
    assert lock.exists()
    out = gitml_cli(repo, "runs", "recover")
    assert out.stdout.split() == ["recovered", run_id], out.stderr
    assert "removed stale lock" in out.stderr and str(lock) in out.stderr
    assert not lock.exists()
    assert not (repo / ".git" / "gitml" / "live-failed").exists()
    assert_recovered(repo, tracking.Client(repo), run_id)


def test_a_lock_held_by_a_live_process_is_respected_and_the_log_retried_later(repo, tracking, spawn):
    """Issue 14 (4): a log that cannot be applied now (its run ref locked by a live process for
    longer than every retry) goes to live-failed/, which is no dead end: the next recovery
    applies it once the lock is gone, and `gitml runs recover` says so."""
    run_id = start_and_kill(spawn, repo, N // 2)
    lock = repo / ".git" / "refs" / "gitml" / "runs" / f"{run_id}.lock"
    holder = spawn(HOLD_LOCK, f"refs/gitml/runs/{run_id}", "own")
    holder.expect("locked")
    out = gitml_cli(repo, "runs", "recover")  # the live holder's lock is never touched
    assert lock.exists() and "removed stale lock" not in out.stderr
    failed = list((repo / ".git" / "gitml" / "live-failed").glob(f"{run_id}.*.log"))
    assert len(failed) == 1 and "tried again by every recovery" in out.stderr
    assert "1 live log waits in" in out.stdout
    assert raw_run(repo, run_id)["status"] == "RUNNING"
    holder.go()
    holder.finish()
    out = gitml_cli(repo, "runs", "recover")
    assert out.stdout.split()[:2] == ["recovered", run_id], out.stdout
    assert not failed[0].exists()
    assert_recovered(repo, tracking.Client(repo), run_id)


BAD_LINES = [b'P[1]\n', b'T[null,null]\n', b'D[]\n', b'I["x"]\n', b'A["../x","' + b"0" * 32 + b'",1]\n',
             b'A["a.txt","../../etc/passwd",1]\n', b'Mloss\tx\t1\t2\n', b'M../../x\t1\t1\t2\n',
             b'I[{"status": "PWNED"}]\n', b'P' + b"[" * 100_000 + b'\n', b'\xff\xfe\n', b'Q["?"]\n',
             b'Pafter"ok"\n']


def test_malformed_lines_of_a_dead_writer_are_set_aside_and_the_rest_recovered(repo, tracking, spawn):
    """Issue 14 (5): one bad line in a dead process's live log (P[1], T[null,null], D[], I["x"]...)
    gave IndexError/TypeError in every command. The bad lines are set aside in
    live-failed/<log>.rejected with their line numbers, the rest is recovered, a warning says so."""
    run_id = start_and_kill(spawn, repo, N // 2)
    (log,) = live_files(repo)
    with open(log, "ab") as f:
        f.write(b"".join(BAD_LINES) + b'P["after", "ok"]\n')
    listed = gitml_cli(repo, "runs", "list", "--json")
    assert [r["info"]["status"] for r in json.loads(listed.stdout)] == ["KILLED"]
    assert f"{len(BAD_LINES)} malformed lines" in listed.stderr and run_id in listed.stderr
    rejected = repo / ".git" / "gitml" / "live-failed" / (log.name + ".rejected")
    kept = rejected.read_bytes().split(b"\n")[:-1]
    assert len(kept) == len(BAD_LINES) and kept[0].split(b"\t", 1)[1] == BAD_LINES[0].rstrip(b"\n")
    run = tracking.Client(repo).get_run(run_id)
    assert run.data.params == {"alpha": "0.5", "layers": "3", "after": "ok"}
    assert history(tracking.Client(repo), run_id, "loss") == [(i, 1.0 / (i + 1)) for i in range(N)]
    for cmd in (("runs", "list"), ("runs", "recover"), ("runs", "show", run_id)):
        gitml_cli(repo, *cmd)


SHORT_WRITES = """
    import json, os, resource, signal
    from gitml.tracking.commit import live_dir
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    run = gitml.start_run(run_name="full-disk")
    gitml.log_param("alpha", "0.5")
    path = next(p for p in live_dir(gitml.tracking.runs.open_repo()).glob(run.info.run_id + ".*.log"))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(path) + 1000, hard))
    acked, failed = [], 0
    for i in range(100):
        try:
            gitml.log_metric("loss", i + 0.123456789, step=i)
            acked.append(i)
        except OSError:
            failed += 1
    try:
        gitml.set_tag("during", "full")
    except OSError:
        failed += 1
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
    for i in range(100, 120):
        gitml.log_metric("loss", i + 0.123456789, step=i)
        acked.append(i)
    gitml.set_tag("after", "space")
    say("ready", run.info.run_id, failed, json.dumps(acked, separators=(",", ":")))
    wait_for_go()
"""


def test_short_writes_on_a_full_disk_lose_nothing_acknowledged_and_tear_nothing(repo, tracking, spawn):
    """Issue 14 (14): after ENOSPC a torn last line could merge with the next one. A short write is
    finished or raises; the torn line is closed off and marked, so recovery keeps exactly the
    points whose log_metric returned, and the lines logged once there was space again."""
    child = spawn(SHORT_WRITES, env=NO_FLUSHER)
    run_id, failed, acked = child.expect("ready")
    acked = json.loads(acked)
    assert int(failed) > 0 and len(acked) > 20, (failed, acked)
    (log,) = live_files(repo)
    assert b"~torn" in log.read_bytes()
    child.kill()
    gitml_cli(repo, "runs", "recover")
    assert raw_points(repo, run_id, "loss") == [(i, i + 0.123456789) for i in acked]
    run = tracking.Client(repo).get_run(run_id)
    assert run.data.tags["after"] == "space" and run.data.params == {"alpha": "0.5"}
    assert run.info.status == "KILLED"
    assert not (repo / ".git" / "gitml" / "live-failed").exists()
