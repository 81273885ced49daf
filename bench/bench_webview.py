#!/usr/bin/env python
"""Benchmark gitml's web viewer (`gitml ui`) against MLflow's tracking server in one run.

  a  the runs page over N runs (10k): gitml's `GET /runs` (HTML, default
     sort, 50 a page), the same page sorted and filtered, and `GET /api/runs`,
     through the Flask test client of `gitml.webview.create_app`; MLflow's
     tracking server (its own Flask app, in process, on a sqlite store)
     answering `POST /api/2.0/mlflow/runs/search` with max_results=50 and the
     same order and filter. Server time: the request in and the body out.
  b  a chart of one metric with 100k points: the real `gitml ui` server and
     headless Chromium, from navigation start until the chart card says
     data-drawn="1"; and the server side alone, gitml's
     `/api/runs/<id>/metrics/<key>` against MLflow's `metrics/get-history`
     for the same 100k points.

  c  the runs table's chart view: R runs (100) with P points each (10k) of
     one metric, `GET /runs?show=charts` in headless Chromium until every
     run's line is drawn (the view fetches each history sampled to 500
     points, `/api/metrics/sampled`), then "Group by" a param (mean and
     min-max band of 5 groups) until redrawn: loads on one server after an
     untimed first one, and first loads on a freshly started server (no
     sample cached). The server side alone, in process: the sampled
     histories uncached and cached, and every point of every run (what the
     view fetched before it sampled). MLflow's server answering what its
     chart view asks for the same runs (`metrics/get-history-bulk-interval`,
     a sample of each history) for the server side.

Prints each side's median, the ratio MLflow / gitml and a summary against
the targets (runs page <= 300 ms, chart drawn <= 1 s, chart view of 100 runs
x 10k points <= 1.5 s). See bench/README.md.

    python bench/bench_webview.py              # full sizes, a few minutes
    python bench/bench_webview.py --quick      # 1k runs, 20k points
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # bench_tracking's helpers; tests.browser's Chromium

from bench_tracking import (  # noqa: E402
    EXPERIMENT, MlflowDbs, Workspace, median, new_git_repo, now, populate_mlflow_orm, ratio, say, versions,
    enter_scratch, finish, leave_scratch,
)

FILTER = "params.p1 = '3'"
ORDER = "metrics.m1 DESC"
METRIC = "loss"
CHART_SELECTOR = '.chart-panel .chart-card[data-drawn="1"]'  # the card of the one metric

FULL = {"runs": 10_000, "points": 100_000, "reps": 5, "chart_reps": 5, "view_runs": 100, "view_points": 10_000}
QUICK = {"runs": 1_000, "points": 20_000, "reps": 3, "chart_reps": 2, "view_runs": 20, "view_points": 2_000}
TARGETS = {"runs_page": 300.0, "chart_drawn": 1000.0, "chart_view": 1500.0}  # ms


# -- (a) the runs page --------------------------------------------------------------------------------


def dataset(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """N runs with 5 params, 5 metrics and 3 tags; identical on both sides."""
    rng = random.Random(seed)
    return [
        {
            "name": f"run-{i}",
            "params": {"p1": str(rng.randrange(10)), "p2": rng.choice(["adam", "sgd", "rmsprop"]),
                       "p3": f"{rng.random():.4f}", "p4": str(rng.randrange(1, 6) * 32), "p5": f"{rng.random():.3f}"},
            "metrics": {f"m{k}": rng.random() for k in range(1, 6)},
            "tags": {"model": rng.choice(["ridge", "lasso", "forest"]), "team": rng.choice(["a", "b"]),
                     "seed": str(rng.randrange(1000))},
        }
        for i in range(n)
    ]


def populate_gitml(data: list[dict[str, Any]]) -> float:
    """The runs through gitml's public API, one named run each (as bench_tracking's (d), plus names)."""
    import gitml

    t0 = now()
    for run in data:
        with gitml.start_run(run_name=run["name"]):
            gitml.log_params(run["params"])
            gitml.log_metrics(run["metrics"])
            gitml.set_tags(run["tags"])
    gitml.flush()
    return now() - t0


def timed(fn: Any, reps: int) -> dict[str, Any]:
    """First call (cold) and the median of ``reps`` more (warm), in ms; the last answer."""
    t0 = now()
    answer = fn()
    cold = (now() - t0) * 1e3
    samples = []
    for _ in range(reps):
        t0 = now()
        answer = fn()
        samples.append((now() - t0) * 1e3)
    return {"cold_ms": cold, "warm_ms": median(samples), "samples_ms": samples, "answer": answer}


def gitml_get(client: Any, path: str, **params: str) -> Any:
    url = path + ("?" + urllib.parse.urlencode(params) if params else "")

    def call() -> Any:
        resp = client.get(url)
        if resp.status_code != 200:
            raise RuntimeError(f"gitml GET {url} answered {resp.status_code}: {resp.get_data(as_text=True)[:500]}")
        return resp.get_json() if path.startswith("/api/") else resp.get_data()

    return call


def mlflow_app(uri: str, artifact_root: Path) -> Any:
    """MLflow's tracking server app (what `mlflow server` runs), on the store at ``uri``; a test client."""
    os.environ["_MLFLOW_SERVER_FILE_STORE"] = uri  # what `mlflow server --backend-store-uri` sets
    os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = str(artifact_root)
    from mlflow.server import app, handlers

    handlers._tracking_store = None  # a new store: the server caches the first one it opens
    handlers._model_registry_store = None
    return app.test_client()


def mlflow_search(client: Any, body: dict[str, Any]) -> Any:
    def call() -> Any:
        resp = client.post("/api/2.0/mlflow/runs/search", json=body)
        if resp.status_code != 200:
            raise RuntimeError(f"MLflow runs/search answered {resp.status_code}: {resp.get_data(as_text=True)[:500]}")
        return resp.get_json()

    return call


def names(runs: list[dict[str, Any]]) -> list[str]:
    return [r["info"]["run_name"] for r in runs]


def a_runs_page(ws: Workspace, dbs: MlflowDbs, n: int, reps: int) -> dict[str, Any]:
    import gitml
    from gitml.webview import create_app

    data = dataset(n)
    out: dict[str, Any] = {"runs": n, "filter": FILTER, "order_by": ORDER}

    repo = new_git_repo(ws, "a-gitml")
    gitml.set_tracking_uri(str(repo))
    gitml.set_experiment(EXPERIMENT)
    pop = populate_gitml(data)
    say(f"    gitml : populated {n} runs via the API in {pop:.1f} s")
    client = create_app(repo).test_client()
    g = {
        "page": timed(gitml_get(client, "/runs"), reps),
        "page_filtered": timed(gitml_get(client, "/runs", order_by=ORDER, filter=FILTER), reps),
        "api_filtered": timed(gitml_get(client, "/api/runs", order_by=ORDER, filter=FILTER), reps),
        "api": timed(gitml_get(client, "/api/runs"), reps),
        "populate_s": pop,
    }
    out["gitml"] = g

    uri, exp_id, mdir = dbs.fresh("a-mlflow")
    pop = populate_mlflow_orm(uri, exp_id, mdir / "artifacts", data)
    say(f"    mlflow: populated {n} runs (ORM bulk insert) in {pop:.1f} s")
    mclient = mlflow_app(uri, mdir / "artifacts")
    base = {"experiment_ids": [exp_id], "max_results": 50}
    m = {
        "page": timed(mlflow_search(mclient, base), reps),  # its default order: start_time DESC
        "filtered": timed(mlflow_search(mclient, {**base, "filter": FILTER, "order_by": [ORDER]}), reps),
        "populate_s": pop,
    }
    out["mlflow"] = m

    # Same question, same answer, or the timings mean nothing.
    g_runs = g["api_filtered"]["answer"]["runs"]
    m_runs = m["filtered"]["answer"].get("runs", [])
    expected = sum(1 for r in data if r["params"]["p1"] == "3")
    out["results_agree"] = names(g_runs) == names(m_runs) and g["api_filtered"]["answer"]["total"] == expected
    if not out["results_agree"]:
        say(f"    WARNING: filtered pages differ: gitml total {g['api_filtered']['answer']['total']} "
            f"(expected {expected}), first {names(g_runs)[:3]} vs MLflow {names(m_runs)[:3]}")
    out["page_bytes"] = len(g["page"]["answer"])
    for side in (g, m):
        for k, v in side.items():
            if isinstance(v, dict):
                v.pop("answer", None)
    gitml.set_tracking_uri(None)
    return out


# -- (b) a chart of 100k points ------------------------------------------------------------------------

# Installed before the page's own scripts: the time (ms since navigation start)
# at which a chart card first says data-drawn="1".
OBSERVE_DRAWN = """(() => {
  const mark = () => {
    const el = document.querySelector(%s);
    if (el && window.__gitmlDrawn === undefined) {
      window.__gitmlDrawn = performance.now();
      window.__gitmlPoints = el.getAttribute('data-points');
    }
  };
  new MutationObserver(mark).observe(document, {subtree: true, childList: true, attributes: true,
                                                attributeFilter: ['data-drawn']});
})();""" % json.dumps(CHART_SELECTOR)


def series(n: int, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [1.0 / (1 + i / 1000) + rng.random() * 0.05 for i in range(n)]


def chart_in_browser(url: str, reps: int) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    from tests.browser import VIEWPORT, chromium_missing, launch_browser

    problem = chromium_missing()
    if problem:
        raise RuntimeError(problem)
    samples = []
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        try:
            for i in range(reps + 1):  # the first is an untimed warm-up (server caches, Chromium start-up)
                ctx = browser.new_context(viewport=VIEWPORT)  # fresh context: nothing cached
                page = ctx.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.add_init_script(OBSERVE_DRAWN)
                page.goto(url, wait_until="commit")
                page.wait_for_function("() => window.__gitmlDrawn !== undefined", timeout=60_000)
                s = page.evaluate("""() => {
                  const r = performance.getEntriesByType('resource').filter(e => e.name.includes('/metrics/'));
                  const nav = performance.getEntriesByType('navigation')[0];
                  const card = document.querySelector(%s);
                  return {drawn_ms: window.__gitmlDrawn, points: window.__gitmlPoints,
                          html_ms: nav ? nav.responseEnd : null,
                          dom_ready_ms: nav ? nav.domContentLoadedEventEnd : null,
                          fetch_start_ms: r.length ? Math.min(...r.map(e => e.startTime)) : null,
                          fetch_end_ms: r.length ? Math.max(...r.map(e => e.responseEnd)) : null,
                          fetch_ms: r.length ? Math.max(...r.map(e => e.responseEnd - e.startTime)) : null,
                          fetch_bytes: r.reduce((a, e) => a + (e.encodedBodySize || 0), 0),
                          draw_ms: card ? Number(card.getAttribute('data-draw-ms')) : null};
                }""" % json.dumps(CHART_SELECTOR))
                ctx.close()
                if errors:
                    raise RuntimeError(f"errors on {url}: {errors}")
                if i:
                    samples.append(s)
        finally:
            browser.close()
    return samples


def b_chart(ws: Workspace, dbs: MlflowDbs, n: int, reps: int, chart_reps: int) -> dict[str, Any]:
    import gitml
    from gitml.webview import create_app
    from tests.browser import UiServer

    vals = series(n)
    out: dict[str, Any] = {"points": n, "metric": METRIC}

    repo = new_git_repo(ws, "b-gitml")
    gitml.set_tracking_uri(str(repo))
    gitml.set_experiment(EXPERIMENT)
    t0 = now()
    with gitml.start_run(run_name="chart") as run:
        for i, v in enumerate(vals):
            gitml.log_metric(METRIC, v, step=i)
    gitml.flush()
    run_id = run.info.run_id
    say(f"    gitml : logged {n} points in {now() - t0:.1f} s")

    client = create_app(repo).test_client()
    api = timed(gitml_get(client, f"/api/runs/{run_id}/metrics/{METRIC}"), reps)
    got = len(api.pop("answer")["values"])
    if got != n:
        say(f"    WARNING: gitml's metric history has {got} points, not {n}")
    g: dict[str, Any] = {"api": api}

    server = UiServer(repo, log=ws.new_dir("b-ui") / "gitml-ui.log")
    try:
        base = server.wait_ready(60)
        page_url = f"{base}/runs/{run_id}"
        http = timed(lambda: urllib.request.urlopen(f"{base}/api/runs/{run_id}/metrics/{METRIC}").read(), reps)
        g["http_bytes"] = len(http.pop("answer"))
        g["http"] = http
        samples = chart_in_browser(page_url, chart_reps)
    finally:
        server.stop()
    g["browser_samples"] = samples
    g["drawn_ms"] = median([s["drawn_ms"] for s in samples])
    g["browser_fetch_ms"] = median([s["fetch_ms"] for s in samples if s["fetch_ms"] is not None])
    g["js_draw_ms"] = median([s["draw_ms"] for s in samples if s["draw_ms"] is not None])
    g["points_drawn"] = samples[-1]["points"] if samples else None
    out["gitml"] = g
    gitml.set_tracking_uri(None)

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    uri, exp_id, mdir = dbs.fresh("b-mlflow")
    mc = MlflowClient(uri)
    r = mc.create_run(exp_id, run_name="chart")
    ts = int(time.time() * 1000)
    t0 = now()
    for start in range(0, n, 1000):  # log_batch takes at most 1000 metrics
        mc.log_batch(r.info.run_id, metrics=[Metric(METRIC, v, ts, start + j) for j, v in enumerate(vals[start:start + 1000])])
    mc.set_terminated(r.info.run_id)
    say(f"    mlflow: logged {n} points (log_batch x {-(-n // 1000)}) in {now() - t0:.1f} s")
    mclient = mlflow_app(uri, mdir / "artifacts")
    rid = urllib.parse.quote(r.info.run_id)

    def mlflow_get(path: str) -> Any:
        def call() -> Any:
            resp = mclient.get(path)
            if resp.status_code != 200:
                raise RuntimeError(f"MLflow GET {path} answered {resp.status_code}: {resp.get_data(as_text=True)[:300]}")
            return resp.get_json()
        return call

    hist = timed(mlflow_get(f"/api/2.0/mlflow/metrics/get-history?run_id={rid}&metric_key={METRIC}"), reps)
    got = len(hist.pop("answer").get("metrics", []))
    if got != n:
        say(f"    WARNING: MLflow's get-history gave {got} points, not {n}")
    # What MLflow's own UI asks for to draw a chart: a sample of the history.
    sampled = timed(mlflow_get(f"/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={rid}"
                               f"&metric_key={METRIC}"), reps)
    sampled["points"] = len(sampled.pop("answer").get("metrics", []))
    out["mlflow"] = {"get_history": hist, "bulk_interval": sampled}
    return out


# -- (c) the chart view of many runs ------------------------------------------------------------------

ALL_DRAWN = """() => {
  const cards = [...document.querySelectorAll('.runs-charts .chart-card')];
  return cards.length > 0 && cards.every(c => c.getAttribute('data-drawn') === '1');
}"""
GROUPED = """() => [...document.querySelectorAll('.runs-charts .chart-card .u-legend .u-label')]
  .some(el => el.textContent.endsWith('mean)'))"""


BROWSER_STATS = """() => {
  const r = performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'));
  const card = document.querySelector('.runs-charts .chart-card');
  return {requests: r.length, bytes: r.reduce((a, e) => a + (e.encodedBodySize || 0), 0),
          fetch_start_ms: r.length ? Math.min(...r.map(e => e.startTime)) : null,
          fetch_end_ms: r.length ? Math.max(...r.map(e => e.responseEnd)) : null,
          draw_ms: card ? Number(card.getAttribute('data-draw-ms')) : null,
          points: card ? Number(card.getAttribute('data-points')) : null,
          note: card ? card.querySelector('.chart-note').textContent : null};
}"""


def chart_view_loads(url: str, loads: int, warm_up: bool, runs: int, group: bool = True) -> list[dict[str, Any]]:
    """``loads`` page loads of the chart view in fresh browser contexts (after an untimed one if ``warm_up``):
    ms from navigation until every line is drawn, then until "Group by" has redrawn; what the page fetched."""
    from playwright.sync_api import sync_playwright

    from tests.browser import VIEWPORT, launch_browser

    samples = []
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        try:
            for i in range(loads + warm_up):
                ctx = browser.new_context(viewport=VIEWPORT)
                page = ctx.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                t0 = now()
                page.goto(url, wait_until="commit")
                page.wait_for_function(ALL_DRAWN, timeout=120_000)
                s = {"drawn_ms": (now() - t0) * 1e3, **page.evaluate(BROWSER_STATS)}
                s["lines"] = page.evaluate("() => document.querySelectorAll('.runs-charts .chart-card .u-legend "
                                           ".u-series').length - 1")
                if group:
                    t1 = now()
                    page.locator("select.group-by").select_option("group")
                    page.wait_for_function(GROUPED, timeout=120_000)
                    page.wait_for_function(ALL_DRAWN, timeout=120_000)
                    s["grouped_ms"] = (now() - t1) * 1e3
                ctx.close()
                if errors:
                    raise RuntimeError(f"errors on {url}: {errors}")
                if s["lines"] != runs:
                    say(f"    WARNING: the chart view drew {s['lines']} lines, not {runs}")
                if i or not warm_up:
                    samples.append(s)
        finally:
            browser.close()
    return samples


def c_chart_view(ws: Workspace, dbs: MlflowDbs, runs: int, points: int, reps: int) -> dict[str, Any]:
    import gitml
    from gitml.webview import create_app
    from gitml.webview import data as webdata

    from tests.browser import chromium_missing, UiServer

    vals = series(points)
    out: dict[str, Any] = {"runs": runs, "points_per_run": points, "metric": METRIC}
    repo = new_git_repo(ws, "c-gitml")
    gitml.set_tracking_uri(str(repo))
    exp_id = gitml.set_experiment(EXPERIMENT).experiment_id
    run_ids = []
    t0 = now()
    for r in range(runs):
        with gitml.start_run(run_name=f"run-{r}") as run:
            gitml.log_param("group", str(r % 5))
            for i, v in enumerate(vals):
                gitml.log_metric(METRIC, v * (1 + r / runs), step=i)
        run_ids.append(run.info.run_id)
    gitml.flush()
    gitml.set_tracking_uri(None)
    say(f"    gitml : logged {runs} runs x {points} points in {now() - t0:.1f} s")

    # The server side alone, in process: the view's sampled histories of all the runs in one request
    # (the page sends them in batches of 25, to several worker processes), with the per-process
    # cache of samples empty (a first view) and full (a view opened again); and what the view
    # fetched before it sampled, every point of every run (one request a run).
    client = create_app(repo).test_client()
    sampled_url = f"/api/metrics/sampled?key={METRIC}&" + "&".join(f"run={r}" for r in run_ids)
    fetch = gitml_get(client, sampled_url)

    def uncached() -> Any:
        webdata.SAMPLE_CACHE.clear()
        return fetch()

    server_cold = timed(uncached, reps)
    answer = server_cold.pop("answer")
    server_warm = timed(fetch, reps)
    server_warm.pop("answer")
    full = timed(lambda: [gitml_get(client, f"/api/runs/{r}/metrics/{METRIC}")() for r in run_ids], reps)
    full.pop("answer")
    server = {"sampled_cold": server_cold, "sampled_warm": server_warm, "full_histories": full,
              "points_sent": sum(len(r["values"]) for r in answer["runs"]), "max_points": answer["max_points"]}
    say(f"    server: sampled histories of {runs} runs {server_cold['warm_ms']:.0f} ms uncached, "
        f"{server_warm['warm_ms']:.1f} ms cached ({server['points_sent']} points); every point of every run "
        f"(before sampling) {full['warm_ms']:.0f} ms")

    problem = chromium_missing()
    if problem:
        raise RuntimeError(problem)
    url_path = f"/runs?experiment_id={exp_id}&per_page={runs}&show=charts"
    # A view opened again: one server, an untimed first load, then `reps` loads (as before sampling).
    server_proc = UiServer(repo, log=ws.new_dir("c-ui") / "gitml-ui.log")
    try:
        warm = chart_view_loads(server_proc.wait_ready(60) + url_path, reps, True, runs)
    finally:
        server_proc.stop()
    # The first view after `gitml ui` starts: a new server for each load, nothing cached in it.
    first = []
    for i in range(reps):
        server_proc = UiServer(repo, log=ws.new_dir(f"c-ui-first-{i}") / "gitml-ui.log")
        try:
            first += chart_view_loads(server_proc.wait_ready(60) + url_path, 1, False, runs, group=False)
        finally:
            server_proc.stop()
    for s in warm:
        say(f"    again: drawn {s['drawn_ms']:.0f} ms (fetch {s['fetch_start_ms'] or 0:.0f}-{s['fetch_end_ms'] or 0:.0f} ms, "
            f"{s['requests']} requests, {s['bytes'] / 1e6:.1f} MB; draw {s['draw_ms']:.0f} ms), grouped {s['grouped_ms']:.0f} ms")
    for s in first:
        say(f"    first: drawn {s['drawn_ms']:.0f} ms (fetch {s['fetch_start_ms'] or 0:.0f}-{s['fetch_end_ms'] or 0:.0f} ms, "
            f"draw {s['draw_ms']:.0f} ms)")
    out["gitml"] = {
        "drawn_ms": median([s["drawn_ms"] for s in warm]), "grouped_ms": median([s["grouped_ms"] for s in warm]),
        "drawn_first_ms": median([s["drawn_ms"] for s in first]),
        "browser_fetch_ms": median([(s["fetch_end_ms"] or 0) - (s["fetch_start_ms"] or 0) for s in warm]),
        "browser_fetch_first_ms": median([(s["fetch_end_ms"] or 0) - (s["fetch_start_ms"] or 0) for s in first]),
        "js_draw_ms": median([s["draw_ms"] for s in warm]),
        "drawn_samples_ms": [s["drawn_ms"] for s in warm], "grouped_samples_ms": [s["grouped_ms"] for s in warm],
        "drawn_first_samples_ms": [s["drawn_ms"] for s in first],
        "browser_samples": warm, "browser_first_samples": first, "server": server,
    }

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    uri, m_exp, mdir = dbs.fresh("c-mlflow")
    mc = MlflowClient(uri)
    ids = []
    ts = int(time.time() * 1000)
    t0 = now()
    for r in range(runs):
        run = mc.create_run(m_exp, run_name=f"run-{r}")
        for start in range(0, points, 1000):
            mc.log_batch(run.info.run_id, metrics=[Metric(METRIC, v * (1 + r / runs), ts, start + j)
                                                   for j, v in enumerate(vals[start:start + 1000])])
        mc.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    say(f"    mlflow: logged {runs} runs x {points} points (log_batch) in {now() - t0:.1f} s")
    mclient = mlflow_app(uri, mdir / "artifacts")
    query = "&".join(f"run_ids={urllib.parse.quote(r)}" for r in ids[:100])

    def sampled() -> Any:
        resp = mclient.get(f"/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?{query}&metric_key={METRIC}")
        if resp.status_code != 200:
            raise RuntimeError(f"MLflow bulk-interval answered {resp.status_code}: {resp.get_data(as_text=True)[:300]}")
        return resp.get_json()

    bulk = timed(sampled, reps)
    bulk["points"] = len(bulk.pop("answer").get("metrics", []))
    out["mlflow"] = {"bulk_interval": bulk}
    return out


# -- report ---------------------------------------------------------------------------------------------


def summary_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(key: str, label: str, g: float, m: float | None, target_key: str | None = None) -> None:
        target = TARGETS.get(target_key) if target_key else None
        rows.append({"key": key, "workload": label, "unit": "ms", "gitml": g, "mlflow": m,
                     "ratio": ratio(m, g) if m is not None else None, "target": target,
                     "meets_target": (g <= target) if target is not None else None})

    w = res["workloads"]
    if "a" in w:
        a, n = w["a"], w["a"]["runs"]
        g, m = a["gitml"], a["mlflow"]
        add("runs_page", f"(a) {n} runs: GET /runs, warm", g["page"]["warm_ms"], m["page"]["warm_ms"], "runs_page")
        add("runs_page_cold", f"(a) {n} runs: GET /runs, first", g["page"]["cold_ms"], m["page"]["cold_ms"])
        add("runs_page_filtered", f"(a) {n} runs: /runs sorted+filtered", g["page_filtered"]["warm_ms"],
            m["filtered"]["warm_ms"], "runs_page")
        add("api_runs_filtered", f"(a) {n} runs: /api/runs sorted+filtered", g["api_filtered"]["warm_ms"],
            m["filtered"]["warm_ms"])
        add("api_runs", f"(a) {n} runs: /api/runs", g["api"]["warm_ms"], m["page"]["warm_ms"])
    if "b" in w:
        b, n = w["b"], w["b"]["points"]
        g, m = b["gitml"], b["mlflow"]
        add("chart_drawn", f"(b) {n // 1000}k points: chart drawn (Chromium)", g["drawn_ms"], None, "chart_drawn")
        add("chart_fetch_browser", f"(b) {n // 1000}k points: fetch in browser", g["browser_fetch_ms"], None)
        add("chart_js_draw", f"(b) {n // 1000}k points: draw (data-draw-ms)", g["js_draw_ms"], None)
        add("metric_history", f"(b) {n // 1000}k points: history, server", g["api"]["warm_ms"],
            m["get_history"]["warm_ms"])
        add("metric_history_http", f"(b) {n // 1000}k points: history over HTTP", g["http"]["warm_ms"], None)
        add("mlflow_sampled", f"(b) MLflow UI's sampled history ({m['bulk_interval']['points']} pts)",
            g["api"]["warm_ms"], m["bulk_interval"]["warm_ms"])
    if "c" in w:
        c = w["c"]
        label = f"(c) chart view, {c['runs']} runs x {c['points_per_run'] // 1000}k pts"
        add("chart_view_drawn", f"{label}: all drawn (Chromium)", c["gitml"]["drawn_ms"],
            c["mlflow"]["bulk_interval"]["warm_ms"], "chart_view")
        add("chart_view_drawn_first", f"{label}: all drawn, first view after start", c["gitml"]["drawn_first_ms"],
            c["mlflow"]["bulk_interval"]["cold_ms"], "chart_view")
        add("chart_view_grouped", f"{label}: grouped by a param", c["gitml"]["grouped_ms"], None)
        srv = c["gitml"]["server"]
        add("chart_view_server", f"{label}: server, sampled histories (uncached)", srv["sampled_cold"]["warm_ms"],
            c["mlflow"]["bulk_interval"]["warm_ms"])
        add("chart_view_server_cached", f"{label}: server, sampled histories (cached)", srv["sampled_warm"]["warm_ms"],
            None)
        add("chart_view_server_full", f"{label}: server, every point (before sampling)", srv["full_histories"]["warm_ms"],
            None)
        add("chart_view_js_draw", f"{label}: draw in the browser (data-draw-ms)", c["gitml"]["js_draw_ms"], None)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1k runs, 20k points, fewer repetitions")
    ap.add_argument("--only", default="abc", help="workloads to run, e.g. 'b' (default: abc)")
    ap.add_argument("--runs", type=int, help="runs in (a) (default 10000, quick 1000)")
    ap.add_argument("--points", type=int, help="metric points in (b) (default 100000, quick 20000)")
    ap.add_argument("--repeat", type=int, help="warm requests per measurement (default 5, quick 3)")
    ap.add_argument("--chart-repeat", type=int, help="page loads in Chromium after a warm-up (default 5, quick 2)")
    ap.add_argument("--json", type=Path, help="write all samples and the summary here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)

    sizes = dict(QUICK if args.quick else FULL)
    for k in ("runs", "points"):
        if getattr(args, k):
            sizes[k] = getattr(args, k)
    if args.repeat:
        sizes["reps"] = args.repeat
    if args.chart_repeat:
        sizes["chart_reps"] = args.chart_repeat

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    root, old_cwd = enter_scratch("gitml-bench-webview-")
    ws = Workspace(root)
    t_start = now()
    try:
        from importlib.metadata import version

        meta = {"mode": "quick" if args.quick else "full", "sizes": sizes,
                "versions": {**versions(), "flask": version("flask")}, "tmp": str(root)}
        say(f"gitml web viewer bench ({meta['mode']}) in {root}")
        say("  " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
        dbs = MlflowDbs(ws)
        res: dict[str, Any] = {"meta": meta, "workloads": {}}
        w = res["workloads"]

        if "a" in args.only:
            n = sizes["runs"]
            say(f"\n== (a) runs page over {n} runs: 50 a page; sorted+filtered: {ORDER!r}, {FILTER!r}")
            a = a_runs_page(ws, dbs, n, sizes["reps"])
            w["a"] = a
            for label, gk, mk in (("GET /runs (default)", "page", "page"),
                                  ("GET /runs sorted+filtered", "page_filtered", "filtered"),
                                  ("GET /api/runs sorted+filtered", "api_filtered", "filtered")):
                g, m = a["gitml"][gk], a["mlflow"][mk]
                say(f"    {label:<30} gitml first {g['cold_ms']:.0f} ms, warm {g['warm_ms']:.1f} ms | MLflow "
                    f"runs/search first {m['cold_ms']:.0f} ms, warm {m['warm_ms']:.1f} ms | "
                    f"{ratio(m['warm_ms'], g['warm_ms']):.1f}x")

        if "b" in args.only:
            n = sizes["points"]
            say(f"\n== (b) a chart of {n} points: run page in headless Chromium until {CHART_SELECTOR}")
            b = b_chart(ws, dbs, n, sizes["reps"], sizes["chart_reps"])
            w["b"] = b
            g, m = b["gitml"], b["mlflow"]
            for s in g["browser_samples"]:
                say(f"    page load: html {s['html_ms'] or 0:.0f} ms, DOM ready {s['dom_ready_ms'] or 0:.0f} ms, "
                    f"metric fetch {s['fetch_start_ms'] or 0:.0f}-{s['fetch_end_ms'] or 0:.0f} ms "
                    f"({s['fetch_bytes'] / 1e6:.1f} MB), draw {s['draw_ms'] or 0:.0f} ms, "
                    f"drawn at {s['drawn_ms']:.0f} ms, data-points {s['points']}")
            say(f"    history server-side: gitml {g['api']['warm_ms']:.0f} ms (HTTP {g['http']['warm_ms']:.0f} ms, "
                f"{g['http_bytes'] / 1e6:.1f} MB) | MLflow get-history {m['get_history']['warm_ms']:.0f} ms | "
                f"{ratio(m['get_history']['warm_ms'], g['api']['warm_ms']):.1f}x")

        if "c" in args.only:
            say(f"\n== (c) chart view: {sizes['view_runs']} runs x {sizes['view_points']} points in headless Chromium")
            c = c_chart_view(ws, dbs, sizes["view_runs"], sizes["view_points"], sizes["chart_reps"])
            w["c"] = c
            say(f"    gitml: all {c['runs']} lines drawn in {c['gitml']['drawn_ms']:.0f} ms (first view after start "
                f"{c['gitml']['drawn_first_ms']:.0f} ms), grouped in "
                f"{c['gitml']['grouped_ms']:.0f} ms | MLflow server, sampled histories of the runs: "
                f"{c['mlflow']['bulk_interval']['warm_ms']:.0f} ms ({c['mlflow']['bulk_interval']['points']} points)")

        finish(res, summary_rows(res), t_start, args.json, old_cwd)
    finally:
        leave_scratch(root, old_cwd, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
