"""The web viewer through Flask's test client: every page and API route, escaping, confinement, read-only.

One repository is seeded once per module (in a subprocess, with its own HOME)
with two experiments, a hostile run whose name, params, tags, metric key,
artifact name and commit message carry markup, artifacts of every previewed
kind, a parent and child run, two branches with runs, and a registered model
in production with a comment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.browser import UiServer, isolated_env
from tests.conftest import git
from tests.slow_clients import answers_while_held, slow_clients

HOSTILE = "<script>window.__xss=1</script>\"'><img src=x onerror=window.__xss=2>"
RAW_MARKERS = ("<script>window.__xss", "<img src=x onerror")

SEED = textwrap.dedent(r'''
    import json, os, sys
    import numpy as np
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    import gitml
    from gitml import registry
    from gitml.tracking import runs as _runs

    HOSTILE = sys.argv[2]
    repo = sys.argv[1]
    os.chdir(repo)
    gitml.set_tracking_uri(repo)
    out = {}

    gitml.set_experiment("baseline")
    for i, lr in enumerate([0.1, 0.01, 0.001]):
        with gitml.start_run(run_name=f"lr-{lr}") as r:
            gitml.log_params({"lr": lr, "model": "rf" if i < 2 else "gbm", "depth": 3 + i})
            for s in range(50):
                gitml.log_metric("loss", 1.0 / (s + 1) + i * 0.1, step=s)
                gitml.log_metric("train/acc", 0.5 + s / 100 - i * 0.05, step=s)
            gitml.log_metric("nan_metric", float("nan"))
            gitml.set_tag("team", "vision")
        out.setdefault("baseline", []).append(r.info.run_id)

    gitml.set_experiment("hostile " + HOSTILE)
    with gitml.start_run(run_name=HOSTILE) as r:
        gitml.log_param("evil", HOSTILE)
        gitml.set_tag("evil", HOSTILE)
        gitml.set_tag("mlflow.note.content", "Description line one\n" + HOSTILE)
        gitml.log_metric("odd key: a/b.c", 1.5, step=0)
        gitml.log_text("text with " + HOSTILE, "notes/readme.txt")
        gitml.log_text("name,value\n" + HOSTILE.replace(",", ";") + ",1\nplain,2\n", "table.csv")
        gitml.log_dict({"nested": {"a": [1, 2]}, "evil": HOSTILE}, "cfg.json")
        gitml.log_text("<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "pic.svg")
        gitml.log_text("unicode name", "漢字 café.txt")
        gitml.log_text("line\n" * 200_000, "big.log")
        gitml.log_text('a,b\n"' + "x" * 200_000 + '",1\n', "bigfield.csv")
        Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save("/tmp/_wv_img.png")
        gitml.log_artifact("/tmp/_wv_img.png", "plots")
        with gitml.start_run(run_name="child", nested=True) as child:
            gitml.log_metric("loss", 0.5)
        X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
        gitml.sklearn.log_model(LogisticRegression().fit(X, [0, 1, 0, 1]), name="model")
    out["hostile"] = r.info.run_id
    out["child"] = child.info.run_id
    grepo = _runs.open_repo(repo)
    v = registry.register_model(grepo, f"runs:/{r.info.run_id}/model", "demo-model", description=HOSTILE)
    registry.assign(grepo, "demo-model", v.version, "production", message="ship it")
    registry.comment(grepo, "demo-model", v.version, "comment " + HOSTILE)
    print(json.dumps(out))
''')

FEATURE = textwrap.dedent(r'''
    import json, sys
    import gitml
    gitml.set_tracking_uri(sys.argv[1])
    gitml.set_experiment("baseline")
    with gitml.start_run(run_name="feature-run") as r:
        gitml.log_param("lr", 0.05)
        gitml.log_metric("loss", 0.05, step=0)
    print(json.dumps(r.info.run_id))
''')


def _run_py(code: str, *args: str, cwd: Path, env: dict) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                         env={**env, "GITML_FLUSH_INTERVAL": "0.2"})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    env = isolated_env(tmp_path_factory.mktemp("wvhome"))

    def git(cwd: Path, *args: str) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)

    path = tmp_path_factory.mktemp("wv") / "repo"
    path.mkdir()
    git(path, "init", "-q")
    (path / "train.py").write_text("print('train')\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first " + HOSTILE)
    ids = json.loads(_run_py(SEED, str(path), HOSTILE, cwd=path, env=env))
    git(path, "checkout", "-q", "-b", "feature")
    (path / "train.py").write_text("print('train better')\n")
    git(path, "commit", "-qam", "better training")
    ids["feature"] = json.loads(_run_py(FEATURE, str(path), cwd=path, env=env))
    git(path, "checkout", "-q", "main")
    return {"path": path, "env": env, **ids}


@pytest.fixture
def client(site: dict):
    from gitml.webview import create_app

    from gitml.webview import LOOPBACK_HOSTS

    return create_app(site["path"], allowed_hosts=LOOPBACK_HOSTS).test_client()


def page(client, url: str, status: int = 200) -> str:
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.data[:500])
    body = r.get_data(as_text=True)
    for marker in RAW_MARKERS:
        assert marker not in body, f"{url} shows user content unescaped"
    return body


def api(client, url: str, status: int = 200) -> dict:
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.data[:500])
    assert r.mimetype == "application/json"
    return r.get_json()


def refs_and_notes(path: Path) -> str:
    return git(path, "for-each-ref", "--format=%(refname) %(objectname)")


# -- pages --------------------------------------------------------------------------------------


def all_pages(site: dict) -> list[str]:
    h, b0, b1 = site["hostile"], site["baseline"][0], site["baseline"][1]
    return [
        "/runs", "/runs?view=all", "/runs?filter=params.model%20%3D%20%27rf%27", f"/runs/{h}", f"/runs/{b0}",
        f"/runs/{h}/artifacts", f"/runs/{h}/artifacts?path=notes", f"/runs/{h}/artifacts?path=notes/readme.txt",
        f"/runs/{h}/artifacts?path=table.csv", f"/runs/{h}/artifacts?path=cfg.json",
        f"/runs/{h}/artifacts?path=plots/_wv_img.png", f"/runs/{h}/artifacts?path=pic.svg",
        f"/runs/{h}/artifacts?path=model/MLmodel", f"/compare?run={h}&run={b0}&run={b1}", "/commits",
        "/commits?rev=feature&runs_only=1", "/diff", "/diff?base=main&head=feature", "/models", "/models/demo-model",
    ]


def test_every_page_renders_and_escapes_user_content(site, client):
    for url in all_pages(site):
        page(client, url)
    commit = git(site["path"], "rev-parse", "main").strip()
    body = page(client, f"/commits/{commit}")
    assert "first &lt;script&gt;window.__xss=1&lt;/script&gt;" in body


def test_hostile_strings_are_shown_as_text(site, client):
    body = page(client, f"/runs/{site['hostile']}")
    escaped = "&lt;script&gt;window.__xss=1&lt;/script&gt;&#34;&#39;&gt;&lt;img src=x onerror=window.__xss=2&gt;"
    assert body.count(escaped) >= 3  # title, name, param, tag
    assert "odd key: a/b.c" in body
    # data handed to the page's script travels as JSON in a quoted attribute, with < > ' escaped
    assert "data-labels='[\"\\u003cscript\\u003ewindow.__xss=1\\u003c/script\\u003e\\\"\\u0027" in body
    assert "<script>" not in body.replace('<script src="/static/', "")


def test_pages_send_a_script_policy(client):
    r = client.get("/runs")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"


def test_static_assets_are_vendored(client):
    body = page(client, "/runs")
    assert "//" not in body.split("<body>")[0].replace("http://www.w3.org", "").replace('"/static/', "")
    for asset in ("/static/gitml.js", "/static/gitml.css", "/static/vendor/uPlot.iife.min.js"):
        r = client.get(asset)
        assert r.status_code == 200 and len(r.data) > 500, asset


# -- the runs table -----------------------------------------------------------------------------


def names_in(data: dict) -> list[str]:
    return [r["info"]["run_name"] for r in data["runs"]]


def test_runs_api_sorts_filters_and_pages(site, client):
    everything = api(client, "/api/runs")
    assert everything["total"] == 6  # 3 baseline + hostile + child + feature
    exp = next(e for e in api(client, "/api/experiments")["experiments"] if e["name"] == "baseline")
    base = f"/api/runs?experiment_id={exp['experiment_id']}"
    by_loss = api(client, base + "&order_by=metrics.loss%20ASC")
    assert names_in(by_loss) == ["lr-0.1", "feature-run", "lr-0.01", "lr-0.001"]  # 0.02, 0.05, 0.12, 0.22
    desc = api(client, base + "&order_by=params.depth%20DESC")
    assert names_in(desc)[0] == "lr-0.001"
    rf = api(client, base + "&filter=params.model%20%3D%20%27rf%27%20and%20metrics.loss%20%3C%200.2")
    assert sorted(names_in(rf)) == ["lr-0.01", "lr-0.1"]
    p2 = api(client, base + "&order_by=metrics.loss&per_page=1&page=2")
    assert (p2["total"], p2["pages"], names_in(p2)) == (4, 4, ["feature-run"])
    assert "train/acc" in everything["keys"]["metrics"] and "depth" in everything["keys"]["params"]
    nan_run = next(r for r in by_loss["runs"] if r["info"]["run_name"] == "lr-0.1")
    assert nan_run["data"]["metrics"]["nan_metric"] is None  # NaN is not valid JSON


def test_runs_csv_has_every_matching_run(site, client):
    import csv
    import io

    r = client.get("/api/runs.csv?filter=params.model%20%3D%20%27rf%27&order_by=metrics.loss&per_page=1")
    assert r.status_code == 200 and r.mimetype == "text/csv" and r.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["tags.mlflow.runName"] for row in rows] == ["lr-0.1", "lr-0.01"]  # both pages, in order
    assert rows[0]["params.depth"] == "3" and float(rows[0]["metrics.loss"]) == pytest.approx(0.02)


def test_runs_api_rejects_bad_queries(client):
    for url, word in [("/api/runs?filter=metrics.loss%20%3E", "filter"), ("/api/runs?page=0", "page"),
                      ("/api/runs?per_page=abc", "per_page"), ("/api/runs?view=mine", "view"),
                      ("/api/runs?order_by=metrics.", "order")]:
        err = api(client, url, 400)
        assert err["error_code"] == "INVALID_PARAMETER_VALUE" and word in err["message"].lower(), (url, err)


def test_runs_page_columns_sort_links_and_pagination(site, client):
    default = page(client, "/runs").split("<thead>")[1].split("</thead>")[0]
    assert "Created ▼" in default and "attributes.start_time+ASC" in default  # newest first, as MLflow
    plain = page(client, "/runs?col=metrics.loss&order_by=metrics.loss%20DESC").split("<thead>")[1]
    assert "loss ▼" in plain.split("</thead>")[0]  # however the URL spells the key
    body = page(client, "/runs?col=params.depth&col=metrics.loss&order_by=metrics.%60loss%60%20DESC&per_page=2")
    head = body.split("<thead>")[1].split("</thead>")[0]
    assert "depth" in head and "loss" in head and "team" not in head and "train/acc" not in head
    assert "page 1 of 3" in body and 'rel="next"' in body
    assert body.count('<input type="hidden" name="per_page" value="2">') == 2  # filter and columns keep the page size
    assert "order_by=metrics.%60loss%60+ASC" in head and "loss ▼" in head  # the sorted column flips to ascending
    rows = body.split("<tbody>")[1]
    assert rows.index(">child<") < rows.index(">lr-0.001<") and "lr-0.01<" not in rows  # 0.5, 0.22 | 0.12 ...

    bad = page(client, "/runs?filter=metrics.loss%20%3E%3E%201")
    assert "error-box" in bad and "Invalid filter" in bad and 'value="metrics.loss &gt;&gt; 1"' in bad


def test_runs_table_shows_registered_versions_and_short_numbers_with_the_full_value(site, client):
    import html
    import re

    body = page(client, "/runs?col=metrics.loss&col=metrics.train/acc")
    row = next(r for r in body.split("<tr ")[1:] if site["hostile"] in r)
    assert 'href="/models/demo-model"' in row and "stage-production" in row  # the Models column
    assert "/models/" not in next(r for r in body.split("<tr ")[1:] if site["baseline"][0] in r)
    cells = re.findall(r'<span class="num" title="([^"]*)" data-metric-cell="loss">([^<]*)</span>', body)
    assert cells
    for full, short in cells:
        assert len(short.replace("-", "").replace(".", "").lstrip("0")) <= 4  # 4 significant digits
        assert float(html.unescape(full)) == pytest.approx(float(short), rel=1e-3)  # every digit on hover
    assert any(len(full) > len(short) for full, short in cells)


def test_nested_runs_are_grouped_under_their_parent(site, client):
    body = page(client, "/runs?view=all")
    rows = body.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    at = {i: r for i, r in enumerate(rows)}
    parent = next(i for i, r in at.items() if f'data-run-id="{site["hostile"]}"' in r)
    assert 'class="parent-row"' in at[parent] and f'data-expands="{site["hostile"]}"' in at[parent] and "▸ 1" in at[parent]
    child = at[parent + 1]  # right below its parent, folded
    assert site["child"] in child and 'class="child-row"' in child and "hidden" in child.split(">")[0]
    assert sum(site["child"] in r for r in rows) == 1  # not also a row of its own
    assert site["child"] in names_in(api(client, "/api/runs?view=all")) or any(
        r["info"]["run_id"] == site["child"] for r in api(client, "/api/runs?view=all")["runs"])  # the API is flat


def test_runs_table_scales_by_loading_only_its_page(site, client, monkeypatch):
    from gitml.tracking import index

    loaded = []
    original = index.RunIndex.load
    monkeypatch.setattr(index.RunIndex, "load", lambda self, ids: loaded.append(len(ids)) or original(self, ids))
    api(client, "/api/runs?per_page=2")
    assert loaded == [2]


# -- one run ------------------------------------------------------------------------------------


def test_run_api_and_metric_history(site, client):
    b0 = site["baseline"][0]
    d = api(client, f"/api/runs/{b0}")
    assert d["run"]["info"]["run_id"] == b0 and d["live"] is False
    assert d["source_commit"]["summary"].startswith("first <script>")  # raw in JSON; escaped where shown
    assert d["metric_keys"] == ["loss", "nan_metric", "train/acc"]
    h = api(client, f"/api/runs/{b0[:8]}/metrics/train/acc")
    assert h["steps"] == list(range(50)) and h["values"][10] == pytest.approx(0.6)
    assert len(h["timestamps"]) == 50
    assert api(client, f"/api/runs/{b0}/metrics/nan_metric")["values"] == [None]
    assert "no metric" in api(client, f"/api/runs/{b0}/metrics/nope", 404)["message"]
    assert api(client, "/api/runs/0000", 404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_run_page_shows_source_params_charts_artifacts_model_and_children(site, client):
    body = page(client, f"/runs/{site['hostile']}")
    assert 'class="chart-panel"' in body and 'data-live="0"' in body
    assert "<td>python_function, sklearn</td>" in body
    assert "model/" in body and "notes/" in body and "table.csv" in body
    assert "child" in body and f"/runs/{site['child']}" in body
    assert "Registered as" in body and 'href="/models/demo-model"' in body
    assert "<h2>Description</h2>" in body and "Description line one" in body  # MLflow's run description tag
    commit = git(site["path"], "rev-parse", "main").strip()
    assert f"/commits/{commit}" in body


def test_a_running_run_is_live(tracking):
    from gitml.webview import create_app

    client = tracking.Client()
    with tracking.start_run(run_name="in-progress") as r:
        tracking.log_metric("loss", 1.0, step=0)
        client.flush()
        c = create_app(os.environ["GITML_REPO"]).test_client()
        d = c.get(f"/api/runs/{r.info.run_id}").get_json()
        assert d["live"] is True and d["run"]["info"]["status"] == "RUNNING"
        assert 'data-live="1"' in c.get(f"/runs/{r.info.run_id}").get_data(as_text=True)
        tracking.log_metric("loss", 0.5, step=1)
        client.flush()
        assert c.get(f"/api/runs/{r.info.run_id}/metrics/loss").get_json()["values"] == [1.0, 0.5]
        tail = c.get(f"/api/runs/{r.info.run_id}/metrics/loss?offset=1").get_json()
        assert (tail["total"], tail["steps"], tail["values"]) == (2, [1], [0.5])
    d = c.get(f"/api/runs/{r.info.run_id}").get_json()
    assert d["live"] is False and d["run"]["info"]["status"] == "FINISHED"


# -- artifacts ----------------------------------------------------------------------------------


def test_artifact_listing_and_previews(site, client):
    h = site["hostile"]
    listing = api(client, f"/api/runs/{h}/artifacts")
    assert {f["path"] for f in listing["files"]} >= {"notes", "table.csv", "cfg.json", "plots", "model", "pic.svg"}
    assert api(client, f"/api/runs/{h}/artifacts?path=notes")["files"] == [
        {"path": "notes/readme.txt", "is_dir": False, "file_size": len("text with " + HOSTILE)}]
    csv_page = page(client, f"/runs/{h}/artifacts?path=table.csv")
    assert '<table class="csv">' in csv_page and "<td>plain</td><td>2</td>" in csv_page
    json_page = page(client, f"/runs/{h}/artifacts?path=cfg.json")
    assert '&#34;nested&#34;: {\n    &#34;a&#34;: [' in json_page
    big = page(client, f"/runs/{h}/artifacts?path=big.log")
    assert "Truncated" in big and big.count("line\n") == data_preview_lines()
    assert "x" * 1000 in page(client, f"/runs/{h}/artifacts?path=bigfield.csv")  # not a table: shown as text
    img_page = page(client, f"/runs/{h}/artifacts?path=plots/_wv_img.png")
    assert 'class="preview-image"' in img_page and "inline=1" in img_page
    assert "No preview" in page(client, f"/runs/{h}/artifacts?path=model/model.skops")


def data_preview_lines() -> int:
    from gitml.webview.data import PREVIEW_BYTES

    return PREVIEW_BYTES // len("line\n")


def test_artifact_downloads_are_confined_and_never_run_as_pages(site, client):
    h = site["hostile"]
    r = client.get(f"/api/runs/{h}/artifact?path=notes/readme.txt")
    assert r.status_code == 200 and r.data == ("text with " + HOSTILE).encode()
    assert r.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in r.headers["Content-Security-Policy"]
    uni = client.get(f"/api/runs/{h}/artifact?path=漢字 café.txt")
    assert uni.data == b"unicode name" and uni.headers["Content-Length"] == "12"
    disposition = uni.headers["Content-Disposition"]
    assert disposition.isascii() and "filename*=UTF-8''%E6%BC%A2%E5%AD%97%20caf%C3%A9.txt" in disposition
    big = client.get(f"/api/runs/{h}/artifact?path=big.log")
    assert len(big.data) == 1_000_000 and big.headers["Content-Length"] == "1000000"
    img = client.get(f"/api/runs/{h}/artifact?path=plots/_wv_img.png&inline=1")
    assert img.mimetype == "image/png" and "Content-Disposition" not in img.headers
    svg = client.get(f"/api/runs/{h}/artifact?path=pic.svg&inline=1")
    assert svg.headers["Content-Disposition"].startswith("attachment")  # svg can carry script: never inline
    for bad in ("../../etc/passwd", "/etc/passwd", "notes/../../x", "notes/./readme.txt/.."):
        err = api(client, f"/api/runs/{h}/artifact?path={bad}", 400)
        assert "artifact path" in err["message"], (bad, err)
    assert api(client, f"/api/runs/{h}/artifact?path=nope.txt", 404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert api(client, f"/api/runs/{h}/artifacts?path=nope", 404)
    page(client, f"/runs/{h}/artifacts?path=../x", 400)


# -- compare, commits, diff ---------------------------------------------------------------------


def test_compare_marks_what_differs(site, client):
    b0, b1 = site["baseline"][:2]
    d = api(client, f"/api/compare?run={b0}&run={b1}")
    assert d["params"]["lr"] == {"values": ["0.1", "0.01"], "changed": True}
    assert d["params"]["model"] == {"values": ["rf", "rf"], "changed": False}
    assert d["metrics"]["nan_metric"]["values"] == [None, None]
    body = page(client, f"/compare?run={b0}&run={b1}")
    assert 'id="only-changed"' in body and 'class="parcoords"' in body
    assert '<tr class="same"><th>model</th>' in body and '<tr class="changed"><th>lr</th>' in body
    assert "Pick runs" in api(client, "/api/compare", 400)["message"]
    # coloured by the metric's direction, not by sign: lower loss is better, higher accuracy is better
    assert d["metrics"]["loss"]["direction"] == "lower" and d["metrics"]["loss"]["best"] == [0]
    assert d["metrics"]["train/acc"]["direction"] == "higher" and d["metrics"]["train/acc"]["best"] == [0]
    assert d["metrics"]["nan_metric"]["direction"] is None and "best" not in d["metrics"]["nan_metric"]
    loss_row = body.split("<th>loss</th>")[1].split("</tr>")[0]
    assert loss_row.index('data-verdict="better"') < loss_row.index('data-verdict="worse"')
    flipped = api(client, f"/api/compare?run={b0}&run={b1}&better=loss:higher")
    assert flipped["metrics"]["loss"]["best"] == [1]


def test_commits_show_runs_and_metrics(site, client):
    d = api(client, "/api/commits?rev=feature")
    first, second = d["commits"]
    assert first["summary"] == "better training" and first["runs"][0]["run_name"] == "feature-run"
    assert first["runs"][0]["metrics"] == {"loss": 0.05}
    assert len(second["runs"]) == 5
    assert api(client, "/api/commits?rev=nope", 404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    body = page(client, "/commits?rev=feature")
    assert "feature-run" in body and "loss=<b>0.05</b>" in body
    assert "main" in api(client, "/api/branches")["branches"]


def test_diff_between_branches(site, client):
    d = api(client, "/api/diff?base=main&head=feature&pick=best:loss:min")
    assert d["head"]["run"]["info"]["run_name"] == "feature-run"
    assert d["base"]["run"]["info"]["run_name"] == "lr-0.1"  # lowest loss among main's runs
    assert d["metrics"]["loss"]["old"] == 0.02 and d["metrics"]["loss"]["new"] == 0.05
    assert d["metrics"]["loss"]["diff"] == pytest.approx(0.03)
    assert d["metrics"]["loss"]["verdict"] == "worse"  # loss went up: worse, though the change is positive
    body = page(client, "/diff?base=main&head=feature&pick=best:loss:min")
    assert 'class="diff-table"' in body and "+0.03" in body and 'class="chart-panel"' in body
    assert 'data-verdict="worse"' in body and "lower is better for loss" in body
    assert "picked: lowest loss of" in body  # the side says why its run was picked
    assert api(client, "/api/diff?base=main&head=feature&pick=best:loss:min&better=loss:higher")[
        "metrics"]["loss"]["verdict"] == "better"
    assert "<metric>:lower" in api(client, "/api/diff?base=main&head=feature&better=loss", 400)["message"]
    err = page(client, "/diff?base=nope&head=feature")
    assert "error-box" in err and "nope" in err


# -- registry -----------------------------------------------------------------------------------


def test_registry_pages(site, client):
    d = api(client, "/api/models")
    assert d["models"] == [{"name": "demo-model", "deprecated": False, "versions": 1, "latest": "v0.0.1",
                            "stages": {"production": "v0.0.1"}}]
    m = api(client, "/api/models/demo-model")
    assert m["versions"][0]["run_id"] == site["hostile"] and m["versions"][0]["stages"] == ["production"]
    assert sorted(e["event"] for e in m["history"]) == ["assign", "comment", "register"]
    assert m["history"][-1]["event"] == "register"  # newest first
    assert m["versions"][0]["comments"][0]["text"] == "comment " + HOSTILE
    body = page(client, "/models/demo-model")
    assert "production" in body and "ship it" in body and "comment &lt;script&gt;" in body
    assert api(client, "/api/models/nope", 404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    page(client, "/models/nope", 404)


# -- read-only and bound to this machine --------------------------------------------------------


def test_nothing_but_get_is_answered_and_get_changes_nothing(site, client):
    before = refs_and_notes(site["path"])
    for url in all_pages(site):
        client.get(url)
    for url in ["/api/runs", f"/api/runs/{site['hostile']}", "/api/models", "/api/commits", "/runs", "/models"]:
        for method in ("post", "put", "delete", "patch"):
            r = getattr(client, method)(url)
            assert r.status_code == 405, (method, url, r.status_code)
    assert refs_and_notes(site["path"]) == before


def test_foreign_host_headers_are_refused(client):
    for host in ("attacker.example:5050", "attacker.example", "127.0.0.1.attacker.example", "[::2]:5050", "[::1"):
        err = client.get("/api/runs", headers={"Host": host})
        assert err.status_code == 400 and err.get_json()["error_code"] == "INVALID_HOST", host
    for host in ("127.0.0.1:5050", "localhost", "LOCALHOST:80", "[::1]:5050", "[::1]"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200, host
    assert "--allowed-hosts" in client.get("/runs", headers={"Host": "evil.example"}).get_data(as_text=True)


def test_allowed_hosts_follow_the_bind_address():
    from gitml.webview.server import allowed_hosts

    assert allowed_hosts("127.0.0.1", None) == allowed_hosts("::1", None) == allowed_hosts("localhost", None)
    assert "localhost" in allowed_hosts("127.0.0.2", None)
    assert allowed_hosts("0.0.0.0", None) is None and allowed_hosts("::", None) is None
    assert allowed_hosts("0.0.0.0", ["ml.example.com"]) == ["ml.example.com"]
    assert allowed_hosts("127.0.0.1", ["*"]) is None


def test_gitml_ui_serves_on_loopback_only(site):
    server = UiServer(site["path"], env=site["env"])
    try:
        base = server.wait_ready(timeout=60)
        with urllib.request.urlopen(base + "/api/models", timeout=10) as r:
            assert json.load(r)["models"][0]["name"] == "demo-model"
        quoted = urllib.parse.quote("漢字 café.txt")
        with urllib.request.urlopen(f"{base}/api/runs/{site['hostile']}/artifact?path={quoted}", timeout=10) as r:
            assert r.read() == b"unicode name"  # gunicorn sends only ASCII headers: the name goes as filename*
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True).stdout
        if listening:  # ss is there: the socket is bound to loopback, not to every interface
            assert [line.split()[3] for line in listening.splitlines()] == [f"127.0.0.1:{server.port}"]
    finally:
        server.stop()


def test_slow_clients_do_not_stop_the_viewer(site):
    """issue 14: slow clients kept `gitml ui` (3 sync workers) from answering for 30 s.

    8 send their headers a line every 2 s and 8 more a 1000-byte body a byte
    a second; none finishes. The API must still answer.
    """
    server = UiServer(site["path"], env=site["env"])
    try:
        base = server.wait_ready(timeout=60)
        with slow_clients(server.port, "/api/experiments", headers=8, bodies=8) as clients:
            assert answers_while_held(clients, base + "/api/experiments") == [200] * 4
            assert clients.still_open() == 16  # they still hold their connections
    finally:
        server.stop()


def test_back_to_back_requests_from_keep_alive_clients_are_all_answered(site):
    """issue 14: with gunicorn's asyncio worker, a request a keep-alive client (any browser) sent
    right after the previous answer was dropped until the keep-alive timeout (pages hung in
    Chromium). 6 clients, 25 requests each, every one answered; the server closes each connection."""
    import http.client
    import threading

    server = UiServer(site["path"], env=site["env"])
    try:
        server.wait_ready(timeout=60)
        paths = ["/static/gitml.css", "/api/experiments", "/runs", "/static/gitml.js", "/commits"]
        failures: list[str] = []

        def client(n: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            for i in range(25):
                path = paths[(n + i) % len(paths)]
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200 or response.getheader("Connection") != "close":
                        failures.append(f"{path}: {response.status} {response.getheader('Connection')}")
                except OSError as e:
                    failures.append(f"{path}: {e!r}")
                    conn.close()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
    finally:
        server.stop()


def test_request_threads_share_the_index_safely(site):
    """issue 14: the viewer serves requests in threads, which refresh one RunIndex at once.

    One SQLite connection shared by threads shares its transaction: two
    refreshes collided ("cannot start a transaction within a transaction").
    """
    import threading

    from gitml.tracking import runs
    from gitml.webview import LOOPBACK_HOSTS, create_app

    idx = runs.index_for(runs.open_read_only(site["path"]))
    app = create_app(site["path"], allowed_hosts=LOOPBACK_HOSTS)
    problems: list[str] = []

    def hammer() -> None:
        client = app.test_client()
        for _ in range(15):
            try:
                idx.refresh(force=True)
                assert len(idx.load(idx.run_ids_with_prefix(""))) >= 6
                resp = client.get("/api/experiments", headers={"Host": "127.0.0.1"})
                assert resp.status_code == 200, resp.get_data(as_text=True)
            except Exception as e:  # noqa: BLE001 - collect every failure of every thread
                problems.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []


def test_gitml_ui_outside_a_repository_fails_clearly(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gitml", "-C", str(tmp_path), "ui"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)})
    assert out.returncode != 0 and "Error:" in out.stderr and "git" in out.stderr.lower()


@pytest.mark.parametrize("text, ok", [
    ("", True), ("0\t1700000000000\t0.5\n1\t1700000000001\tnan\n2\t3\t-inf\n3\t4\t1e-05\n", True),
    ("0\t1\t0.5", False),                   # no final newline
    ("0\t1\t[0.5]\n", False),               # not a number's characters
    ('0\t1\t"x"\n', False),
    ("0\t1\t2\t3\n", False),                # four tokens
    ("0\t\t2\n", False),                    # an empty token
    ("0\t1\t2\n\n", False),
])
def test_metric_text_is_served_as_is_only_when_it_is_number_tokens(text, ok):
    from gitml.tracking.runfiles import _looks_like_metric_lines

    assert _looks_like_metric_lines(text) is ok


def test_metric_history_json_matches_the_parsed_history(site, client):
    from gitml.tracking import runs

    b0 = site["baseline"][0]
    served = api(client, f"/api/runs/{b0}/metrics/loss?offset=5")
    history = runs.metric_history(runs.open_repo(site["path"]), b0, "loss")
    steps, times, values = ([m.step for m in history], [m.timestamp for m in history], [m.value for m in history])
    assert (served["steps"], served["timestamps"], served["values"]) == (steps[5:], times[5:], values[5:])
    assert served["total"] == 50 and served["offset"] == 5


def test_gitml_ui_on_a_taken_port_says_so(site):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "gitml", "-C", str(site["path"]), "ui", "--port", str(port)],
                             capture_output=True, text=True, timeout=60, env=site["env"])
    assert out.returncode == 1 and f"Cannot listen on 127.0.0.1:{port}" in out.stderr and "--port" in out.stderr


CRASH = r'''
import os, signal, sys
import gitml
gitml.set_tracking_uri(sys.argv[1])
run = gitml.start_run(run_name="crashed")
gitml.log_metric("loss", 0.5, step=0)
gitml.Client().flush()
gitml.log_metric("loss", 0.25, step=1)  # only in the live log: the flusher waits 1000 s
print(run.info.run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_crashed_run_is_shown_as_it_is_in_git_and_not_recovered_by_a_get(repo):
    from gitml.webview import create_app

    out = subprocess.run([sys.executable, "-c", CRASH, str(repo)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "GITML_FLUSH_INTERVAL": "1000"})
    run_id = out.stdout.strip()
    assert out.returncode == -9 and len(run_id) == 32, out.stderr
    before = refs_and_notes(repo)
    client = create_app(repo).test_client()
    for url in ["/runs", "/api/runs", f"/runs/{run_id}", f"/api/runs/{run_id[:8]}", f"/api/runs/{run_id}/metrics/loss",
                "/commits", f"/compare?run={run_id}"]:
        assert client.get(url).status_code == 200, url
    assert refs_and_notes(repo) == before  # recovery is a write: left to the next gitml command that writes
    d = client.get(f"/api/runs/{run_id}").get_json()
    assert d["run"]["info"]["status"] == "RUNNING" and d["writer_alive"] is False
    assert "no process logging" in client.get(f"/runs/{run_id}").get_data(as_text=True)

    subprocess.run([sys.executable, "-m", "gitml", "-C", str(repo), "runs", "list"], check=True, capture_output=True)
    d = client.get(f"/api/runs/{run_id}").get_json()
    assert d["run"]["info"]["status"] == "KILLED" and d["live"] is False
    assert client.get(f"/api/runs/{run_id}/metrics/loss").get_json()["values"] == [0.5, 0.25]


def test_a_corrupted_artifact_is_never_served_as_a_success(tracking, repo, tmp_path):
    """Issue 14 (7): an object with 8 bytes changed (same size) was served with 200 and all its
    bytes, and previews over 512 KB were never verified. A small file is verified before the
    first byte goes out (an error answer); a big one streams but stops before its last block,
    so the client never receives all of it; previews verify the whole object."""
    import hashlib

    from gitml.store.content import CorruptObject
    from gitml.webview import LOOPBACK_HOSTS, create_app

    small, big, text = tmp_path / "small.bin", tmp_path / "big.bin", tmp_path / "notes.txt"
    small.write_bytes(os.urandom(10_000))
    big.write_bytes(os.urandom(9 * 1024 * 1024 + 123))
    text.write_text("line of text\n" * 100_000)  # 1.3 MB: previewed from its first 512 KB
    with tracking.start_run() as run:
        for f in (small, big, text):
            tracking.log_artifact(str(f))
    cache = repo / ".git" / "gitml" / "cache" / "files" / "md5"
    client = create_app(repo, allowed_hosts=LOOPBACK_HOSTS).test_client()
    base = f"/api/runs/{run.info.run_id}/artifact?path="
    assert client.get(base + "small.bin").data == small.read_bytes()  # intact: served
    for f in (small, big, text):
        md5 = hashlib.md5(f.read_bytes()).hexdigest()
        obj = cache / md5[:2] / md5[2:]
        obj.chmod(0o644)
        data = bytearray(obj.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 8] = b"EVILBYTE"
        obj.write_bytes(bytes(data))
    r = client.get(base + "small.bin")
    assert r.status_code == 500 and b"corrupted" in r.data and len(r.data) < 1000
    r = client.get(base + "big.bin", buffered=False)
    assert r.status_code == 200 and r.content_length == big.stat().st_size
    received = 0
    with pytest.raises(CorruptObject):
        for block in r.response:
            received += len(block)
    assert received < big.stat().st_size
    page = client.get(f"/runs/{run.info.run_id}/artifacts?path=notes.txt").get_data(as_text=True)
    assert "corrupted" in page and "line of text" not in page  # the page says so instead of a preview
    assert client.get(f"/api/runs/{run.info.run_id}/artifact?path=notes.txt&inline=1").status_code == 500


# -- edits (gitml ui on loopback) ---------------------------------------------------------------


@pytest.fixture
def editable(tracking, repo):
    """A run and a registered version in a fresh repository, and a viewer on it with edits on."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from gitml.webview import LOOPBACK_HOSTS, create_app

    with tracking.start_run(run_name="first") as run:
        tracking.log_metric("acc", 0.5)
        tracking.set_tag("team", "vision")
        X = np.array([[0.0], [1.0], [0.0], [1.0]])
        tracking.sklearn.log_model(LogisticRegression().fit(X, [0, 1, 0, 1]), name="model",
                                   registered_model_name="rf")
    app = create_app(repo, allowed_hosts=LOOPBACK_HOSTS, writes=True, csrf_token="tok-123")
    return {"repo": repo, "run_id": run.info.run_id, "client": app.test_client(), "app": app}


def post(client, url: str, status: int = 303, headers: dict | None = None, **form: str):
    r = client.post(url, data=form, headers=headers or {})
    assert r.status_code == status, (url, r.status_code, r.get_data(as_text=True)[:300])
    return r


def test_edits_from_the_viewer_land_in_git(editable, tracking):
    from gitml import registry
    from gitml.tracking.runs import open_repo

    c, rid = editable["client"], editable["run_id"]
    page_html = page(c, f"/runs/{rid}")
    assert 'name="csrf_token" value="tok-123"' in page_html and "edit.rename_run" not in page_html
    post(c, f"/edit/runs/{rid}/rename", name="renamed", csrf_token="tok-123")
    assert tracking.get_run(rid).info.run_name == "renamed"
    post(c, f"/edit/runs/{rid}/describe", csrf_token="tok-123",
         description="**Bold** claim\n\n<script>window.__xss=1</script> [x](javascript:alert(1))")
    assert tracking.get_run(rid).data.tags["mlflow.note.content"].startswith("**Bold** claim")
    shown = page(c, f"/runs/{rid}")
    assert "<strong>Bold</strong>" in shown and "<script>window.__xss" not in shown and 'href="javascript:' not in shown
    post(c, f"/edit/runs/{rid}/tag", key="reviewed", value="yes", csrf_token="tok-123")
    post(c, f"/edit/runs/{rid}/untag", key="team", csrf_token="tok-123")
    tags = tracking.get_run(rid).data.tags
    assert tags["reviewed"] == "yes" and "team" not in tags
    post(c, f"/edit/runs/{rid}/delete", csrf_token="tok-123")
    assert tracking.get_run(rid).info.lifecycle_stage == "deleted"
    post(c, f"/edit/runs/{rid}/restore", csrf_token="tok-123")
    assert tracking.get_run(rid).info.lifecycle_stage == "active"
    post(c, "/edit/models/rf/stage", version="v0.0.1", stage="production", message="ship", csrf_token="tok-123")
    post(c, "/edit/models/rf/comment", version="v0.0.1", text="looks good", csrf_token="tok-123")
    repo = open_repo(str(editable["repo"]))
    assert registry.get_model(repo, "rf").versions[0].stages == ["production"]
    assert "rf#production#1" in git(editable["repo"], "tag", "-l")
    assert "looks good" in page(c, "/models/rf")
    assert "ship" in page(c, "/models/rf")  # the stage tag's message, in the history
    bad = post(c, "/edit/models/rf/stage", status=404, version="v9.9.9", stage="production", csrf_token="tok-123")
    assert "v9.9.9" in bad.get_data(as_text=True)


def test_edits_are_refused_without_the_token_from_another_site_or_when_read_only(editable, tracking):
    from gitml.webview import LOOPBACK_HOSTS, create_app

    c, rid, repo = editable["client"], editable["run_id"], editable["repo"]
    tracking.flush()  # the notes the run queued, written now rather than during the checks
    before = refs_and_notes(repo)
    post(c, f"/edit/runs/{rid}/rename", status=403, name="x")  # no token
    post(c, f"/edit/runs/{rid}/rename", status=403, name="x", csrf_token="tok-124")  # a wrong one
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):  # a cross-site form post, even with the token
        r = post(c, f"/edit/runs/{rid}/rename", status=403, headers=headers, name="x", csrf_token="tok-123")
        assert "own pages" in r.get_data(as_text=True)
    assert c.get(f"/edit/runs/{rid}/rename").status_code == 405  # GET never edits
    evil_host = c.post(f"/edit/runs/{rid}/rename", data={"name": "x", "csrf_token": "tok-123"},
                       headers={"Host": "evil.example"})
    assert evil_host.status_code == 400
    read_only = create_app(repo, allowed_hosts=LOOPBACK_HOSTS, csrf_token="tok-123").test_client()
    assert "csrf_token" not in page(read_only, f"/runs/{rid}") and "Rename" not in page(read_only, f"/runs/{rid}")
    r = post(read_only, f"/edit/runs/{rid}/rename", status=403, name="x", csrf_token="tok-123")
    assert "read-only" in r.get_data(as_text=True)
    assert refs_and_notes(repo) == before and tracking.get_run(rid).info.run_name == "first"
    post(c, f"/edit/runs/{rid}/rename", headers={"Origin": "http://127.0.0.1:5050", "Host": "127.0.0.1:5050",
                                                "Sec-Fetch-Site": "same-origin"}, name="ok", csrf_token="tok-123")
    assert tracking.get_run(rid).info.run_name == "ok"  # the viewer's own page


def test_edits_are_on_only_on_loopback_unless_allowed():
    from gitml.webview.server import writes_allowed

    assert writes_allowed("127.0.0.1", False, False) and writes_allowed("::1", False, False)
    assert not writes_allowed("127.0.0.1", True, False)
    assert not writes_allowed("0.0.0.0", False, False) and writes_allowed("0.0.0.0", False, True)
