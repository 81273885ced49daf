"""Long runs (issue 17, item 5): what a run of a million points keeps bounded.

A flush writes its new points plus the last chunk of each key it extends,
whatever the run's history; the points waiting in memory and the live log
stay bounded; the names gitml hands to pygit2 are not leaked; a history of
100k points reads back exactly. Everything is checked on real repositories,
with the ``git`` binary where it matters that gitml's own reading is not
involved. No timings here: those are in ``bench/bench_long_runs.py``.
"""

from __future__ import annotations

import gc
import math
import signal
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from conftest import git, git_run_ids, gitml_cli, run_python, run_rev
from gitml.errors import InvalidValue
from gitml.tracking import writer
from gitml.tracking.entities import Metric, metric_entities
from gitml.tracking.events import log_header, parse_header
from gitml.tracking.runfiles import CHUNK_LINES, _parse_columns, read_metric_columns

# -- reading a run with plain git ----------------------------------------------------------------


def chunk_blobs(repo: Path, commit: str, key: str) -> dict[str, str]:
    """Chunk file name -> blob oid of metric ``key`` in ``commit``."""
    out = {}
    for line in git(repo, "ls-tree", commit, f"metrics/{key}/").splitlines():
        meta, path = line.split("\t")
        out[path.rsplit("/", 1)[1]] = meta.split()[2]
    return out


def committed_points(repo: Path, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of each point of ``key`` the run's commit holds (none before its first flush)."""
    if run_id not in git_run_ids(repo):
        return []
    commit = run_rev(repo, run_id)
    points = []
    for name in sorted(chunk_blobs(repo, commit, key)):
        for line in git(repo, "show", f"{commit}:metrics/{key}/{name}").splitlines():
            step, _, value = line.split("\t")
            points.append((int(step), float(value)))
    return points


def live_logs(repo: Path) -> list[Path]:
    live = repo / ".git" / "gitml" / "live"
    return sorted(live.iterdir()) if live.exists() else []


# -- 1. a flush writes what is new, not the history ------------------------------------------------


def test_a_flush_rewrites_only_the_last_chunk_and_adds_new_ones(repo, tracking):
    """Issue 17 (5): after 3.5 chunks of history, a flush of 1.5 chunks more leaves the three full
    chunks' blobs as they were, extends the half chunk (its old lines first), adds the new chunks,
    and leaves the subtree of a key it did not touch alone."""
    run = tracking.start_run()
    run_id = run.info.run_id
    first = 3 * CHUNK_LINES + CHUNK_LINES // 2
    for i in range(first):
        tracking.log_metric("loss", 1.0 / (i + 1), step=i)
        tracking.log_metric("acc", i * 0.5, step=i)
    tracking.flush()
    before = run_rev(repo, run_id)
    for i in range(first, first + CHUNK_LINES + CHUNK_LINES // 2 + 7):
        tracking.log_metric("loss", 1.0 / (i + 1), step=i)
    tracking.flush()
    after = run_rev(repo, run_id)

    old, new = chunk_blobs(repo, before, "loss"), chunk_blobs(repo, after, "loss")
    assert sorted(old) == ["000000.tsv", "000001.tsv", "000002.tsv", "000003.tsv"]
    assert sorted(new) == [*sorted(old), "000004.tsv", "000005.tsv"]
    assert [new[n] for n in ("000000.tsv", "000001.tsv", "000002.tsv")] == \
        [old[n] for n in ("000000.tsv", "000001.tsv", "000002.tsv")]
    assert new["000003.tsv"] != old["000003.tsv"]
    half = git(repo, "cat-file", "blob", old["000003.tsv"])
    full = git(repo, "cat-file", "blob", new["000003.tsv"])
    assert full.startswith(half) and full.count("\n") == CHUNK_LINES
    assert git(repo, "rev-parse", f"{before}:metrics/acc") == git(repo, "rev-parse", f"{after}:metrics/acc")

    tracking.end_run()
    history = tracking.Client().get_metric_history(run_id, "loss")
    total = first + CHUNK_LINES + CHUNK_LINES // 2 + 7
    assert [(m.step, m.value) for m in history] == [(i, 1.0 / (i + 1)) for i in range(total)]


def test_a_flush_after_another_writer_extends_the_chunk_that_writer_left(repo, tracking):
    """A writer keeps the last chunk of each key it flushed; when another process has committed to
    the run since, it must extend what that process left, not its own stale copy."""
    run = tracking.start_run()
    run_id = run.info.run_id
    for i in range(CHUNK_LINES - 3):
        tracking.log_metric("loss", float(i), step=i)
    tracking.flush()
    out = run_python(textwrap.dedent(f"""\
        import gitml
        client = gitml.Client({str(repo)!r})
        for i in range({CHUNK_LINES - 3}, {CHUNK_LINES + 7}):
            client.log_metric({run_id!r}, "loss", float(i), step=i)
        client.flush()
        """), repo)
    assert out.returncode == 0, out.stderr
    for i in range(CHUNK_LINES + 7, CHUNK_LINES + 17):
        tracking.log_metric("loss", float(i), step=i)
    tracking.flush()

    assert committed_points(repo, run_id, "loss") == [(i, float(i)) for i in range(CHUNK_LINES + 17)]
    commit = run_rev(repo, run_id)
    lines = [git(repo, "show", f"{commit}:metrics/loss/{n}").count("\n") for n in ("000000.tsv", "000001.tsv")]
    assert lines == [CHUNK_LINES, 17]


# -- 2. memory: the events waiting for a flush ------------------------------------------------------


def test_events_waiting_in_memory_are_bounded(repo, tracking, monkeypatch):
    """Issue 17 (5): with the default flush interval a fast loop logged a whole 1M-point run into
    memory before the first flush (250 MB). Now at most 2 * MAX_PENDING events wait, flusher or not."""
    monkeypatch.setattr(writer, "MAX_PENDING", 100)
    run = tracking.start_run()
    for i in range(1500):
        tracking.log_metric("loss", float(i), step=i)
        if i % 100 == 99:
            waiting = (i + 1) - len(committed_points(repo, run.info.run_id, "loss"))
            assert waiting <= 2 * writer.MAX_PENDING, f"{waiting} points not committed after {i + 1}"
    tracking.end_run()
    assert committed_points(repo, run.info.run_id, "loss") == [(i, float(i)) for i in range(1500)]


# -- 3. the live log --------------------------------------------------------------------------------


def test_the_live_log_starts_again_once_git_holds_its_events(repo, tracking, monkeypatch):
    """Issue 17 (5): a live log grew with every point of a run (32 MB for 1M points), all of it
    already in git. After a flush that leaves it longer than ROTATE_BYTES it holds only a header
    that numbers what comes next."""
    monkeypatch.setattr(writer, "ROTATE_BYTES", 4096)
    run = tracking.start_run()
    bases = []
    for r in range(5):
        for i in range(500 * r, 500 * (r + 1)):
            tracking.log_metric("loss", float(i), step=i)
        tracking.flush()
        (log,) = live_logs(repo)
        data = log.read_bytes()
        assert data.count(b"\n") == 1  # the header alone: every event is in git
        header = parse_header(data.rstrip(b"\n"))
        assert header is not None and header.run_id == run.info.run_id
        bases.append(header.base)
    assert [b - bases[0] for b in bases] == [0, 500, 1000, 1500, 2000]
    tracking.end_run()
    assert live_logs(repo) == []
    history = tracking.Client().get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(i, float(i)) for i in range(2500)]


KILLED_AFTER_ROTATING = """\
import os, signal, sys
import gitml
from gitml.tracking import writer

writer.ROTATE_BYTES = 2000
run = gitml.start_run()
gitml.log_param("alpha", "0.5")
for i in range(300):
    gitml.log_metric("loss", float(i), step=i)
gitml.flush()
for i in range(300, 450):
    gitml.log_metric("loss", float(i), step=i)
gitml.flush()
for i in range(450, 500):  # in the new live log only
    gitml.log_metric("loss", float(i), step=i)
gitml.set_tag("phase", "late")
print(run.info.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writer_s_started_again_log_is_recovered_exactly(repo, tracking):
    """A writer SIGKILLed after its log started again: recovery numbers the log's events from its
    header's base, so git gets each of them once. A ``.next`` file (a log the writer was killed
    writing) is removed with it."""
    out = run_python(KILLED_AFTER_ROTATING, repo, env={"GITML_FLUSH_INTERVAL": "0"})
    assert out.returncode == -signal.SIGKILL, out.stderr
    run_id = out.stdout.split()[0]
    (log,) = live_logs(repo)
    header = parse_header(log.read_bytes().split(b"\n", 1)[0])
    assert header is not None and header.base > 0
    assert len(committed_points(repo, run_id, "loss")) == 450
    log.with_name(log.name + ".next").write_bytes(log_header(run_id, header.writer_id, 1, header.base + 3))

    assert gitml_cli(repo, "runs", "recover").stdout.split() == ["recovered", run_id]
    assert live_logs(repo) == []
    assert committed_points(repo, run_id, "loss") == [(i, float(i)) for i in range(500)]
    got = tracking.Client().get_run(run_id)
    assert got.info.status == "KILLED"
    assert got.data.params == {"alpha": "0.5"}
    assert got.data.tags["phase"] == "late"


def test_live_log_headers_round_trip():
    run_id, writer_id = "a" * 32, "0123456789abcdef"
    start = log_header(run_id, writer_id, 42)
    assert start.startswith(b"gitml-live 1\t")  # what older gitml reads
    assert parse_header(start.rstrip(b"\n")) == (run_id, writer_id, 0)
    again = log_header(run_id, writer_id, 42, base=1234)
    assert parse_header(again.rstrip(b"\n")) == (run_id, writer_id, 1234)
    ids = f"{run_id}\t{writer_id}\t42"
    for bad in (f"gitml-live 2\t{ids}", f"gitml-live 2\t{ids}\t-5", f"gitml-live 2\t{ids}\t\u00b2",
                f"gitml-live 3\t{ids}\t5"):
        assert parse_header(bad.encode()) is None


# -- 4. memory: what pygit2 and libgit2 keep ---------------------------------------------------------


def test_names_handed_to_pygit2_are_not_leaked(repo):
    """pygit2 1.21 keeps a reference to every str it converts to a path, so each flush's fresh
    ref names and paths stayed in memory for good (~0.7 KB a flush). Now each distinct name is
    kept once, however often it is used."""
    from gitml.store.repo import GitRepo

    grepo = GitRepo.discover(repo)
    tree = grepo.update_tree(None, {"metrics/loss/000000.tsv": b"0\t1\t2.0\n", "run.json": b"{}\n"})
    ref = "refs/gitml/runs/" + "b" * 32
    assert grepo.cas_ref(ref, grepo.write_commit(tree, [], "x\n"), None)

    def use(n: int) -> None:
        for i in range(n):
            grepo.ref_target("".join(["refs/gitml/runs/", "b" * 32]))
            grepo.list_dir(tree, "/".join(["metrics", "loss"]))
            grepo.read_path(tree, "/".join(["metrics", "loss", "000000.tsv"]))
            grepo.update_tree(tree, {"/".join(["metrics", "loss", "000000.tsv"]): b"0\t1\t%d.0\n" % (i % 3)})

    use(50)
    gc.collect()
    tracemalloc.start()
    try:
        use(2000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert grown < 20_000, f"{grown} bytes kept after 2000 rounds"  # leaking: ~400 KB


def test_libgit2_object_cache_is_capped(repo):
    """libgit2's process-wide cache of trees and commits read (256 MB by default) grew by each
    flush's new trees; gitml caps it."""
    import pygit2

    from gitml.store.repo import LIBGIT2_CACHE_BYTES, GitRepo

    GitRepo.discover(repo).head()
    assert pygit2.settings.cached_memory[1] == LIBGIT2_CACHE_BYTES


MANY_FLUSHES = """\
import os, sys
import gitml

run = gitml.start_run()
for i in range(300):
    gitml.log_metric("loss", float(i), step=i)
    gitml.flush()  # a pack each; past 40 packs git repacks them in the background
packs = 0
for fd in os.listdir("/proc/self/fd"):
    try:
        packs += ".pack" in os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        pass
gitml.end_run()
print(packs)
"""


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts open files through /proc")
def test_a_long_run_does_not_keep_every_pack_it_wrote_open(repo, tracking):
    """Each flush writes a pack, and libgit2 never lets go of a pack it has opened (even once a
    repack has deleted it): 300 flushes held ~300 open files and their maps. gitml has it release
    them every RELEASE_AFTER_PACKS packs."""
    from gitml.store.repo import RELEASE_AFTER_PACKS

    out = run_python(MANY_FLUSHES, repo, env={"GITML_FLUSH_INTERVAL": "0"})
    assert out.returncode == 0, out.stderr
    open_packs = int(out.stdout.split()[-1])
    on_disk = len(list((repo / ".git" / "objects" / "pack").glob("*.pack")))
    assert open_packs <= RELEASE_AFTER_PACKS + on_disk, f"{open_packs} pack files open"


# -- 5. long histories ----------------------------------------------------------------------------------


SPECIAL = [0.0, -0.0, 1.5, -2.25, 1e-300, 1e300, float("nan"), float("inf"), float("-inf"), 0.1, 3.0]


def test_a_history_of_100k_points_reads_back_exactly(repo, tracking):
    """Issue 17 (5): 100k points (NaN, infinities, signed zero, repeated and negative steps, given
    timestamps) come back from get_metric_history exactly, in logging order."""
    n = 100_000
    points = [((i * 7919) % 1000 - 500 if i % 3 else i, 1_700_000_000_000 + i // 2,
               SPECIAL[i % len(SPECIAL)] * (i % 13)) for i in range(n)]
    run = tracking.start_run()
    for step, ts, value in points:
        tracking.log_metric("loss", value, step=step, timestamp=ts)
    tracking.end_run()
    history = tracking.Client().get_metric_history(run.info.run_id, "loss")
    assert len(history) == n
    assert [(m.step, m.timestamp, repr(m.value)) for m in history] == [(s, t, repr(v)) for s, t, v in points]
    assert all(type(m) is Metric and m.key == "loss" for m in history[:: n // 100])


def _read_line_by_line(text: str) -> tuple[list[int], list[int], list[float]]:
    """What each line's int/int/float gives: the meaning the fast reader must keep."""
    steps, times, values = [], [], []
    for line in text.splitlines():
        step, ts, value = line.split("\t")
        steps.append(int(step))
        times.append(int(ts))
        values.append(float(value))
    return steps, times, values


FOREIGN_CHUNKS = [
    "", "1\t2\t3.5\n", "1\t2\t3.5", "-4\t0\t-0.0\n", "1\t2\tnan\n3\t4\tinf\n5\t6\t-inf\n", "1\t2\t5\n",
    "1\t2\t1e400\n", "1\t2\t1e-05\n", "+1\t2\t3.0\n", "007\t2\t3.0\n", "1\t2\t.5\n", "1 \t2\t3.0\n",
    "1\t2\t3.0\r\n4\t5\t6.0\r\n", "1\t2\tNaN\n", "1\t2\t1_0\n",
    # not three numbers a line: the reader must refuse them, however the tokens add up
    "1\t2\t3\t4\n5\t6\n", "1\t2\n3\t4\t5\t6\n", "1\t2\t3\t4\t5\t6\t7.0\n", "1.5\t2\t3.0\n",
    "1\t2\ttrue\n", "1\t2\tnull\n",
    "1,2\t3\t4.0\n", "[1\t2\t3.0]\n", "1\t2\t\n", "1\t2\t3.0\n\n", "nan\t2\t3.0\n", "1\t2\tinfinf\n",
    "1\t2\t" + "9" * 400 + "\n",
]


@pytest.mark.parametrize("text", FOREIGN_CHUNKS)
def test_the_fast_metric_reader_agrees_with_a_line_by_line_reading(repo, text):
    """Chunk text from elsewhere: read_metric_columns gives exactly what int/int/float of each
    line gives, or refuses it (InvalidValue) where those raise."""
    from gitml.store.repo import GitRepo

    grepo = GitRepo.discover(repo)
    tree = grepo.update_tree(None, {"metrics/m/000000.tsv": text.encode(), "run.json": b"{}\n"})
    try:
        expected = _read_line_by_line(text)
    except ValueError:
        with pytest.raises(InvalidValue):
            read_metric_columns(grepo, tree, "m")
        return
    got = read_metric_columns(grepo, tree, "m")
    assert (got[0], got[1]) == (expected[0], expected[1])
    assert [repr(v) for v in got[2]] == [repr(v) for v in expected[2]]
    assert all(type(v) is float for v in got[2]) and all(type(s) is int for s in got[0] + got[1])


def test_gitml_written_chunks_take_the_fast_reader():
    lines = "".join(f"{s}\t{1_700_000_000_000 + s}\t{v!r}\n" for s, v in enumerate(SPECIAL * 10))
    parsed = _parse_columns(lines)
    assert parsed is not None
    assert (parsed[0], parsed[1], [repr(v) for v in parsed[2]]) == \
        (lambda c: (c[0], c[1], [repr(v) for v in c[2]]))(_read_line_by_line(lines))


def test_metric_entities_are_metrics():
    made = metric_entities("loss", [3, 4], [10, 11], [0.5, math.inf])
    assert made == [Metric("loss", 0.5, 10, 3), Metric("loss", math.inf, 11, 4)]
    assert hash(made[0]) == hash(Metric("loss", 0.5, 10, 3))
    assert repr(made[0]) == repr(Metric("loss", 0.5, 10, 3))
    with pytest.raises(AttributeError):
        made[0].value = 1.0  # type: ignore[misc]

