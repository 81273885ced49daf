"""The web viewer end to end: the real `gitml ui` server driven by headless Chromium.

One demo repository (tests.browser.seed_repo: two branches, four runs with
200-step histories and artifacts, one run made of script-injection payloads,
a model in production) and one server serve the whole module. Every page
visited must show the hostile run as text (window.__xss stays undefined, no
injected element appears) and log no console error. ``GITML_SCREENSHOTS=1``
writes build/screenshots/*.png of the main pages (the docs' images: examples/screenshots.py).
"""

from __future__ import annotations

import re

import pytest

from tests.browser import ODD_METRIC, XSS, XSS_FILE, DemoRepo, UiPage
from tests.webview_fixtures import *  # noqa: F403  (browser, ui_env, demo_repo, ui_server, ui)

pytestmark = pytest.mark.slow  # a real browser

CHART_DRAWN = '.chart-panel .chart-card[data-drawn="1"]'  # one card per metric key


def row_names(ui: UiPage) -> list[str]:
    return ui.page.locator("table.runs-table tbody td.name").all_inner_texts()


def expect_drawn_chart(ui: UiPage, min_points: int = 1) -> None:
    """A chart panel is drawn, says how many points, and its canvas has ink on it."""
    panel = ui.page.locator(CHART_DRAWN).first
    panel.wait_for(state="attached")
    points = panel.get_attribute("data-points")
    assert points is not None and int(points) >= min_points, f"data-points={points!r}"
    assert ui.canvas_ink(CHART_DRAWN) > 0, "the chart's canvas is blank"


def log_in_demo(demo_repo: DemoRepo, env: dict, code: str) -> str:
    """Run ``code`` (a script that prints a run id, given the repository as argv[1]) in a new process; the id.

    For the tests near the end of the module, which add runs to the shared demo repository."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code, str(demo_repo.path)], cwd=demo_repo.path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_runs_table_sorts_by_a_metric_and_filters(ui: UiPage, demo_repo: DemoRepo):
    ui.goto("/")  # redirects to the runs table
    assert ui.page.url.endswith("/runs")
    assert sorted(row_names(ui)) == sorted(demo_repo.runs)  # the hostile name shown verbatim, as text
    assert ui.page.locator(".table-bar .count").inner_text() == f"{len(demo_repo.runs)} runs"
    ui.screenshot("runs")

    by_acc = sorted(demo_repo.final_acc, key=demo_repo.final_acc.__getitem__)
    sort_acc = ui.page.locator("th.metrics-col a.sort", has_text=re.compile(r"^acc\b"))
    sort_acc.click()
    ui.page.wait_for_url(re.compile(r"order_by="))
    ui.check()
    assert row_names(ui) == by_acc[::-1]  # first click: highest first
    sort_acc.click()
    ui.page.wait_for_url(re.compile(r"ASC"))
    ui.check()
    assert row_names(ui) == by_acc

    box = ui.page.locator("input.filter-input")
    box.fill("metrics.acc > 0.5")
    box.press("Enter")
    ui.page.wait_for_url(re.compile(r"filter="))
    ui.check()
    assert sorted(row_names(ui)) == sorted(n for n, acc in demo_repo.final_acc.items() if acc > 0.5)
    assert box.input_value() == "metrics.acc > 0.5"  # kept for editing

    # A key with spaces, a slash and a colon, quoted as the search syntax wants.
    box.fill(f"metrics.`{ODD_METRIC}` < 0.5 and params.alpha != '0.1'")
    ui.page.locator("form.filter button[type=submit]").click()
    ui.page.wait_for_load_state("load")
    ui.check()
    assert sorted(row_names(ui)) == sorted(n for n, acc in demo_repo.final_acc.items()
                                           if acc * 0.9 < 0.5 and n != "ridge-a")

    box.fill("metrics.acc >")  # a broken filter is reported, not a crash
    box.press("Enter")
    ui.page.wait_for_load_state("load")
    assert ui.page.locator(".error-box").is_visible()
    assert row_names(ui) == []


def test_runs_table_numbers_stay_on_one_line_and_the_name_stays_in_view(ui: UiPage, demo_repo: DemoRepo):
    ui.goto("/runs")
    ui.page.locator("details.columns summary").click()
    keys = ui.page.locator("details.columns input[type=checkbox]")
    for i in range(keys.count()):  # every metric, param and tag: wider than the 1280 px window
        keys.nth(i).check()
    ui.page.locator("details.columns button[type=submit]").click()
    ui.page.wait_for_load_state("load")
    ui.check()
    wrap = ui.page.locator(".table-wrap")
    assert wrap.evaluate("el => el.scrollWidth > el.clientWidth")
    line = ui.page.locator("table.runs-table tbody td.nowrap").first.bounding_box()["height"]
    for cell in ui.page.locator("table.runs-table tbody span.num").all():
        assert cell.bounding_box()["height"] <= line, cell.inner_text()  # no number broken over two lines
        assert cell.get_attribute("title")  # the full value on hover
    name = ui.page.locator("table.runs-table tbody td.name").first
    left = wrap.bounding_box()["x"]
    wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    box = name.bounding_box()
    assert box is not None and left - 1 <= box["x"] <= left + 2, (left, box)  # pinned at the left edge
    assert name.is_visible()


def test_dark_mode_follows_the_system_and_the_toggle_sticks(browser, ui_server: str, demo_repo: DemoRepo):
    dark_bg, light_bg = "rgb(13, 17, 23)", "rgb(255, 255, 255)"
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, base_url=ui_server, color_scheme="dark")
    context.set_default_timeout(15_000)
    try:
        ui = UiPage(context.new_page(), ui_server)
        ui.goto(f"/runs/{demo_repo.runs['ridge-a']}")
        background = "() => getComputedStyle(document.body).backgroundColor"
        assert ui.page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        assert ui.page.evaluate(background) == dark_bg
        expect_drawn_chart(ui)
        ui.screenshot("run-dark", scroll_to="section.card:has(.chart-panel)")
        ui.page.locator("button.theme-toggle").click()
        assert ui.page.evaluate(background) == light_bg
        expect_drawn_chart(ui)  # redrawn in the light theme's colours
        ui.goto("/runs")  # the choice outlives the page
        assert ui.page.evaluate("() => document.documentElement.dataset.theme") == "light"
        assert ui.page.evaluate(background) == light_bg
        ui.check()
    finally:
        context.close()
    light = browser.new_context(base_url=ui_server, color_scheme="light")
    try:
        page = light.new_page()
        page.goto(ui_server + "/runs")
        assert page.evaluate("() => document.documentElement.dataset.theme") == "light"
    finally:
        light.close()


@pytest.mark.parametrize("width", [1280, 1920])
def test_pages_hold_their_layout_at_common_widths(browser, ui_server: str, demo_repo: DemoRepo, width: int):
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=ui_server)
    context.set_default_timeout(15_000)
    try:
        ui = UiPage(context.new_page(), ui_server)
        a, b = demo_repo.runs["ridge-a"], demo_repo.runs["ridge-b"]
        for path in ("/runs", f"/runs/{a}", f"/compare?run={a}&run={b}", "/diff?base=main&head=feature",
                     "/commits", "/models"):
            ui.goto(path)
            overflow = ui.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} is {overflow}px wider than a {width}px window"
    finally:
        context.close()


def test_chart_view_draws_every_run_and_groups_them_by_a_param(ui: UiPage, demo_repo: DemoRepo):
    ui.goto("/runs")
    ui.page.locator("a.view-switch", has_text="Chart view").click()
    ui.page.wait_for_url(re.compile(r"show=charts"))
    card = ui.page.locator('.runs-charts .chart-card[data-chart-key="acc"][data-drawn="1"]')
    card.wait_for()
    legend = card.locator(".u-legend .u-series .u-label")
    labels = legend.all_inner_texts()
    assert sorted(labels[1:]) == sorted(demo_repo.runs)  # a line per run, named (the hostile name as text)
    assert ui.canvas_ink('.runs-charts .chart-card[data-chart-key="acc"]') > 0
    assert not ui.page.locator(".table-wrap").is_visible()

    ui.page.locator("select.group-by").select_option("model")
    ui.page.wait_for_function("() => [...document.querySelectorAll('.runs-charts .chart-card[data-chart-key=\"acc\"] "
                              ".u-legend .u-label')].some(el => el.textContent.includes('(2 runs, mean)'))")
    shown = [t for t in legend.all_inner_texts()[1:] if t.endswith("mean)")]
    assert "model=ridge (2 runs, mean)" in shown and len(shown) == 3  # ridge, forest, the hostile one
    assert ui.canvas_ink('.runs-charts .chart-card[data-chart-key="acc"]') > 0
    ui.check()
    ui.screenshot("runs-charts", scroll_to=".runs-charts")

    box = ui.page.locator("input.filter-input")  # filtering keeps the chart view
    box.fill("params.model = 'ridge'")
    box.press("Enter")
    ui.page.wait_for_url(re.compile(r"filter="))
    assert "show=charts" in ui.page.url
    ui.page.locator('.runs-charts .chart-card[data-chart-key="acc"][data-drawn="1"]').wait_for()
    assert sorted(ui.page.locator('.runs-charts .chart-card[data-chart-key="acc"] .u-legend .u-label')
                  .all_inner_texts()[1:]) == ["ridge-a", "ridge-b"]
    ui.check()


def test_run_page_from_the_table_draws_the_metric_charts(ui: UiPage, demo_repo: DemoRepo):
    ui.goto("/runs")
    ui.page.locator("table.runs-table td.name a", has_text=re.compile(r"^ridge-a$")).click()
    ui.page.wait_for_url(f"**/runs/{demo_repo.runs['ridge-a']}")
    ui.check()
    assert ui.page.locator("h1").inner_text() == "ridge-a"
    assert ui.page.locator('[data-param-value="alpha"]').inner_text() == "0.1"
    expect_drawn_chart(ui, demo_repo.steps)
    ui.check()
    ui.screenshot("run", scroll_to="section.card:has(.chart-panel)")

    files = ui.page.locator("ul.files").inner_text()
    for name in ("config.json", "predictions.csv", "notes", "plots"):
        assert name in files


def test_artifacts_preview_text_table_and_image(ui: UiPage, demo_repo: DemoRepo):
    run_id = demo_repo.runs["ridge-a"]
    ui.goto(f"/runs/{run_id}/artifacts?path=notes/summary.txt")
    assert "trained on the demo data" in ui.page.locator("pre.text-preview").inner_text()
    ui.goto(f"/runs/{run_id}/artifacts?path=predictions.csv")
    assert ui.page.locator("table.csv thead th").all_inner_texts() == ["id", "y_true", "y_pred"]
    assert ui.page.locator("table.csv tbody tr").count() == 20
    ui.goto(f"/runs/{run_id}/artifacts?path=plots/curve.png")
    img = ui.page.locator("img.preview-image")
    img.wait_for()
    assert ui.page.wait_for_function("(img) => img.complete && img.naturalWidth === 160", arg=img.element_handle())
    ui.check()


def test_hostile_run_is_shown_as_text_everywhere(ui: UiPage, demo_repo: DemoRepo):
    run_id = demo_repo.hostile_run_id
    ui.goto(f"/runs/{run_id}")
    assert ui.page.locator("h1").inner_text() == XSS
    assert ui.page.locator('[data-param-value="model"]').inner_text() == XSS
    assert XSS in ui.page.locator("section.card", has_text="Tags").inner_text()
    expect_drawn_chart(ui)
    ui.check()
    assert ui.page.title().startswith(XSS)

    ui.goto(f"/runs/{run_id}/artifacts")
    assert XSS_FILE in ui.page.locator("ul.files").inner_text()
    ui.page.locator("ul.files a", has_text=XSS_FILE).click()
    ui.page.wait_for_load_state("load")
    ui.check()
    assert ui.page.locator("pre.text-preview").inner_text().strip() == XSS
    ui.goto(f"/runs/{run_id}/artifacts?path=hostile.json")
    assert XSS.replace('"', '\\"') in ui.page.locator("pre.text-preview").inner_text()

    exp_id = demo_repo.experiments[XSS]
    ui.goto(f"/runs?experiment_id={exp_id}")
    assert ui.page.locator("aside .experiments li.active").inner_text().strip() == XSS
    assert row_names(ui) == [XSS]


def test_compare_two_runs_shows_table_and_parallel_coordinates(ui: UiPage, demo_repo: DemoRepo):
    ui.goto("/runs")
    picked = [demo_repo.runs["ridge-a"], demo_repo.runs["forest"]]
    for run_id in picked:
        ui.page.locator(f'input[name="run"][value="{run_id}"]').check()
    ui.page.locator(".compare-btn").click()
    ui.page.wait_for_url(re.compile(r"/compare\?"))
    ui.check()
    header = ui.page.locator("table.compare-table").first.locator("thead th").all_inner_texts()
    assert sorted(h for h in header if h) == ["forest", "ridge-a"]
    params = ui.page.locator("section.card", has_text="Parameters").locator("tr.changed th").all_inner_texts()
    assert "alpha" in params and "model" in params
    parcoords = ui.page.locator('.parcoords[data-drawn="1"]')
    parcoords.wait_for(state="attached")
    assert parcoords.locator("svg").count() >= 1
    assert parcoords.locator("svg path, svg polyline, svg line").count() >= 2
    expect_drawn_chart(ui, demo_repo.steps)
    ui.check()
    ui.screenshot("compare", scroll_to="section.card:has(.parcoords)")


def test_compare_with_the_hostile_run_draws_its_name_as_text(ui: UiPage, demo_repo: DemoRepo):
    ids = [demo_repo.runs["ridge-b"], demo_repo.hostile_run_id]
    ui.goto("/compare?" + "&".join(f"run={i}" for i in ids))
    ui.page.locator('.parcoords[data-drawn="1"]').wait_for(state="attached")
    expect_drawn_chart(ui)
    ui.check()
    assert XSS in ui.page.locator("table.compare-table").first.inner_text()


def test_registry_shows_the_model_in_production(ui: UiPage, demo_repo: DemoRepo):
    ui.goto("/models")
    row = ui.page.locator("table.models tbody tr", has_text=demo_repo.model)
    assert re.search(r"production", row.inner_text(), re.I)
    row.locator("a", has_text=demo_repo.model).click()
    ui.page.wait_for_url(f"**/models/{demo_repo.model}")
    ui.check()
    version = ui.page.locator("table.versions tbody tr").first
    assert re.search(r"production", version.locator("td").nth(2).inner_text(), re.I)
    assert version.locator(f'a[href$="/runs/{demo_repo.runs["forest"]}"]').count() == 1
    assert ui.page.locator("table.history tbody tr").count() >= 2  # registered, then promoted
    ui.screenshot("registry")


def test_commits_view_lists_runs_under_their_commits(ui: UiPage, demo_repo: DemoRepo):
    ui.goto("/commits")
    rows = ui.page.locator("table.commits tbody tr")
    tip = rows.first
    assert "tune: a forest with 200 trees" in tip.inner_text()
    tip_runs = sorted(tip.locator(".commit-run > a").all_inner_texts())
    assert tip_runs == sorted(["forest", XSS])
    assert "initial" in rows.nth(1).inner_text()
    assert sorted(rows.nth(1).locator(".commit-run > a").all_inner_texts()) == ["ridge-a", "ridge-b"]
    ui.screenshot("commits")

    ui.page.locator(f'table.commits a[href$="/commits/{demo_repo.head}"]').click()
    ui.page.wait_for_url(f"**/commits/{demo_repo.head}")
    ui.check()


def test_diff_page_compares_two_branches(ui: UiPage, demo_repo: DemoRepo):
    ui.goto("/diff?base=main&head=feature")
    sides = ui.page.locator(".grid.two section.card").all_inner_texts()
    assert "base: main" in sides[0] and "head: feature" in sides[1]
    metrics = ui.page.locator("table.diff-table").first.locator("tbody th").all_inner_texts()
    assert "acc" in metrics and "loss" in metrics
    params = ui.page.locator("table.diff-table").nth(1).locator("tbody th").all_inner_texts()
    assert "alpha" in params
    # each change is coloured by whether it is better for that metric (lower loss, higher acc), not by sign
    green, red = "rgb(26, 127, 55)", "rgb(207, 34, 46)"
    for key, way in (("loss", "lower"), ("acc", "higher")):
        cell = ui.page.locator("table.diff-table").first.locator(f"tr:has(th:text-is('{key}')) td[data-verdict]")
        verdict, text = cell.get_attribute("data-verdict"), cell.inner_text()
        change = float(text.split()[0])
        assert verdict == ("better" if (change < 0) == (way == "lower") else "worse"), (key, text, verdict)
        assert cell.evaluate("el => getComputedStyle(el).color") == (green if verdict == "better" else red)
    expect_drawn_chart(ui)
    ui.check()
    ui.screenshot("diff")

    ui.goto(f"/diff?base={demo_repo.base}&head={demo_repo.head}")
    assert ui.page.locator("table.diff-table").count() == 2


LIVE_WRITER = r'''
import sys
import gitml

gitml.set_tracking_uri(sys.argv[1])
client = gitml.Client()
with gitml.start_run(run_name="live-run") as run:
    gitml.log_metric("live_loss", 1.0, step=0)
    client.flush()
    print(run.info.run_id, flush=True)
    sys.stdin.readline()  # the page shows the first point
    for step in range(1, 4):
        gitml.log_metric("live_loss", 1.0 / (step + 1), step=step)
    gitml.log_metric("late_metric", 7.0)
    client.flush()
    sys.stdin.readline()  # the page shows the new points: end the run
'''


SYSTEM_RUN = """
import sys, time, gitml
gitml.set_tracking_uri(sys.argv[1])
gitml.set_system_metrics_sampling_interval(0.05)
with gitml.start_run(run_name="with-system-metrics", log_system_metrics=True) as run:
    gitml.log_metric("loss", 0.5)
    time.sleep(0.6)
print(run.info.run_id)
"""


def test_system_metrics_have_their_own_charts(ui: UiPage, demo_repo: DemoRepo, ui_env: dict):
    """Near the end of the module: it adds a run to the shared demo repository."""
    ui.goto(f"/runs/{log_in_demo(demo_repo, ui_env, SYSTEM_RUN)}")
    system = ui.page.locator("section.system-metrics")
    system.locator('.chart-card[data-chart-key="system/cpu_utilization_percentage"][data-drawn="1"]').wait_for()
    system.locator('.chart-card[data-chart-key="system/system_memory_usage_megabytes"][data-drawn="1"]').wait_for()
    own = ui.page.locator("section.card:has(h2:text-is('Charts'))")
    own.locator('.chart-card[data-chart-key="loss"][data-drawn="1"]').wait_for()
    assert own.locator('.chart-card[data-chart-key^="system/"]').count() == 0
    single = own.locator('.chart-card[data-chart-key="loss"]')  # logged once: a value and a bar, not a lone dot
    assert single.get_attribute("data-single") == "1" and single.locator("canvas").count() == 0
    assert single.locator(".value-number").inner_text() == "0.5"
    assert system.locator('.chart-card[data-chart-key="loss"]').count() == 0
    assert ui.page.locator('td[data-metric-value="loss"]').is_visible()
    assert not ui.page.locator('td[data-metric-value="system/disk_usage_percentage"]').is_visible()  # folded away
    ui.check()


SWEEP_RUN = """
import sys, gitml
gitml.set_tracking_uri(sys.argv[1])
with gitml.start_run(run_name="cv-sweep") as parent:
    for fold in range(3):
        with gitml.start_run(run_name=f"fold-{fold}", nested=True):
            gitml.log_metric("acc", 0.5 + fold / 10)
print(parent.info.run_id)
"""


def test_nested_runs_fold_under_their_parent(ui: UiPage, demo_repo: DemoRepo, ui_env: dict):
    """Near the end of the module: it adds runs to the shared demo repository."""
    parent_id = log_in_demo(demo_repo, ui_env, SWEEP_RUN)
    ui.goto("/runs")
    children = ui.page.locator(f'tr.child-row[data-parent="{parent_id}"]')
    assert children.count() == 3 and not children.first.is_visible()
    names = ui.page.locator("table.runs-table tbody td.name a").all_inner_texts()
    at = names.index("cv-sweep")
    assert names[at + 1 : at + 4] == ["fold-2", "fold-1", "fold-0"]  # right below their parent
    toggle = ui.page.locator(f'button.expand[data-expands="{parent_id}"]')
    assert toggle.inner_text().strip() == "▸ 3"
    toggle.click()
    assert all(children.nth(i).is_visible() for i in range(3)) and toggle.get_attribute("aria-expanded") == "true"
    assert ui.page.url.endswith("/runs")  # the button folds, it does not open the run
    toggle.click()
    assert not children.first.is_visible()
    ui.check()


IMAGES_RUN = """
import sys, numpy as np, gitml
gitml.set_tracking_uri(sys.argv[1])
with gitml.start_run(run_name="images-per-step") as run:
    for step in (0, 10, 20):
        gitml.log_image(np.full((8, 8, 3), step * 10, dtype=np.uint8), key="samples/val", step=step)
print(run.info.run_id)
"""


def test_images_logged_per_step_have_a_step_slider(ui: UiPage, demo_repo: DemoRepo, ui_env: dict):
    """Near the end of the module: it adds a run to the shared demo repository."""
    run_id = log_in_demo(demo_repo, ui_env, IMAGES_RUN)
    ui.goto(f"/runs/{run_id}")
    figure = ui.page.locator('figure.image-steps[data-image-key="samples/val"]')
    img, slider, step = figure.locator("img"), figure.locator("input.image-slider"), figure.locator("output.image-step")
    assert step.inner_text() == "20"  # the last step first
    last = img.get_attribute("src")
    assert img.evaluate("el => el.complete && el.naturalWidth > 0")  # the thumbnail loaded
    slider.fill("0")
    assert step.inner_text() == "0" and img.get_attribute("src") != last
    ui.page.wait_for_function("() => { const i = document.querySelector('figure.image-steps img');"
                              " return i.complete && i.naturalWidth > 0; }")
    slider.fill("1")
    assert step.inner_text() == "10"
    ui.check()


EDIT_RUN = """
import sys, gitml
gitml.set_tracking_uri(sys.argv[1])
with gitml.start_run(run_name="to-edit") as run:
    gitml.log_metric("acc", 0.7)
print(run.info.run_id)
"""

ATTACKER_PAGE = """<!doctype html><html><body>
<form id="f" method="post" action="{target}">
<input name="name" value="pwned"><input name="csrf_token" value="{token}"></form>
<script>document.getElementById("f").submit();</script></body></html>"""


def test_edits_in_the_browser_land_in_git_and_a_cross_site_post_does_not(ui: UiPage, demo_repo: DemoRepo,
                                                                         ui_env: dict, ui_server: str, tmp_path):
    """Near the end of the module: it adds a run to the shared demo repository."""
    import http.server
    import json
    import subprocess
    import sys
    import threading

    run_id = log_in_demo(demo_repo, ui_env, EDIT_RUN)

    def shown(*args: str) -> dict:
        res = subprocess.run([sys.executable, "-m", "gitml", "runs", "show", run_id, "--json", *args],
                             cwd=demo_repo.path, env=ui_env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    ui.goto(f"/runs/{run_id}")
    ui.page.locator("details.rename-run summary").click()
    ui.page.locator("details.rename-run input[name=name]").fill("edited in the browser")
    ui.page.locator("details.rename-run button[type=submit]").click()
    ui.page.wait_for_load_state("load")
    assert ui.page.locator("h1").inner_text() == "edited in the browser"
    ui.page.locator("details.edit summary", has_text="Set or remove a tag").click()
    ui.page.locator("form.tag-form input[name=key]").fill("reviewed")
    ui.page.locator("form.tag-form input[name=value]").fill("by ada")
    ui.page.locator("form.tag-form button[type=submit]").click()
    ui.page.wait_for_load_state("load")
    ui.check()
    data = shown()
    assert data["info"]["run_name"] == "edited in the browser" and data["data"]["tags"]["reviewed"] == "by ada"
    token = ui.page.locator("input[name=csrf_token]").first.get_attribute("value")

    # Another site's page (another port is another origin) posting a form to the viewer, token and all.
    (tmp_path / "index.html").write_text(ATTACKER_PAGE.format(target=f"{ui_server}/edit/runs/{run_id}/rename",
                                                              token=token))
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        page = ui.page.context.new_page()
        with page.expect_response(lambda r: "/edit/runs/" in r.url) as answer:
            page.goto(f"http://127.0.0.1:{evil.server_address[1]}/index.html")
        assert answer.value.status == 403
        page.close()
    finally:
        evil.shutdown()
    assert shown()["info"]["run_name"] == "edited in the browser"  # nothing changed


SMALL_VALUES_RUN = """
import sys, gitml
gitml.set_tracking_uri(sys.argv[1])
with gitml.start_run(run_name="tiny-values") as run:
    for step in range(6):
        gitml.log_metric("lr", 10.0 ** -(step + 1), step=step)
print(run.info.run_id)
"""


SAMPLED_RUNS = """
import sys
import gitml
gitml.set_tracking_uri(sys.argv[1])
exp = gitml.set_experiment("sampled").experiment_id
with gitml.start_run(run_name="long"):
    gitml.log_param("group", "a")
    for step in range(2000):
        gitml.log_metric("loss", 50.0 if step == 1234 else -7.0 if step == 777 else 1 / (1 + step / 100), step=step)
with gitml.start_run(run_name="short"):
    gitml.log_param("group", "a")
    for step in range(10):
        gitml.log_metric("loss", 2 - step / 10, step=step * 200)
        gitml.log_metric("acc", step / 10, step=step * 200)
with gitml.start_run(run_name="no-loss"):
    gitml.log_param("group", "b")
    gitml.log_metric("acc", 0.5, step=0)
    gitml.log_metric("acc", 0.7, step=1)
print(exp)
"""


def test_chart_view_samples_long_histories_and_says_so(ui: UiPage, demo_repo: DemoRepo, ui_env: dict):
    """Issue 18, item 1: each metric of the page's runs in one request, sampled to 500 points a run
    by the server (spikes kept), a line per run, and a note saying so. Near the end of the module:
    it adds runs (in an experiment of their own) to the shared demo repository."""
    import json

    experiment_id = log_in_demo(demo_repo, ui_env, SAMPLED_RUNS)
    ui.goto(f"/runs?experiment_id={experiment_id}&show=charts")
    loss = ui.page.locator('.runs-charts .chart-card[data-chart-key="loss"][data-drawn="1"]')
    acc = ui.page.locator('.runs-charts .chart-card[data-chart-key="acc"][data-drawn="1"]')
    loss.wait_for()
    acc.wait_for()
    assert sorted(loss.locator(".u-legend .u-series .u-label").all_inner_texts()[1:]) == ["long", "no-loss", "short"]

    assert loss.get_attribute("data-sampled") == "1"  # "long" only
    points = int(loss.get_attribute("data-points") or 0)
    assert 10 + 400 < points <= 10 + 500, points  # long's sample and short's 10 points
    note = loss.locator(".chart-note").inner_text()
    assert "Sampled to at most 500 points per run" in note and "2,000" in note, note
    low, high = json.loads(loss.get_attribute("data-y-range") or "[0, 0]")
    assert high >= 50.0, f"the spike was sampled away: the y axis ends at {high}"
    assert low <= -7.0, f"the dip was sampled away: the y axis starts at {low}"
    assert ui.canvas_ink('.runs-charts .chart-card[data-chart-key="loss"]') > 0
    assert acc.get_attribute("data-sampled") == "0" and acc.locator(".chart-note").inner_text() == ""

    fetched = ui.page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")
    assert len([u for u in fetched if "/api/metrics/sampled?" in u]) == 2, fetched  # one request per metric
    assert not [u for u in fetched if "/api/runs/" in u], "no request per run"

    ui.page.locator("select.group-by").select_option("group")
    ui.page.wait_for_function("() => [...document.querySelectorAll('.runs-charts .chart-card[data-chart-key=\"loss\"] "
                              ".u-legend .u-label')].some(el => el.textContent === 'group=a (2 runs, mean)')")
    assert ui.canvas_ink('.runs-charts .chart-card[data-chart-key="loss"]') > 0
    ui.check()


def test_log_scale_axis_labels_read(ui: UiPage, demo_repo: DemoRepo, ui_env: dict):
    """Near the end of the module: it adds a run to the shared demo repository."""
    import json

    run_id = log_in_demo(demo_repo, ui_env, SMALL_VALUES_RUN)
    ui.goto(f"/runs/{run_id}")
    card = ui.page.locator('.chart-card[data-chart-key="lr"][data-drawn="1"]')
    card.wait_for()
    ui.page.locator(".chart-toolbar input[type=checkbox]").first.check()  # the log scale box
    ui.page.wait_for_function("() => { const c = document.querySelector('.chart-card[data-chart-key=\"lr\"]');"
                              " return c && (c.getAttribute('data-y-ticks') || '').includes('e-'); }")
    ticks = [t for t in json.loads(card.get_attribute("data-y-ticks")) if t]
    assert ticks and "0" not in ticks and len(set(ticks)) == len(ticks), ticks  # 1e-5, 1e-4..., never "0"
    ui.check()


def test_a_running_run_updates_itself_until_it_ends(ui: UiPage, demo_repo: DemoRepo, ui_env: dict):
    """Last in the module: it adds a run to the shared demo repository."""
    import subprocess
    import sys

    writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, str(demo_repo.path)], cwd=demo_repo.path,
                              env=ui_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run_id = writer.stdout.readline().strip()
        assert len(run_id) == 32, run_id
        ui.goto(f"/runs/{run_id}")
        status = ui.page.locator('[data-live-field="status"]')
        assert status.inner_text() == "RUNNING"
        ui.page.locator('.chart-card[data-chart-key="live_loss"][data-points="1"]').wait_for()

        writer.stdin.write("go\n")
        writer.stdin.flush()
        ui.page.locator('.chart-card[data-chart-key="live_loss"][data-points="4"]').wait_for(timeout=20_000)
        ui.page.locator('.chart-card[data-chart-key="late_metric"][data-drawn="1"]').wait_for(timeout=20_000)
        assert ui.page.locator('td[data-metric-value="live_loss"]').inner_text() == "0.25"
        ui.page.locator('td[data-metric-value="late_metric"]').wait_for()  # a row for a metric new since the page loaded
        assert ui.page.locator('td[data-metric-value="late_metric"]').inner_text() == "7"

        writer.stdin.write("end\n")
        writer.stdin.flush()
        assert writer.wait(30) == 0
        ui.page.locator('.chart-panel[data-live="0"]').wait_for(timeout=20_000)
        assert status.inner_text() == "FINISHED"
        ui.check()
    finally:
        if writer.poll() is None:
            writer.kill()
