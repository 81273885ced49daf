"""gitml as MLflow's model registry store (issue 16), side by side with MLflow's own sqlite registry.

Every call goes through real mlflow 3 client code to both ``registry_uri="gitml:<repo>"`` and
``registry_uri="sqlite:///..."``; the returned entities are compared field by field (all but
timestamps, which gitml keeps to the second in tags, and ``user_id``, which gitml fills with the
tagger). What was written is read back through gitml's API, ``gitml models ... --json`` and the
real ``gto show --json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import git, gitml_cli, gitml_invoke, run_python, run_rev

pytest.importorskip("sklearn")
pytest.importorskip("gto")
mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

warnings.filterwarnings("ignore", message="Failure attempting to register")  # wt-a's stores, not here

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # MLflow deprecates stages; gitml keeps them

X = np.arange(12, dtype=float).reshape(-1, 2)
SKIP = {"creation_timestamp", "last_updated_timestamp", "user_id"}


def gto(cwd: Path, *args: str) -> Any:
    out = subprocess.run([str(Path(sys.executable).parent / "gto"), *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if "--json" in args else out.stdout


def log_models(gitml: Any, n: int) -> list[str]:
    """``n`` runs, each with a linear model (y = k * sum(x)) at ``model``; their ids."""
    from sklearn.linear_model import LinearRegression

    ids = []
    for k in range(1, n + 1):
        with gitml.start_run() as run:
            gitml.sklearn.log_model(LinearRegression().fit(X, k * X.sum(axis=1)), name="model")
            ids.append(run.info.run_id)
    return ids


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow sqlite registry for the module (creating its tables takes a second); tests use their own names."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/registry.db"


class Both:
    """The same MlflowClient calls against the gitml store and against MLflow's sqlite store."""

    def __init__(self, repo: Path, sqlite: str, prefix: str) -> None:
        self.repo = repo
        self.git = MlflowClient(tracking_uri=sqlite, registry_uri=f"gitml:{repo}")
        self.sql = MlflowClient(tracking_uri=sqlite, registry_uri=sqlite)
        self.prefix = prefix

    def call(self, method: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Call both; return (gitml's result, sqlite's), with sqlite's names mapped back."""
        ours = getattr(self.git, method)(*args, **kwargs)
        theirs = getattr(self.sql, method)(*self._sql(args), **{k: self._sql_one(v) for k, v in kwargs.items()})
        return ours, theirs

    def same(self, method: str, *args: Any, **kwargs: Any) -> Any:
        ours, theirs = self.call(method, *args, **kwargs)
        a, b = norm(ours, self.prefix), norm(theirs, self.prefix)
        if isinstance(a, list):  # MLflow does not order get_latest_versions
            a, b = sorted(a, key=repr), sorted(b, key=repr)
        assert a == b, method
        return ours

    def error(self, method: str, *args: Any, **kwargs: Any) -> str:
        """Both raise MlflowException with the same error code; return it."""
        codes = []
        for client, a, kw in ((self.git, args, kwargs),
                              (self.sql, self._sql(args), {k: self._sql_one(v) for k, v in kwargs.items()})):
            with pytest.raises(MlflowException) as e:
                getattr(client, method)(*a, **kw)
            codes.append(e.value.error_code)
        assert codes[0] == codes[1], (method, args, codes)
        return codes[0]

    def _sql_one(self, v: Any) -> Any:
        if isinstance(v, str) and v.startswith("M:"):
            return self.prefix + v[2:]
        if isinstance(v, str) and v.startswith("models:/M:"):
            return "models:/" + self.prefix + v[len("models:/M:"):]
        return v

    def _sql(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(self._sql_one(a) for a in args)


def norm(x: Any, prefix: str) -> Any:
    """An MLflow entity (or list of them) as plain data to compare: no timestamps or user, versions as
    strings, the sqlite side's test prefix dropped from names."""
    if isinstance(x, list):
        return [norm(i, prefix) for i in x]
    if hasattr(x, "_properties"):
        d = {k: norm(v, prefix) for k, v in dict(x).items() if k not in SKIP}
        if "version" in d:
            d["version"] = str(d["version"])
        if isinstance(d.get("aliases"), dict):
            d["aliases"] = {k: str(v) for k, v in d["aliases"].items()}
        if isinstance(d.get("aliases"), list):
            d["aliases"] = sorted(d["aliases"])
        return d
    if isinstance(x, str):
        return x.replace(prefix, "").replace("M:", "")
    return x


def m(name: str) -> str:
    """A model name for both stores: 'M:rf' is 'rf' in git and '<test prefix>rf' in sqlite."""
    return "M:" + name


@pytest.fixture
def both(repo: Path, sqlite_db: str, request: pytest.FixtureRequest, tracking: Any) -> Both:
    prefix = request.node.name.replace("[", "_").replace("]", "_").replace("-", "_") + "_"
    b = Both(repo, sqlite_db, prefix)
    # gitml's side needs plain names: a client that strips the marker
    real = b.git

    class Plain:
        def __getattr__(self, attr: str) -> Any:
            f = getattr(real, attr)

            def call(*args: Any, **kwargs: Any) -> Any:
                strip = (lambda v: v[2:] if isinstance(v, str) and v.startswith("M:")
                         else "models:/" + v[len("models:/M:"):] if isinstance(v, str) and v.startswith("models:/M:")
                         else v)
                return f(*[strip(a) for a in args], **{k: strip(v) for k, v in kwargs.items()})
            return call

    b.git = Plain()  # type: ignore[assignment]
    return b


def refs(repo: Path) -> str:
    return git(repo, "for-each-ref")


def show(repo: Path, name: str) -> dict[str, Any]:
    return json.loads(gitml_invoke(repo, "models", "show", name, "--json").stdout)


# -- the plugin is MLflow's -----------------------------------------------------------------------


def test_mlflow_finds_the_store_through_its_entry_point(repo, sqlite_db):
    from mlflow.tracking._model_registry.utils import _get_store

    from gitml.mlflow_plugin.registry_store import GitmlRegistryStore

    store = _get_store(f"gitml:{repo}")
    assert isinstance(store, GitmlRegistryStore)
    assert isinstance(MlflowClient(sqlite_db, registry_uri=f"gitml://{repo}")._get_registry_client().store, GitmlRegistryStore)
    with pytest.raises(MlflowException, match="Cannot open the gitml registry") as e:
        _get_store(f"gitml:{repo}/nope")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"


# -- registered models -----------------------------------------------------------------------------


def test_registered_model_calls_match_sqlite(both, repo):
    both.same("create_registered_model", m("rf"), tags={"team": "fraud", "tier": "1"}, description="forest")
    both.same("create_registered_model", m("empty"))
    both.same("get_registered_model", m("rf"))
    both.same("update_registered_model", m("rf"), description="random forest")
    both.same("set_registered_model_tag", m("rf"), "tier", "2")
    both.same("delete_registered_model_tag", m("rf"), "team")
    both.same("delete_registered_model_tag", m("rf"), "never-set")
    both.same("get_registered_model", m("rf"))
    both.same("create_registered_model", m("other"), tags={"team": "ads"})
    # a model with no version is in git: gitml's API, the CLI (a new process)
    rm = __import__("gitml").MlflowClient().get_registered_model("rf")
    assert (rm.description, rm.tags, rm.latest_versions) == ("random forest", {"tier": "2"}, [])
    assert dict(rm).keys() == dict(mlflow.entities.model_registry.RegisteredModel("x", 0)).keys()
    assert {x["name"]: x["versions"] for x in json.loads(gitml_invoke(repo, "models", "list", "--json").stdout)} == {
        "empty": 0, "other": 0, "rf": 0}
    assert show(repo, "rf")["description"] == "random forest" and show(repo, "rf")["tags"] == {"tier": "2"}
    # searches: MLflow's grammar, order and pages
    prefix = both.prefix

    def names(page: Any) -> list[str]:
        return [r.name.replace(prefix, "") for r in page]

    for f in ("", "name = 'rf'", "name LIKE '%mpt%'", "name ILIKE 'R%'", "name != 'rf'", "tags.tier = '2'",
              "tags.`team` = 'ads'", "tags.team != 'ads'", "tags.tier LIKE '%'"):
        sql_f = f.replace("'rf'", f"'{prefix}rf'").replace("'R%'", f"'{prefix}R%'")
        ours = both.git.search_registered_models(filter_string=f or None)
        theirs = both.sql.search_registered_models(filter_string=(sql_f or None) and f"{sql_f} AND name LIKE '{prefix}%'"
                                                   or f"name LIKE '{prefix}%'")
        assert names(ours) == names(theirs), f
        assert norm(list(ours), prefix) == norm(list(theirs), prefix), f
    pages = []
    token = None
    while True:
        page = both.git.search_registered_models(max_results=2, page_token=token, order_by=["name DESC"])
        pages.append(names(page))
        token = page.token
        if not token:
            break
    assert pages == [["rf", "other"], ["empty"]]
    both.same("delete_registered_model", m("empty"))
    assert both.error("get_registered_model", m("empty")) == "RESOURCE_DOES_NOT_EXIST"
    both.same("create_registered_model", m("empty"), description="again")  # a deleted name is free
    assert gto(repo, "show", "--json") == {}  # no version yet: nothing for gto
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""


def test_like_and_ilike_fold_case_as_mlflows_sqlite_store(both):
    """Issue 15 (3): ILIKE folds ASCII letters only (SQLite's lower()), LIKE folds nothing, as MLflow's store."""
    for name, owner in (("a", "élodie"), ("b", "Émile"), ("c", "alice"), ("d", "Alice")):
        both.same("create_registered_model", m(name), tags={"owner": owner})
    prefix = both.prefix
    for f in ("tags.owner ILIKE 'A%'", "tags.owner LIKE 'A%'", "tags.owner ILIKE 'É%'", "tags.owner ILIKE 'é%'",
              "tags.owner ILIKE '%LODIE'", "tags.owner LIKE '%lodie'"):
        ours = sorted(r.name for r in both.git.search_registered_models(filter_string=f))
        theirs = sorted(r.name.replace(prefix, "") for r in
                        both.sql.search_registered_models(filter_string=f"{f} AND name LIKE '{prefix}%'"))
        assert ours == theirs, f
    assert sorted(r.name for r in both.git.search_registered_models(filter_string="tags.owner ILIKE 'é%'")) == ["a"]


def test_model_versions_match_sqlite_and_gto_agrees(both, repo, tracking):
    ids = log_models(tracking, 3)
    both.same("create_registered_model", m("rf"))
    for i, run_id in enumerate(ids):
        both.same("create_model_version", m("rf"), f"runs:/{run_id}/model", run_id=run_id,
                  tags={"k": str(i)} if i else None, description="third" if i == 2 else None,
                  run_link="http://ci/1" if i == 1 else None)
    both.same("get_model_version", m("rf"), "2")
    both.same("update_model_version", m("rf"), "2", description="tuned")
    both.same("set_model_version_tag", m("rf"), "2", "k", "changed")
    both.same("set_model_version_tag", m("rf"), "3", "new", "x")
    both.same("delete_model_version_tag", m("rf"), "3", "k")  # set at creation, deleted since
    both.same("delete_model_version_tag", m("rf"), "3", "never")
    both.same("get_model_version", m("rf"), "3")
    both.same("transition_model_version_stage", m("rf"), "1", "Production")
    both.same("transition_model_version_stage", m("rf"), "1", "Staging")  # leaves Production
    both.same("transition_model_version_stage", m("rf"), "2", "Staging", archive_existing_versions=True)
    both.same("get_model_version", m("rf"), "1")
    both.same("transition_model_version_stage", m("rf"), "3", "production")
    both.same("get_latest_versions", m("rf"))
    both.same("get_latest_versions", m("rf"), stages=["staging", "Archived"])
    both.same("set_registered_model_alias", m("rf"), "champion", "2")
    both.same("set_registered_model_alias", m("rf"), "challenger", "2")
    both.same("set_registered_model_alias", m("rf"), "champion", "3")  # an alias moves
    both.same("get_model_version_by_alias", m("rf"), "champion")
    both.same("get_model_version_by_alias", m("rf"), "LATEST")
    both.same("get_registered_model", m("rf"))
    both.same("delete_registered_model_alias", m("rf"), "challenger")
    both.same("delete_registered_model_alias", m("rf"), "never")
    both.same("get_model_version", m("rf"), "2")
    prefix = both.prefix
    for f, sql_f in [("name = 'rf'", f"name = '{prefix}rf'"),
                     (f"run_id IN ('{ids[0]}', '{ids[2]}')", f"run_id IN ('{ids[0]}', '{ids[2]}') AND name = '{prefix}rf'"),
                     ("version_number > 1", f"version_number > 1 AND name = '{prefix}rf'"),
                     ("tags.k = 'changed'", f"tags.k = 'changed' AND name = '{prefix}rf'"),
                     (f"source_path = 'runs:/{ids[1]}/model'", f"source_path = 'runs:/{ids[1]}/model'"),
                     ("name LIKE 'r%' AND tags.new ILIKE 'X'", f"name LIKE '{prefix}r%' AND tags.new ILIKE 'X'")]:
        order = ["version_number ASC"]
        ours = both.git.search_model_versions(f, order_by=order)
        theirs = both.sql.search_model_versions(sql_f, order_by=order)
        assert norm(list(ours), prefix) == norm(list(theirs), prefix), f
    # MLflow's default order is by last update; same set, and pages of it
    assert {v.version for v in both.git.search_model_versions("name = 'rf'")} == {"1", "2", "3"}
    first = both.git.search_model_versions("name = 'rf'", max_results=2, order_by=["version_number DESC"])
    rest = both.git.search_model_versions("name = 'rf'", max_results=2, order_by=["version_number DESC"],
                                          page_token=first.token)
    assert ([v.version for v in first], [v.version for v in rest], rest.token) == (["3", "2"], ["1"], None)
    # read back: gitml's API, the CLI, gto
    shown = show(repo, "rf")
    assert {v["version"]: (v["stages"], v["description"], v["tags"]) for v in shown["versions"]} == {
        "v0.0.1": (["archived"], "Registering model rf version v0.0.1", {}),
        "v0.0.2": (["staging"], "tuned", {"k": "changed"}),
        "v0.0.3": (["champion", "production"], "third", {"new": "x"})}
    assert gto_stages(repo)["rf"] == {"archived": "v0.0.1", "staging": "v0.0.2", "champion": "v0.0.3",
                                      "production": "v0.0.3"}
    mv = __import__("gitml").MlflowClient().get_model_version("rf", 2)
    assert (mv.current_stage, mv.description, mv.tags, mv.run_link) == ("Staging", "tuned", {"k": "changed"}, "http://ci/1")
    assert dict(mv).keys() == dict(mlflow.entities.model_registry.ModelVersion("x", "1", 0)).keys()
    # deleting a version: both forget it, git keeps the tag
    both.same("delete_model_version", m("rf"), "1")
    assert both.error("get_model_version", m("rf"), "1") == "RESOURCE_DOES_NOT_EXIST"
    both.same("get_latest_versions", m("rf"))
    assert "rf@v0.0.1!" in git(repo, "tag", "--list").split()
    assert "archived" not in gto_stages(repo)["rf"]
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""


def gto_stages(repo: Path) -> dict[str, dict[str, str]]:
    return {name: {s: v for s, v in a["stage"].items() if v} for name, a in gto(repo, "show", "--json").items()}


def test_same_run_registered_twice_is_two_versions_and_gto_agrees(both, repo, tracking):
    """Issue 16: registering the same run (same commit) twice under one name makes a new version, as
    MLflow does; GTO reads one version per commit, so the second gets a version commit (same tree)."""
    [run_id] = log_models(tracking, 1)
    both.same("create_registered_model", m("rf"))
    for _ in range(2):
        both.same("create_model_version", m("rf"), f"runs:/{run_id}/model", run_id=run_id)
    v2 = __import__("gitml").register_model(f"runs:/{run_id}/model", "rf")  # gitml's own API too
    assert (v2.version, v2.semver) == ("3", "v0.0.3")
    run_commit = run_rev(repo, run_id)
    commits = [git(repo, "rev-parse", f"rf@v0.0.{i}^{{commit}}").strip() for i in (1, 2, 3)]
    assert commits[0] == run_commit and len(set(commits)) == 3
    for c in commits[1:]:
        assert git(repo, "rev-parse", f"{c}^").strip() == run_commit
        assert git(repo, "rev-parse", f"{c}^{{tree}}").strip() == git(repo, "rev-parse", f"{run_commit}^{{tree}}").strip()
    both.same("transition_model_version_stage", m("rf"), "2", "Production")
    both.same("set_registered_model_alias", m("rf"), "champion", "1")
    shown = gto(repo, "show", "--json")  # does not fail on "multiple versions on one commit"
    assert shown["rf"]["version"] == "v0.0.3"
    assert {s: v for s, v in shown["rf"]["stage"].items() if v} == {"production": "v0.0.2", "champion": "v0.0.1"}
    uris = ["models:/rf/1", "models:/rf/2", "models:/rf/Production", "models:/rf@champion"]
    got = run_python(f"import gitml, numpy\nfor uri in {uris!r}:\n"
                     "    print(gitml.pyfunc.load_model(uri).predict(numpy.ones((1, 2)))[0])", repo)  # a new process
    assert got.returncode == 0, got.stderr
    assert [float(x) for x in got.stdout.split()] == pytest.approx([2.0] * 4)
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""


def test_download_uri_pins_the_versions_run_commit(both, repo, tracking):
    from gitml.tracking import uri as gitml_uri
    from gitml.store.repo import GitRepo
    from gitml.tracking import artifacts

    [run_id] = log_models(tracking, 1)
    both.git.create_registered_model(m("rf"))
    both.git.create_model_version(m("rf"), f"runs:/{run_id}/model", run_id=run_id)
    pinned = git(repo, "rev-parse", "rf@v0.0.1^{commit}").strip()
    with tracking.start_run(run_id=run_id):
        tracking.set_tag("after", "registration")  # the run moves on; the version does not
    assert run_rev(repo, run_id) != pinned
    got = both.git.get_model_version_download_uri(m("rf"), "1")
    assert got == gitml_uri.run_artifact_uri(gitml_uri.tracking_uri(repo), run_id, commit=pinned) + "/model"
    loc = gitml_uri.parse_artifact_uri(got)
    assert (loc.run_id, loc.commit, loc.path) == (run_id, pinned, "model")
    assert "model/MLmodel" in artifacts.manifest(GitRepo.discover(repo), run_id, pinned)
    # the run's artifact URI (with or without the pin) is a source MLflow code gives: same version
    both.git.create_model_version(m("rf"), got, run_id=run_id)
    both.git.create_model_version(m("rf"), gitml_uri.run_artifact_uri(gitml_uri.tracking_uri(repo), run_id) + "/model")
    versions = {v.version: v for v in both.git.search_model_versions("name = 'rf'")}
    assert {v.source for v in versions.values()} == {f"runs:/{run_id}/model"}
    assert git(repo, "rev-parse", "rf@v0.0.2^{tree}").strip() == git(repo, "rev-parse", f"{pinned}^{{tree}}").strip()
    assert git(repo, "rev-parse", "rf@v0.0.3^{commit}").strip() == run_rev(repo, run_id)


def test_copy_model_version_matches_sqlite(both, repo, tracking):
    [run_id] = log_models(tracking, 1)
    both.same("create_registered_model", m("rf"))
    both.same("create_model_version", m("rf"), f"runs:/{run_id}/model", run_id=run_id, tags={"a": "1"},
              description="base", run_link="http://ci/7")
    both.same("set_model_version_tag", m("rf"), "1", "b", "2")
    both.same("copy_model_version", "models:/M:rf/1", m("copy"))  # creates the destination
    both.same("copy_model_version", "models:/M:rf/1", m("copy"))  # a second version of the same commit
    both.same("get_registered_model", m("copy"))
    assert [v["version"] for v in show(repo, "copy")["versions"]] == ["v0.0.1", "v0.0.2"]
    clone = __import__("gitml").MlflowClient().copy_model_version("models:/rf/1", "copy")  # gitml's API
    assert (clone.version, clone.source, clone.tags) == ("3", "models:/rf/1", {"a": "1", "b": "2"})
    assert set(gto(repo, "show", "--json")) == {"rf", "copy"}


def test_rename_moves_everything_and_gto_agrees(both, repo, tracking):
    ids = log_models(tracking, 2)
    both.same("create_registered_model", m("rf"), tags={"team": "fraud"}, description="forest")
    for run_id in ids:
        both.same("create_model_version", m("rf"), f"runs:/{run_id}/model", run_id=run_id, tags={"k": "v"})
    both.same("transition_model_version_stage", m("rf"), "1", "Production")
    both.same("set_registered_model_alias", m("rf"), "champion", "2")
    both.same("update_model_version", m("rf"), "2", description="tuned")
    both.same("delete_model_version_tag", m("rf"), "1", "k")
    gitml_invoke(repo, "models", "comment", "rf", "2", "looks good")
    before = gto_stages(repo)["rf"]
    both.same("rename_registered_model", m("rf"), m("forest"))
    both.same("get_registered_model", m("forest"))
    for v in ("1", "2"):
        both.same("get_model_version", m("forest"), v)
    both.same("get_model_version_by_alias", m("forest"), "champion")
    assert both.error("get_registered_model", m("rf")) == "RESOURCE_DOES_NOT_EXIST"
    assert both.error("get_model_version", m("rf"), "1") == "RESOURCE_DOES_NOT_EXIST"
    # gto: the same versions and stages under the new name; the old name is deprecated
    assert gto_stages(repo) == {"forest": before}
    shown = show(repo, "forest")
    assert [c["text"] for c in shown["versions"][1]["comments"]] == ["looks good"]
    assert (shown["description"], shown["tags"]) == ("forest", {"team": "fraud"})
    predict = "import gitml, numpy; print(gitml.pyfunc.load_model('models:/forest@champion').predict(numpy.ones((1, 2)))[0])"
    assert float(run_python(predict, repo).stdout) == pytest.approx(4.0)
    # the old name is free again; its old versions do not come back (numbers go on in git)
    both.same("create_registered_model", m("rf"))
    assert both.git.get_registered_model(m("rf")).latest_versions == []
    v = both.git.create_model_version(m("rf"), f"runs:/{ids[0]}/model", run_id=ids[0])
    assert v.version == "3"  # MLflow would start again at 1: gitml's numbers count every registration
    assert [x.version for x in both.git.search_model_versions("name = 'rf'")] == ["3"]
    assert set(gto_stages(repo)) == {"forest", "rf"} and gto_stages(repo)["rf"] == {}
    assert both.error("rename_registered_model", m("rf"), m("forest")) == "RESOURCE_ALREADY_EXISTS"
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""


def test_delete_registered_model_matches_sqlite_and_keeps_history(both, repo, tracking):
    [run_id] = log_models(tracking, 1)
    both.same("create_registered_model", m("rf"), tags={"a": "1"})
    both.same("create_model_version", m("rf"), f"runs:/{run_id}/model", run_id=run_id)
    both.same("transition_model_version_stage", m("rf"), "1", "Production")
    both.same("delete_registered_model", m("rf"))
    assert both.error("get_registered_model", m("rf")) == "RESOURCE_DOES_NOT_EXIST"
    assert both.git.search_registered_models() == []
    assert gto(repo, "show", "--json") == {}  # deprecated: gto no longer lists it
    assert {"rf@v0.0.1", "rf@v0.0.1!", "rf@deprecated"} <= set(git(repo, "tag", "--list").split())
    assert show(repo, "rf")["deprecated"] is True  # gitml still shows the history
    both.same("create_registered_model", m("rf"), description="second life")
    rm = both.same("get_registered_model", m("rf"))
    assert (rm.tags, rm.latest_versions) == ({}, [])  # metadata starts afresh, as in MLflow


def test_bad_input_gets_mlflows_error_codes_and_writes_nothing(both, repo, tracking):
    [run_id] = log_models(tracking, 1)
    both.same("create_registered_model", m("rf"))
    both.same("create_registered_model", m("other"))
    both.same("create_model_version", m("rf"), f"runs:/{run_id}/model", run_id=run_id)
    before, notes = refs(repo), git(repo, "notes", "--ref=gitml-registry", "list")
    src = f"runs:/{run_id}/model"
    cases = [
        ("create_registered_model", ("",), {}, "INVALID_PARAMETER_VALUE"),
        ("create_registered_model", ("a/b",), {}, "INVALID_PARAMETER_VALUE"),
        ("create_registered_model", (m("rf"),), {}, "RESOURCE_ALREADY_EXISTS"),
        ("create_registered_model", (m("x"),), {"tags": {"": "v"}}, "INVALID_PARAMETER_VALUE"),
        ("create_registered_model", (m("x"),), {"tags": {"k": "v" * 100_001}}, "INVALID_PARAMETER_VALUE"),
        ("get_registered_model", (m("nope"),), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("update_registered_model", (m("nope"),), {"description": "d"}, "RESOURCE_DOES_NOT_EXIST"),
        ("rename_registered_model", (m("rf"), m("other")), {}, "RESOURCE_ALREADY_EXISTS"),
        ("rename_registered_model", (m("nope"), m("x")), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("rename_registered_model", (m("rf"), ""), {}, "INTERNAL_ERROR"),  # MLflow's client refuses it
        ("delete_registered_model", (m("nope"),), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("set_registered_model_tag", (m("nope"), "k", "v"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("set_registered_model_tag", (m("rf"), "bad\nkey", "v"), {}, "INVALID_PARAMETER_VALUE"),
        ("delete_registered_model_tag", (m("nope"), "k"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("create_model_version", (m("nope"), src), {"run_id": run_id}, "RESOURCE_DOES_NOT_EXIST"),
        ("create_model_version", (m("rf"), src), {"tags": {"": "v"}}, "INVALID_PARAMETER_VALUE"),
        ("get_model_version", (m("rf"), "x"), {}, "INVALID_PARAMETER_VALUE"),
        ("get_model_version", (m("rf"), "9"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("update_model_version", (m("rf"), "9"), {"description": "d"}, "RESOURCE_DOES_NOT_EXIST"),
        ("transition_model_version_stage", (m("rf"), "1", "Foo"), {}, "INVALID_PARAMETER_VALUE"),
        ("transition_model_version_stage", (m("rf"), "1", "None"), {"archive_existing_versions": True}, "INTERNAL_ERROR"),
        ("transition_model_version_stage", (m("rf"), "9", "Staging"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("delete_model_version", (m("rf"), "9"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("set_model_version_tag", (m("rf"), "9", "k", "v"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("set_model_version_tag", (m("rf"), "1", "bad\nkey", "v"), {}, "INVALID_PARAMETER_VALUE"),
        ("delete_model_version_tag", (m("rf"), "9", "k"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("set_registered_model_alias", (m("rf"), "latest", "1"), {}, "INVALID_PARAMETER_VALUE"),
        ("set_registered_model_alias", (m("rf"), "v1", "1"), {}, "INVALID_PARAMETER_VALUE"),
        ("set_registered_model_alias", (m("rf"), "a b", "1"), {}, "INVALID_PARAMETER_VALUE"),
        ("set_registered_model_alias", (m("rf"), "ok", "9"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("set_registered_model_alias", (m("nope"), "ok", "1"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("delete_registered_model_alias", (m("nope"), "ok"), {}, "RESOURCE_DOES_NOT_EXIST"),
        ("get_model_version_by_alias", (m("rf"), "nope"), {}, "INVALID_PARAMETER_VALUE"),
        ("search_registered_models", (), {"filter_string": "foo = 'x'"}, "INVALID_PARAMETER_VALUE"),
        ("search_registered_models", (), {"max_results": 1001}, "INVALID_PARAMETER_VALUE"),
        ("search_model_versions", (), {"filter_string": "version_number > 'a'"}, "INVALID_PARAMETER_VALUE"),
        ("search_model_versions", (), {"filter_string": "name = 'a' OR name = 'b'"}, "INVALID_PARAMETER_VALUE"),
        ("search_model_versions", (), {"max_results": 0}, "INVALID_PARAMETER_VALUE"),
        ("search_model_versions", (), {"page_token": "not a token"}, "INVALID_PARAMETER_VALUE"),
    ]
    for method, args, kwargs, code in cases:
        assert both.error(method, *args, **kwargs) == code, (method, args)
    # gitml's own rules on top of MLflow's (GTO names, models logged in this repository)
    for method, args, kwargs in [
        ("create_registered_model", ("bad-",), {}),
        ("create_registered_model", ("HEAD",), {}),
        ("create_model_version", ("rf", "/tmp/somewhere/model"), {"run_id": run_id}),
        ("create_model_version", ("rf", "runs:/0123456789abcdef0123456789abcdef/model"), {}),
        ("create_model_version", ("rf", f"runs:/{run_id}/nothing"), {}),
        ("create_model_version", ("rf", f"gitml://{repo}/.gitml-runs/{run_id}@{'0' * 40}/model"), {}),
        ("set_registered_model_alias", ("rf", "_x", "1"), {}),
        ("rename_registered_model", ("rf", "bad-"), {}),
        ("create_model_version", ("rf", "models:/m-" + "0" * 32), {}),  # MLflow 3's logged model: not found
    ]:
        with pytest.raises(MlflowException) as e:
            getattr(both.git, method)(*args, **kwargs)
        assert e.value.error_code in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "NOT_IMPLEMENTED"), \
            (method, args, e.value)
    assert refs(repo) == before and git(repo, "notes", "--ref=gitml-registry", "list") == notes
    assert git(repo, "fsck", "--strict", "--no-dangling").strip() == ""


def test_prompts_and_webhooks_are_refused_by_name(repo):
    from mlflow.entities.model_registry import RegisteredModelTag
    from mlflow.entities.webhook import WebhookEvent

    from gitml.mlflow_plugin.registry_store import GitmlRegistryStore

    store = GitmlRegistryStore(f"gitml:{repo}")
    for call in (lambda: store.create_prompt("p"), lambda: store.get_prompt("p"),
                 lambda: store.create_prompt_version("p", "hi {{x}}"), lambda: store.search_prompt_versions("p")):
        with pytest.raises(MlflowException, match="Prompts are not supported by the gitml store") as e:
            call()
        assert e.value.error_code == "NOT_IMPLEMENTED"
    with pytest.raises(MlflowException, match="Webhooks are not supported by the gitml store"):
        store.create_webhook("w", "http://127.0.0.1:1/hook", [WebhookEvent("registered_model", "created")])
    with pytest.raises(MlflowException, match="Prompts are not supported") as e:  # what the REST server does for one
        store.create_registered_model("p", tags=[RegisteredModelTag("mlflow.prompt.is_prompt", "true")])
    assert e.value.error_code == "NOT_IMPLEMENTED"
    assert (store.search_prompts(), store.list_webhooks()) == ([], [])
    assert store.list_webhooks_by_event(WebhookEvent("registered_model", "created")) == []
    assert git(repo, "for-each-ref", "refs/tags", "refs/notes") == ""


# -- gitml's own door: Client, CLI ------------------------------------------------------------------


def test_client_and_cli_registry_methods(repo, tracking):
    ids = log_models(tracking, 1)
    client = tracking.MlflowClient()
    rm = client.create_registered_model("rf", tags={"team": "fraud"}, description="forest")
    assert (rm.name, rm.tags, rm.description) == ("rf", {"team": "fraud"}, "forest")
    with pytest.raises(tracking.GitmlError, match="already exists") as e:
        client.create_registered_model("rf")
    assert e.value.error_code == "RESOURCE_ALREADY_EXISTS"
    mv = client.create_model_version("rf", f"runs:/{ids[0]}/model", tags={"k": 1})
    assert dict(mv)["tags"] == {"k": "1"} and dict(mv)["version"] == "1"
    client.set_model_version_tag("rf", "1", "stage", "qa")
    client.delete_model_version_tag("rf", "1", "k")
    client.set_registered_model_tag("rf", "tier", "2")
    client.delete_registered_model_tag("rf", "team")
    client.update_registered_model("rf", "random forest")
    copy = client.copy_model_version("models:/rf/1", "rf-copy")
    assert (copy.name, copy.version, copy.tags) == ("rf-copy", "1", {"stage": "qa"})
    assert [r.name for r in client.search_registered_models("tags.tier = '2'")] == ["rf"]
    assert [r.name for r in client.search_registered_models("name LIKE 'rf%'", order_by=["name DESC"])] == ["rf-copy", "rf"]
    client.rename_registered_model("rf", "forest")
    assert client.get_registered_model("forest").tags == {"tier": "2"}
    # the CLI over the same functions, and a new process reads it all back
    gitml_invoke(repo, "models", "tag", "forest", "owner", "ana")
    gitml_invoke(repo, "models", "tag", "forest", "stage", "--delete", "--version", "1")
    gitml_invoke(repo, "models", "describe", "forest", "best so far", "--version", "1")
    gitml_invoke(repo, "models", "create", "empty", "-m", "nothing yet", "--tag", "a=b")
    gitml_invoke(repo, "models", "rename", "empty", "still-empty")
    gitml_invoke(repo, "models", "copy", "forest", "1", "still-empty")
    shown = show(repo, "forest")
    assert (shown["description"], shown["tags"]) == ("random forest", {"owner": "ana", "tier": "2"})
    assert (shown["versions"][0]["description"], shown["versions"][0]["tags"]) == ("best so far", {})
    other = show(repo, "still-empty")
    assert (other["description"], other["tags"], len(other["versions"])) == ("nothing yet", {"a": "b"}, 1)
    usage = gitml_invoke(repo, "models", "tag", "forest", "k", check=False)
    assert usage.returncode == 2 and "VALUE" in usage.stderr
    history = json.loads(gitml_invoke(repo, "models", "history", "forest", "--json").stdout)
    assert {"tag", "describe", "create", "register", "assign"} >= {e["event"] for e in history} - {"comment"}
    assert any(e["event"] == "create" and "renamed from rf" in e["message"] for e in history)


def test_model_anchor_name_round_trips(repo):
    from gitml.registry import metadata
    from gitml.store import names
    from gitml.store.repo import GitRepo

    for name in ("rf", "team/rf", "dir:rf", "a-b_c"):
        assert names.parse_model_anchor(names.model_anchor(name)) == name
    assert names.parse_model_anchor(b"gitml-model \n") is None
    assert names.parse_model_anchor(b"something else\n") is None
    oid = metadata.anchor(GitRepo.discover(repo), "rf")
    out = subprocess.run(["git", "hash-object", "--stdin"], cwd=repo, input="gitml-model rf\n", capture_output=True, text=True)
    assert oid == out.stdout.strip()


# -- two clones ---------------------------------------------------------------------------------------


def clone_pair(repo: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "HEAD:main")
    gitml_invoke(repo, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    gitml_invoke(repo, "push")
    other = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    gitml_invoke(other, "remote", "add", "-d", "store", str(tmp_path / "dvcstore"))
    gitml_invoke(other, "pull")
    return other


def test_metadata_changed_in_two_clones_converges(repo, tmp_path, tracking, monkeypatch, sqlite_db):
    monkeypatch.delenv("GITML_REPO")
    ids = log_models(tracking, 2)
    a = MlflowClient(sqlite_db, registry_uri=f"gitml:{repo}")
    a.create_registered_model("rf", tags={"team": "fraud"})
    for run_id in ids:
        a.create_model_version("rf", f"runs:/{run_id}/model", run_id=run_id)
    a.create_registered_model("empty")
    other = clone_pair(repo, tmp_path)
    b = MlflowClient(sqlite_db, registry_uri=f"gitml:{other}")
    assert b.get_registered_model("rf").tags == {"team": "fraud"} and b.get_registered_model("empty").name == "empty"
    # both sides change metadata before they sync; the same key on both: the later write wins
    a.set_registered_model_tag("rf", "owner", "ana")
    a.update_model_version("rf", "1", "from A")
    a.set_registered_model_tag("rf", "shared", "A")
    a.delete_registered_model("empty")
    b.set_model_version_tag("rf", "2", "checked", "yes")
    b.update_registered_model("rf", "from B")
    b.set_registered_model_tag("rf", "shared", "B")
    b.set_registered_model_alias("rf", "champion", "2")
    b.create_registered_model("new-in-b", description="b's")
    gitml_invoke(repo, "push")
    gitml_invoke(other, "pull")
    gitml_invoke(other, "push")
    gitml_invoke(repo, "pull")

    def state(client: MlflowClient) -> Any:
        models = {rm.name: norm(rm, "") for rm in client.search_registered_models()}
        versions = {(v.name, v.version): norm(v, "") for v in client.search_model_versions()}
        return models, versions

    assert state(a) == state(b)
    rm = a.get_registered_model("rf")
    assert (rm.description, rm.tags, rm.aliases) == ("from B", {"team": "fraud", "owner": "ana", "shared": "B"},
                                                     {"champion": "2"})
    assert (a.get_model_version("rf", "1").description, a.get_model_version("rf", "2").tags) == ("from A", {"checked": "yes"})
    assert set(m.name for m in a.search_registered_models()) == {"rf", "new-in-b"}
    assert show(repo, "rf") == show(other, "rf")
    assert git(repo, "rev-parse", "refs/notes/gitml-registry") == git(other, "rev-parse", "refs/notes/gitml-registry")
    # a rename travels too: tags and notes
    b.rename_registered_model("rf", "forest")
    gitml_invoke(other, "push")
    gitml_invoke(repo, "pull")
    assert state(a) == state(b) and "rf" not in {m.name for m in a.search_registered_models()}
    assert gto_stages(repo) == gto_stages(other)


def test_hostile_metadata_lines_cost_a_warning_not_the_command(repo, tmp_path, tracking, monkeypatch, sqlite_db):
    monkeypatch.delenv("GITML_REPO")
    [run_id] = log_models(tracking, 1)
    a = MlflowClient(sqlite_db, registry_uri=f"gitml:{repo}")
    a.create_registered_model("rf", tags={"team": "fraud"})
    a.create_model_version("rf", f"runs:/{run_id}/model", run_id=run_id, tags={"k": "v"})
    other = clone_pair(repo, tmp_path)
    anchor = subprocess.run(["git", "hash-object", "--stdin"], cwd=other, input="gitml-model rf\n",
                            capture_output=True, text=True).stdout.strip()
    good = json.dumps({"time": 4_000_000_000_000, "model": "rf", "op": "tag", "key": "fine", "value": "yes"})
    hostile = [
        "not json at all",
        "[1, 2, 3]",
        json.dumps({"time": "soon", "model": "rf", "op": "tag", "key": "a", "value": "b"}),
        json.dumps({"time": True, "model": "rf", "op": "tag", "key": "a", "value": "b"}),
        json.dumps({"time": 1, "model": "other", "op": "tag", "key": "a", "value": "b"}),
        json.dumps({"time": 1, "model": "rf", "op": "explode"}),
        json.dumps({"time": 1, "model": "rf", "op": "tag", "key": "../../etc", "value": "b"}),
        json.dumps({"time": 1, "model": "rf", "op": "tag", "key": "a", "value": {"nested": 1}}),
        json.dumps({"time": 1, "model": "rf", "op": "tag", "key": "a", "value": "x" * 100_001}),
        json.dumps({"time": 1, "model": "rf", "op": "describe", "version": "1.0", "value": "x"}),
        json.dumps({"time": 1, "model": "rf", "op": "create", "description": 5}),
        json.dumps({"time": 1, "model": "rf", "op": "create", "after": ["rf@deprecated"]}),
        json.dumps({"time": 1, "model": "rf", "op": "rename", "to": "../../x"}),
        json.dumps({"time": 1, "model": "rf", "op": "delete", "author": ["x"]}),
        "[" * 100_000 + "]" * 100_000,
        good,
    ]
    old = subprocess.run(["git", "notes", "--ref=gitml-registry", "show", anchor], cwd=other,
                         capture_output=True, text=True).stdout
    note = tmp_path / "note.txt"
    note.write_text(old.rstrip("\n") + "\n" + "\n".join(hostile) + "\n")
    subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=other, input="gitml-model rf\n", check=True,
                   capture_output=True, text=True)  # the anchor blob (not fetched: notes name it, nothing holds it)
    git(other, "notes", "--ref=gitml-registry", "add", "-f", "-F", str(note), anchor)
    # a registration tag whose trailer is not a JSON object of strings
    git(other, "tag", "-a", "rf@v0.0.9", "-m", "by hand\n\nGitml-Run: " + run_id + "\nGitml-Model-Path: model\n"
        "Gitml-Tags: {\"a\": [1]}", run_rev(other, run_id))
    git(other, "push", "-q", "origin", "refs/notes/gitml-registry", "rf@v0.0.9")
    pulled = gitml_cli(repo, "pull")
    assert pulled.returncode == 0
    out = gitml_cli(repo, "models", "show", "rf", "--json")
    assert "skipped a registry metadata line of model 'rf'" in out.stderr
    shown = json.loads(out.stdout)
    assert shown["tags"] == {"team": "fraud", "fine": "yes"}
    assert {v["version"]: v["tags"] for v in shown["versions"]} == {"v0.0.1": {"k": "v"}, "v0.0.9": {}}
    rm = a.get_registered_model("rf")
    assert rm.tags == {"team": "fraud", "fine": "yes"} and a.get_model_version("rf", "2").tags == {}
    assert [r.name for r in a.search_registered_models()] == ["rf"]
    gitml_invoke(repo, "models", "list")
    gitml_invoke(repo, "models", "history", "rf")
    a.set_registered_model_tag("rf", "after", "ok")  # writing on top of a damaged note works
    assert a.get_registered_model("rf").tags["after"] == "ok"
