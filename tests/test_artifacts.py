"""Artifacts in the DVC-layout content store: logging, listing, downloading, integrity."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitml.errors import CorruptRun, InvalidName, InvalidValue
from tests.conftest import git, run_rev


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def cache_object(repo: Path, digest: str, cache: str = ".git/gitml/cache") -> Path:
    return repo / cache / "files" / "md5" / digest[:2] / digest[2:]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha\n")
    (d / "sub" / "b.bin").write_bytes(os.urandom(1000))
    return d


def test_log_artifact_stores_content_addressed(tracking, repo, tmp_path):
    f = tmp_path / "model.pkl"
    f.write_bytes(b"weights" * 100)
    with tracking.start_run() as run:
        tracking.log_artifact(f)
        tracking.log_artifact(f, "models/v1")
    manifest = json.loads(git(repo, "show", f"{run_rev(repo, run.info.run_id)}:artifacts.json"))
    digest = md5(f.read_bytes())
    assert manifest == {
        "model.pkl": {"md5": digest, "size": 700},
        "models/v1/model.pkl": {"md5": digest, "size": 700},
    }
    obj = cache_object(repo, digest)
    assert obj.read_bytes() == f.read_bytes()
    assert not os.access(obj, os.W_OK) or os.geteuid() == 0  # read-only, as DVC makes it
    assert oct(obj.stat().st_mode & 0o777) == "0o444"


def test_same_file_logged_twice_is_stored_once(tracking, repo, tmp_path):
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(2_000_000))
    with tracking.start_run():
        tracking.log_artifact(f, "one")
    with tracking.start_run():
        tracking.log_artifact(f, "two")
    objects = [p for p in (repo / ".git/gitml/cache/files/md5").rglob("*") if p.is_file()]
    assert len(objects) == 1


def test_log_artifacts_directory_and_dir_object(tracking, repo, data_dir):
    with tracking.start_run() as run:
        tracking.log_artifacts(data_dir, "data")
    rid = run.info.run_id
    manifest = json.loads(git(repo, "show", f"{run_rev(repo, rid)}:artifacts.json"))
    assert set(manifest) == {"data/", "data/a.txt", "data/sub/b.bin"}
    dir_md5 = manifest["data/"]["md5"]
    assert dir_md5.endswith(".dir")
    listing = json.loads(cache_object(repo, dir_md5).read_text())
    assert sorted(e["relpath"] for e in listing) == ["a.txt", "sub/b.bin"]
    client = tracking.Client()
    assert [(f.path, f.is_dir) for f in client.list_artifacts(rid)] == [("data", True)]
    assert [(f.path, f.is_dir, f.file_size) for f in client.list_artifacts(rid, "data")] == [
        ("data/a.txt", False, 6), ("data/sub", True, 1000)]


def test_download_round_trip(tracking, data_dir, tmp_path):
    with tracking.start_run() as run:
        tracking.log_artifacts(data_dir)
    dst = tmp_path / "dl"
    local = tracking.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=dst)
    assert Path(local) == dst
    assert (dst / "a.txt").read_text() == "alpha\n"
    assert (dst / "sub" / "b.bin").read_bytes() == (data_dir / "sub" / "b.bin").read_bytes()
    one = tracking.Client().download_artifacts(run.info.run_id, "sub/b.bin", str(tmp_path / "one"))
    assert Path(one).read_bytes() == (data_dir / "sub" / "b.bin").read_bytes()


def test_log_dict_text_and_load(tracking):
    with tracking.start_run() as run:
        tracking.log_dict({"lr": 0.1, "layers": [1, 2]}, "config.json")
        tracking.log_dict({"lr": 0.1}, "config.yaml")
        tracking.log_text("hello <b>", "notes/readme.txt")
    rid = run.info.run_id
    assert tracking.artifacts.load_dict(f"runs:/{rid}/config.json") == {"lr": 0.1, "layers": [1, 2]}
    assert tracking.artifacts.load_dict(f"runs:/{rid}/config.yaml") == {"lr": 0.1}
    assert tracking.artifacts.load_text(f"runs:/{rid}/notes/readme.txt") == "hello <b>"


def test_log_figure_and_image(tracking):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pytest.importorskip("PIL")
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    with tracking.start_run() as run:
        tracking.log_figure(fig, "plots/curve.png")
        tracking.log_image(np.zeros((4, 5, 3), dtype=np.uint8), "images/black.png")
        tracking.log_image(np.ones((2, 2)) * 0.5, key="gray", step=3)
    plt.close(fig)
    paths = {f.path for f in tracking.Client().list_artifacts(run.info.run_id, "images")}
    assert "images/black.png" in paths and len(paths) == 3  # + gray's image and its thumbnail
    from PIL import Image

    local = tracking.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="images/black.png")
    assert Image.open(local).size == (5, 4)
    png = tracking.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="plots/curve.png")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_images_logged_per_step_use_mlflows_layout_both_ways(tracking, tmp_path, monkeypatch):
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    from PIL import Image

    from gitml.tracking.artifacts import manifest, stepped_images
    from gitml.tracking.runs import open_repo

    with tracking.start_run() as run:
        for step in (0, 5, 10):
            tracking.log_image(np.full((300, 600, 3), step * 20, dtype=np.uint8), key="samples/train", step=step)
        with pytest.raises(tracking.GitmlError, match="not both"):
            tracking.log_image(np.zeros((2, 2)), "a.png", key="x", step=1)
        with pytest.raises(tracking.GitmlError, match="Invalid image key"):
            tracking.log_image(np.zeros((2, 2)), key="bad:key", step=1)
    got = tracking.get_run(run.info.run_id)
    assert got.data.tags["mlflow.loggedImages"] == "True"
    files = manifest(open_repo(str(tracking.get_tracking_uri())), run.info.run_id)
    images = stepped_images(files)
    assert list(images) == ["samples/train"] and [i["step"] for i in images["samples/train"]] == [0, 5, 10]
    thumb = tracking.artifacts.download_artifacts(run_id=run.info.run_id,
                                                  artifact_path=images["samples/train"][0]["thumbnail"])
    assert Image.open(thumb).size == (256, 128)  # MLflow's thumbnail: at most 256 px a side
    full = tracking.artifacts.download_artifacts(run_id=run.info.run_id,
                                                 artifact_path=images["samples/train"][1]["path"])
    assert Image.open(full).size == (600, 300) and Image.open(full).getpixel((0, 0)) == (100, 100, 100)

    import mlflow  # the same call on real MLflow names its files so that gitml reads them

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        # an experiment of its own, not made active: other tests' MLflow runs must not land in it
        with mlflow.start_run(experiment_id=mlflow.create_experiment("images")) as theirs:
            for step in (1, 2):
                mlflow.log_image(np.zeros((20, 10, 3), dtype=np.uint8), key="samples/train", step=step)
        local = Path(mlflow.artifacts.download_artifacts(run_id=theirs.info.run_id))
    finally:
        mlflow.set_tracking_uri(None)
    listed = [p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()]
    theirs_images = stepped_images(listed)
    assert list(theirs_images) == ["samples/train"] and [i["step"] for i in theirs_images["samples/train"]] == [1, 2]
    assert all(i["path"] and i["thumbnail"] for i in theirs_images["samples/train"])
    import re

    def shape(name: str) -> str:
        return re.sub(r"\d+", "N", re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "UUID", name))

    assert {shape(n) for n in listed} == {shape(n) for n in files}  # the same file names, but for the numbers


@pytest.mark.parametrize("bad", ["../escape", "/abs/path", "a/../../b", "C:/win", "tab\there"])
def test_bad_artifact_paths_refused(tracking, tmp_path, bad):
    f = tmp_path / "x.txt"
    f.write_text("x")
    with tracking.start_run() as run:
        with pytest.raises(InvalidName, match="Invalid artifact path"):
            tracking.log_artifact(f, bad)
    assert tracking.Client().list_artifacts(run.info.run_id) == []


def test_missing_file_is_an_error_naming_it(tracking, tmp_path):
    with tracking.start_run():
        with pytest.raises(InvalidValue, match="nope.txt"):
            tracking.log_artifact(tmp_path / "nope.txt")
        with pytest.raises(InvalidValue, match="nodir"):
            tracking.log_artifacts(tmp_path / "nodir")


def test_symlink_out_of_logged_dir_refused(tracking, data_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not log")
    (data_dir / "leak").symlink_to(secret)
    with tracking.start_run() as run:
        with pytest.raises(InvalidValue, match="outside"):
            tracking.log_artifacts(data_dir)
    assert tracking.Client().list_artifacts(run.info.run_id) == []


def test_symlink_inside_logged_dir_followed(tracking, data_dir):
    (data_dir / "alias.txt").symlink_to(data_dir / "a.txt")
    with tracking.start_run() as run:
        tracking.log_artifacts(data_dir)
    assert tracking.artifacts.load_text(f"runs:/{run.info.run_id}/alias.txt") == "alpha\n"


def test_corrupted_cache_object_is_an_error_naming_it(tracking, repo, tmp_path):
    from gitml.store.content import CorruptObject

    f = tmp_path / "m.bin"
    f.write_bytes(b"original")
    with tracking.start_run() as run:
        tracking.log_artifact(f)
    obj = cache_object(repo, md5(b"original"))
    obj.chmod(0o644)
    obj.write_bytes(b"tampered")
    dst = tmp_path / "dl"
    with pytest.raises(CorruptObject, match=str(obj)):
        tracking.Client().download_artifacts(run.info.run_id, "m.bin", str(dst))
    assert not (dst / "m.bin").exists()
    with pytest.raises(CorruptObject):
        tracking.artifacts.load_text(f"runs:/{run.info.run_id}/m.bin")


def test_artifacts_survive_sigkill(repo, tmp_path):
    """A run killed after log_artifact returned keeps the artifact after recovery."""
    f = tmp_path / "w.bin"
    f.write_bytes(b"w" * 1000)
    code = (
        "import gitml, os, signal, sys\n"
        "gitml.start_run()\n"
        f"gitml.log_artifact({str(f)!r})\n"
        "print(gitml.active_run().info.run_id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    run_id = out.stdout.strip()
    assert out.returncode == -9 and len(run_id) == 32
    import gitml

    gitml.set_tracking_uri(repo)
    try:
        run = gitml.get_run(run_id)
        assert run.info.status == "KILLED"
        assert [a.path for a in gitml.Client().list_artifacts(run_id)] == ["w.bin"]
    finally:
        gitml.set_tracking_uri(None)


def test_keeps_its_own_cache_when_repo_uses_dvc(tracking, repo, tmp_path):
    """With DVC set up, artifacts still go to gitml's cache: in DVC's, `dvc gc` would delete them (no
    .dvc file names a run's artifacts; tests/test_gc.py runs the real `dvc gc`). DVC's cache is read
    as a fallback: an object only there (stored by an older gitml) is copied in on first use."""
    dvc = shutil.which("dvc", path=os.path.dirname(sys.executable)) or shutil.which("dvc")
    if dvc is None:
        pytest.skip("dvc not installed")
    subprocess.run([dvc, "init", "-q"], cwd=repo, check=True)
    git(repo, "commit", "-qm", "dvc init")
    f = tmp_path / "weights.bin"
    f.write_bytes(os.urandom(5000))
    with tracking.start_run() as run:
        tracking.log_artifact(f)
    digest = md5(f.read_bytes())
    assert cache_object(repo, digest).read_bytes() == f.read_bytes()
    assert not cache_object(repo, digest, ".dvc/cache").exists()
    legacy = cache_object(repo, digest, ".dvc/cache")
    legacy.parent.mkdir(parents=True)
    os.replace(cache_object(repo, digest), legacy)
    assert tracking.Client().download_artifacts(run.info.run_id, "weights.bin", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "weights.bin").read_bytes() == f.read_bytes()
    assert cache_object(repo, digest).read_bytes() == f.read_bytes() and legacy.exists()


def test_hostile_manifest_path_cannot_escape_download_dir(tracking, repo, tmp_path):
    """A run pushed by someone else may carry any artifacts.json: downloads never leave dst."""
    f = tmp_path / "ok.txt"
    f.write_text("ok")
    with tracking.start_run() as run:
        tracking.log_artifact(f)
    rid = run.info.run_id
    ref = f"refs/gitml/runs/{rid}"  # a run's own ref overrides its ledger entry
    rev = run_rev(repo, rid)
    digest = md5(b"ok")
    evil = json.dumps({"../../escaped.txt": {"md5": digest, "size": 2}})
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=evil, capture_output=True,
                          text=True, check=True).stdout.strip()
    listing = git(repo, "ls-tree", rev).replace(
        git(repo, "rev-parse", f"{rev}:artifacts.json").strip(), blob)
    tree = subprocess.run(["git", "mktree"], cwd=repo, input=listing, capture_output=True, text=True,
                          check=True).stdout.strip()
    parent = git(repo, "rev-parse", f"{rev}^").strip()
    commit = git(repo, "commit-tree", tree, "-p", parent, "-m", "tampered").strip()
    git(repo, "update-ref", ref, commit)
    dst = tmp_path / "dst" / "inner"
    with pytest.raises(CorruptRun, match="escaped"):
        tracking.Client().download_artifacts(rid, "", str(dst))
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "dst" / "escaped.txt").exists()


def test_symlinked_dir_inside_not_walked_twice(tracking, data_dir):
    (data_dir / "again").symlink_to(data_dir / "sub", target_is_directory=True)
    (data_dir / "sub" / "loop").symlink_to(data_dir, target_is_directory=True)  # a cycle back to the root
    with tracking.start_run() as run:
        tracking.log_artifacts(data_dir)
    paths = {f.path for f in tracking.Client().list_artifacts(run.info.run_id)}
    assert paths == {"a.txt", "sub"}
    assert {f.path for f in tracking.Client().list_artifacts(run.info.run_id, "sub")} == {"sub/b.bin"}
