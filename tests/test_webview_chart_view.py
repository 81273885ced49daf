"""The runs table's chart view: histories sampled on the server, one request per metric, drawn in Chromium.

``gitml.webview.sampling`` keeps at most N points of a run (the first, the
last, and the lowest and highest of each bucket between); ``/api/metrics/sampled``
answers a metric of many runs at once and treats the run ids in its URL as
untrusted (issue 18, item 1). The chart view drawing the sampled lines in
Chromium is in test_webview_e2e.py (``test_chart_view_samples_long_histories...``),
which shares the module's browser.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from gitml.webview.sampling import sample_indexes
from tests.conftest import init_repo, seeding

LONG = 2000  # points of the run that gets sampled (the view asks for 500)
SPIKE_STEP, SPIKE = 1234, 50.0
DIP_STEP, DIP = 777, -7.0


# -- the sampler --------------------------------------------------------------------------------


def buckets(n: int, max_points: int) -> list[range]:
    """The buckets sample_indexes documents: (max_points - 2) // 2 runs of consecutive points
    between the first and the last, as even as integer division makes them."""
    count, inner = (max_points - 2) // 2, n - 2
    return [range(1 + b * inner // count, 1 + (b + 1) * inner // count) for b in range(count)]


def test_sampler_keeps_every_point_of_a_short_history():
    assert sample_indexes([3.0, 1.0, 2.0], 500) == [0, 1, 2]
    assert sample_indexes([], 500) == []
    assert sample_indexes([1.0] * 500, 500) == list(range(500))


@pytest.mark.parametrize("n,max_points", [(501, 500), (10_000, 500), (10_000, 320), (1003, 7), (50, 3), (9, 2)])
def test_sampler_keeps_first_last_and_each_buckets_min_and_max(n: int, max_points: int):
    rng = random.Random(n * 31 + max_points)
    values = [rng.gauss(0, 1) for _ in range(n)]
    kept = sample_indexes(values, max_points)
    assert len(kept) <= max_points
    assert kept == sorted(set(kept)), "ascending, no index twice"
    assert kept[0] == 0 and kept[-1] == n - 1
    chosen = set(kept)
    for bucket in buckets(n, max_points):
        if not bucket:
            continue
        part = [values[i] for i in bucket]
        assert bucket[part.index(min(part))] in chosen
        assert bucket[part.index(max(part))] in chosen
        assert len(chosen & set(bucket)) <= 2


def test_sampler_never_drops_a_spike_that_even_spacing_would():
    values = [1.0] * 10_000
    spikes = {37: 90.0, 4321: -50.0, 9998: 12.0}
    for i, v in spikes.items():
        values[i] = v
    kept = sample_indexes(values, 320)
    assert all(i in kept for i in spikes)
    assert not set(spikes) & set(range(0, 10_000, 10_000 // 320)), "every k-th point would miss them all"


def test_sampler_skips_nan_but_keeps_a_gap_and_infinities():
    nan, inf = float("nan"), float("inf")
    values = [0.0] + [nan] * 10 + [5.0, nan, -2.0, 1.0, nan] + [inf] + [1.0] * 4 + [0.5]
    # max_points 8: 3 buckets between the first and the last point
    kept = sample_indexes(values, 8)
    assert len(kept) <= 8 and kept[0] == 0 and kept[-1] == len(values) - 1
    picked = [values[i] for i in kept]
    assert any(math.isnan(v) for v in picked), "a stretch of only NaN leaves a gap"
    assert -2.0 in picked and 5.0 in picked and inf in picked


def test_sampler_wants_room_for_the_first_and_last_point():
    with pytest.raises(ValueError, match="at least 2"):
        sample_indexes([1.0, 2.0, 3.0], 1)


# -- /api/metrics/sampled -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart_repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Runs "long" (2000 points of loss with one spike and one dip, and acc), "short" (10 points),
    "flat" (acc only, a NaN in it) in experiment "charts"; group a param."""
    with seeding(tmp_path_factory, "chart-view") as base:
        import gitml

        path = init_repo(base / "repo")
        gitml.set_tracking_uri(path)
        exp = gitml.set_experiment("charts").experiment_id
        ids = {}
        with gitml.start_run(run_name="long") as run:
            gitml.log_param("group", "a")
            for step in range(LONG):
                value = SPIKE if step == SPIKE_STEP else DIP if step == DIP_STEP else 1.0 / (1 + step / 100)
                gitml.log_metric("loss", value, step=step)
                if step % 100 == 0:
                    gitml.log_metric("acc", step / LONG, step=step)
            ids["long"] = run.info.run_id
        with gitml.start_run(run_name="short") as run:
            gitml.log_param("group", "a")
            for step in range(10):
                gitml.log_metric("loss", 2.0 - step / 10, step=step * 200)
                gitml.log_metric("acc", step / 10, step=step * 200)
            ids["short"] = run.info.run_id
        with gitml.start_run(run_name="flat") as run:
            gitml.log_param("group", "b")
            for step, value in enumerate([0.1, float("nan"), 0.3]):
                gitml.log_metric("acc", value, step=step)
            ids["flat"] = run.info.run_id
        gitml.flush()
        gitml.set_tracking_uri(None)
    return {"path": path, "experiment_id": exp, **ids}


@pytest.fixture
def client(chart_repo: dict[str, Any]) -> Any:
    from gitml.webview import create_app

    return create_app(chart_repo["path"]).test_client()


def sampled(client: Any, query: str, status: int = 200) -> dict[str, Any]:
    r = client.get("/api/metrics/sampled?" + query)
    assert r.status_code == status, (query, r.status_code, r.get_data(as_text=True)[:500])
    assert r.mimetype == "application/json"
    return r.get_json()


def test_sampled_endpoint_bounds_each_run_and_keeps_its_extremes(client: Any, chart_repo: dict[str, Any]):
    long, short, flat = chart_repo["long"], chart_repo["short"], chart_repo["flat"]
    d = sampled(client, f"key=loss&run={long}&run={short}&run={flat}&max_points=100")
    assert d["key"] == "loss" and d["max_points"] == 100
    assert [r["run_id"] for r in d["runs"]] == [long, short, flat]  # the order asked
    first, second, third = d["runs"]

    assert first["total"] == LONG and len(first["values"]) <= 100
    assert len(first["steps"]) == len(first["timestamps"]) == len(first["values"])
    assert first["steps"][0] == 0 and first["steps"][-1] == LONG - 1
    assert first["steps"] == sorted(first["steps"])
    assert dict(zip(first["steps"], first["values"]))[SPIKE_STEP] == SPIKE
    assert dict(zip(first["steps"], first["values"]))[DIP_STEP] == DIP
    full = client.get(f"/api/runs/{long}/metrics/loss").get_json()
    by_step = dict(zip(full["steps"], zip(full["timestamps"], full["values"])))
    assert all(by_step[s] == (t, v) for s, t, v in zip(first["steps"], first["timestamps"], first["values"]))

    whole = client.get(f"/api/runs/{short}/metrics/loss").get_json()
    assert second["total"] == 10
    assert (second["steps"], second["timestamps"], second["values"]) == \
        (whole["steps"], whole["timestamps"], whole["values"])  # short enough: every point
    assert third == {"run_id": flat, "total": 0, "steps": [], "timestamps": [], "values": []}


def test_sampled_endpoint_asks_for_500_points_unless_told(client: Any, chart_repo: dict[str, Any]):
    d = sampled(client, f"key=loss&run={chart_repo['long']}")
    assert d["max_points"] == 500
    assert 400 < len(d["runs"][0]["values"]) <= 500
    assert sampled(client, f"key=acc&run={chart_repo['flat']}")["runs"][0]["values"] == [0.1, None, 0.3]  # NaN: null


@pytest.mark.parametrize("query,status,says", [
    ("key=loss", 400, "Name the runs"),
    ("run={long}", 400, "Name the metric"),
    ("key=loss&run=%3Cscript%3Ealert(1)%3C/script%3E", 400, "Invalid run id"),
    ("key=loss&run={long8}", 400, "Invalid run id"),  # a prefix: the view sends whole ids
    ("key=loss&run={long}&run=0123456789abcdef0123456789abcdef", 404, "0123456789abcdef0123456789abcdef"),
    ("key=loss&run=" + "&run=".join(["{long}"] * 101), 400, "At most 100 runs"),
    ("key=../../etc&run={long}", 400, "metric key"),
    ("key=loss&run={long}&max_points=1", 400, "max_points must be between 2 and 10000"),
    ("key=loss&run={long}&max_points=10001", 400, "max_points must be between 2 and 10000"),
    ("key=loss&run={long}&max_points=lots", 400, "max_points must be a whole number"),
])
def test_sampled_endpoint_answers_bad_input_with_a_clear_4xx(client: Any, chart_repo: dict[str, Any], query: str,
                                                             status: int, says: str):
    query = query.format(long=chart_repo["long"], long8=chart_repo["long"][:8])
    d = sampled(client, query, status)
    assert says in d["message"]
    assert d["error_code"] == ("RESOURCE_DOES_NOT_EXIST" if status == 404 else "INVALID_PARAMETER_VALUE")


def test_chart_view_page_asks_for_sampled_histories(client: Any, chart_repo: dict[str, Any]):
    body = client.get(f"/runs?experiment_id={chart_repo['experiment_id']}&show=charts").get_data(as_text=True)
    assert 'data-sample-points="500"' in body
    assert "data-sample-points" not in client.get(f"/runs/{chart_repo['long']}").get_data(as_text=True)


def test_run_page_keeps_every_point(client: Any, chart_repo: dict[str, Any]):
    """The run's own page is not the sampled view: its charts fetch the full history."""
    body = client.get(f"/runs/{chart_repo['long']}").get_data(as_text=True)
    assert "chart-panel" in body
    full = client.get(f"/api/runs/{chart_repo['long']}/metrics/loss").get_json()
    assert len(full["values"]) == LONG



def test_a_run_that_logs_more_is_sampled_afresh(tracking: Any, repo: Any):
    """Samples are kept per run commit: a run that logs more points has a new commit, never an old sample."""
    from gitml.webview import create_app

    with tracking.start_run() as run:
        for step in range(600):
            tracking.log_metric("loss", 1.0, step=step)
    tracking.flush()
    client = create_app(repo).test_client()
    url = f"/api/metrics/sampled?key=loss&run={run.info.run_id}&max_points=50"
    first = client.get(url).get_json()["runs"][0]
    assert first["total"] == 600 and client.get(url).get_json()["runs"][0] == first  # asked again: the same

    tracking.MlflowClient().log_metric(run.info.run_id, "loss", 99.0, step=600)
    tracking.flush()
    again = client.get(url).get_json()["runs"][0]
    assert again["total"] == 601 and again["steps"][-1] == 600 and 99.0 in again["values"]


def test_text_cache_keeps_the_recently_used_within_its_size():
    from gitml.webview.sampling import TextCache

    cache = TextCache(max_chars=10)
    cache.put(("a",), "1234")
    cache.put(("b",), "5678")
    assert cache.get(("a",)) == "1234"  # now the most recently used
    cache.put(("c",), "90ab")  # 12 chars: the least recently used goes
    assert cache.get(("b",)) is None and cache.get(("a",)) == "1234" and cache.get(("c",)) == "90ab"
    cache.put(("big",), "x" * 11)  # larger than the whole cache: not kept, nothing evicted for it
    assert cache.get(("big",)) is None and len(cache) == 2
