"""MLflow's own server and UI over a gitml repository (issue 16), in headless Debian Chromium.

`mlflow server --backend-store-uri gitml:<repo> --registry-store-uri gitml:<repo>
--artifacts-destination gitml:///<repo>` is the team-server route: the real
MLflow UI and REST API on a repository gitml's API wrote. Each of MLflow's
pages a user opens first must show the repository's data, with no failed
request and no console error beyond the one MLflow's own server gives on
every backend (`/users/current` 404: no auth app), as the same pages on a
sqlite store do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import isolated_env, running_browser
from tests.conftest import git_run_ids
from tests.test_serving import free_port, server

pytestmark = pytest.mark.slow  # mlflow's server and a real browser

SEED = textwrap.dedent(r'''
    import json, sys
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    import gitml
    gitml.set_tracking_uri(sys.argv[1])
    gitml.set_experiment("served")
    ids = []
    for lr in (0.1, 0.01):
        with gitml.start_run(run_name=f"lr-{lr}") as r:
            gitml.log_param("lr", lr)
            for s in range(30):
                gitml.log_metric("loss", 1 / (s + 1) + lr, step=s)
            gitml.log_text("hello", "notes/readme.txt")
            X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
            gitml.sklearn.log_model(LogisticRegression().fit(X, [0, 1, 0, 1]), name="model")
        ids.append(r.info.run_id)
    gitml.register_model(f"runs:/{ids[-1]}/model", "clf")
    print(json.dumps({"runs": ids, "experiment": gitml.get_experiment_by_name("served").experiment_id}))
''')

# MLflow's server answers this 404 on every backend (it has no auth app); the same pages on sqlite do too.
MLFLOW_OWN_404 = "/ajax-api/2.0/mlflow/users/current"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for this module only: Playwright's sync API keeps an event loop running while it is
    started, so it is stopped before other modules (asyncio tests, the viewer's browser tests) run."""
    yield from running_browser("MLflow's UI tests")


@pytest.fixture(scope="module")
def mlflow_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("mlflow-ui")
    env = isolated_env(root / "home")
    repo = root / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "init"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", SEED, str(repo)], cwd=repo, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    seeded = json.loads(out.stdout.strip().splitlines()[-1])
    port = free_port()
    args = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--backend-store-uri", f"gitml:{repo}", "--registry-store-uri", f"gitml:{repo}",
            "--artifacts-destination", f"gitml://{repo}"]
    with server(args, root, port, ready_path="/health", timeout=120):
        yield {"base": f"http://127.0.0.1:{port}", "repo": repo, **seeded}


def visit(browser: Any, base: str, path: str, expect: list[str]) -> None:
    """Open one of MLflow's pages; it must show ``expect`` with no failed request or console error."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    failed: list[str] = []
    errors: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.request.method} {r.url}")
            if r.status >= 400 and MLFLOW_OWN_404 not in r.url else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource: the server responded with a status of 404") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(base + "/" + path, wait_until="load", timeout=60_000)
        body = page.locator("body")
        deadline = time.monotonic() + 45
        text = ""
        while time.monotonic() < deadline:  # a single-page app: its data arrives after "load"
            text = body.inner_text()
            if all(word in text for word in expect):
                break
            page.wait_for_timeout(250)
        page.wait_for_timeout(1500)  # requests the page makes once its data is in
        missing = [word for word in expect if word not in text]
        assert missing == [], f"{path}: not shown: {missing}\n{text[:2000]}"
        assert failed == [], f"{path}: failed requests: {failed}"
        assert errors == [], f"{path}: console errors: {errors}"
    finally:
        context.close()


def test_mlflows_ui_pages_show_the_repository_without_errors(browser: Any, mlflow_ui: dict[str, Any]):
    """Issue 16: experiments list, runs table, run page, its metric chart, its artifacts, the
    registered models, a model and a model version page, through MLflow's own UI on a gitml repo."""
    base, exp, run = mlflow_ui["base"], mlflow_ui["experiment"], mlflow_ui["runs"][-1]
    pages = [
        ("#/experiments", ["served"]),
        (f"#/experiments/{exp}/runs", ["lr-0.1", "lr-0.01"]),
        (f"#/experiments/{exp}/runs/{run}", ["lr-0.01", "0.01"]),
        (f"#/experiments/{exp}/runs/{run}/model-metrics", ["loss"]),
        (f"#/experiments/{exp}/runs/{run}/artifacts", ["notes", "model"]),
        ("#/models", ["clf"]),
        ("#/models/clf", ["clf", "Version 1"]),
        ("#/models/clf/versions/1", ["Version 1", "lr-0.01"]),
    ]
    for path, expect in pages:
        visit(browser, base, path, expect)


def test_the_ui_reads_what_the_rest_api_wrote(browser: Any, mlflow_ui: dict[str, Any]):
    """A run logged over MLflow's REST API lands in git and shows in the UI."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_ui["base"])
    run = client.create_run(mlflow_ui["experiment"], run_name="over-http")
    client.log_metric(run.info.run_id, "acc", 0.75)
    client.set_terminated(run.info.run_id)
    assert run.info.run_id in git_run_ids(mlflow_ui["repo"])
    visit(browser, mlflow_ui["base"], f"#/experiments/{mlflow_ui['experiment']}/runs", ["over-http"])
