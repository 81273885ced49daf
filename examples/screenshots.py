"""Retake the web viewer's screenshots in docs/img/ from a realistic repository.

A throwaway repository gets what a user's would: a scikit-learn sweep over
the diabetes data on two branches (ridge alphas on ``main``, a gradient
boosting model with 3-fold cross-validation as nested runs on ``feature``),
per-epoch losses, a prediction plot per step, a registered model in
production. Then the real ``gitml ui`` serves it and headless Chromium (the
one the browser tests use) takes each page. Needs the test extra
(playwright) and Chromium.

    .venv/bin/python examples/screenshots.py            # writes docs/img/*.png
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SWEEP = r'''
import sys
import numpy as np
import gitml
from sklearn.datasets import load_diabetes
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import KFold, train_test_split

X, y = load_diabetes(return_X_y=True, as_frame=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
gitml.set_experiment("diabetes")


def curve(model, epochs=40):
    for epoch in range(epochs):
        gitml.log_metric("train_loss", 3000 * 0.93 ** epoch + 2800 + 40 * np.sin(epoch), step=epoch)
        gitml.log_metric("val_loss", 3200 * 0.94 ** epoch + 2950 + 60 * np.cos(epoch / 2), step=epoch)


def plot(pred, step):
    img = np.full((96, 96, 3), 245, dtype=np.uint8)
    for t, p in zip(y_test.to_numpy()[:80], pred[:80]):
        x, z = int(t / 350 * 95), int(p / 350 * 95)
        img[95 - min(95, max(0, z)), min(95, max(0, x))] = (31, 119, 180)
    gitml.log_image(img, key="pred_vs_true", step=step)


if sys.argv[1] == "ridge":
    for alpha in (0.01, 0.1, 1.0):
        with gitml.start_run(run_name=f"ridge-{alpha}"):
            model = Ridge(alpha=alpha).fit(X_train, y_train)
            pred = model.predict(X_test)
            gitml.log_params({"model": "ridge", "alpha": alpha})
            curve(model)
            gitml.log_metrics({"rmse": mean_squared_error(y_test, pred) ** 0.5, "r2": r2_score(y_test, pred)})
            for step in (0, 20, 39):
                plot(pred * (0.7 + step / 130), step)
else:
    with gitml.start_run(run_name="gbr-cv") as parent:
        gitml.log_params({"model": "gbr", "n_estimators": 200, "max_depth": 3})
        scores = []
        for fold, (tr, va) in enumerate(KFold(3, shuffle=True, random_state=0).split(X_train)):
            with gitml.start_run(run_name=f"fold-{fold}", nested=True):
                m = GradientBoostingRegressor(n_estimators=200, max_depth=3, random_state=fold)
                m.fit(X_train.iloc[tr], y_train.iloc[tr])
                score = mean_squared_error(y_train.iloc[va], m.predict(X_train.iloc[va])) ** 0.5
                gitml.log_metric("rmse", score)
                scores.append(score)
        model = GradientBoostingRegressor(n_estimators=200, max_depth=3, random_state=0).fit(X_train, y_train)
        pred = model.predict(X_test)
        curve(model)
        gitml.log_metrics({"rmse": mean_squared_error(y_test, pred) ** 0.5, "r2": r2_score(y_test, pred),
                           "cv_rmse": float(np.mean(scores))})
        gitml.set_tag("mlflow.note.content", "Gradient boosting, **200 trees**; 3-fold CV as nested runs.")
        gitml.sklearn.log_model(model, name="model", input_example=X_test[:3], registered_model_name="diabetes")
    from gitml.cli import main
    sys.argv = ["gitml", "models", "promote", "diabetes", "v0.0.1", "production"]
    main()
'''


def sh(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def build(repo: Path) -> None:
    repo.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    sh("git", "config", "user.name", "Ada Lovelace", cwd=repo)
    sh("git", "config", "user.email", "ada@example.com", cwd=repo)
    (repo / "train.py").write_text(SWEEP)
    sh("git", "add", ".", cwd=repo)
    sh("git", "commit", "-qm", "Ridge sweep over alpha", cwd=repo)
    sh(sys.executable, "train.py", "ridge", cwd=repo)
    sh("git", "checkout", "-qb", "feature", cwd=repo)
    (repo / "NOTES.md").write_text("Try gradient boosting with cross-validation.\n")
    sh("git", "add", ".", cwd=repo)
    sh("git", "commit", "-qm", "Gradient boosting with 3-fold CV", cwd=repo)
    sh(sys.executable, "train.py", "gbr", cwd=repo)


def shoot(repo: Path, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from tests.browser import UiServer, chromium_missing, launch_browser

    problem = chromium_missing()
    if problem:
        raise SystemExit(problem)
    server = UiServer(repo)
    written = []
    try:
        base = server.wait_ready(60)
        with sync_playwright() as pw:
            browser = launch_browser(pw)
            try:
                for theme in ("light", "dark"):
                    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, color_scheme=theme)
                    page = ctx.new_page()

                    def take(name: str, path: str, wait: str | None = None, scroll: str | None = None) -> None:
                        page.goto(base + path)
                        page.wait_for_load_state("load")
                        if wait:
                            page.locator(wait).first.wait_for()
                        if scroll:
                            page.locator(scroll).first.scroll_into_view_if_needed()
                        target = out / (name + ("-dark" if theme == "dark" else "") + ".png")
                        page.screenshot(path=str(target))
                        written.append(target)

                    drawn = '.chart-card[data-drawn="1"]'
                    if theme == "dark":
                        take("run", "/runs?filter=attributes.run_name%20%3D%20%27gbr-cv%27", "table.runs-table")
                        page.locator("table.runs-table td.name a", has_text="gbr-cv").first.click()
                        page.locator(drawn).first.wait_for()
                        page.locator("section.card:has(.chart-panel)").first.scroll_into_view_if_needed()
                        page.screenshot(path=str(out / "run-dark.png"))
                        written[-1] = out / "run-dark.png"
                        ctx.close()
                        continue
                    take("runs", "/runs", "table.runs-table")
                    page.locator("button.expand").first.click()
                    page.screenshot(path=str(out / "runs.png"))
                    take("runs-charts", "/runs?show=charts", ".runs-charts " + drawn)
                    page.locator("select.group-by").select_option("model")
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(out / "runs-charts.png"))
                    page.goto(base + "/runs?filter=attributes.run_name%20%3D%20%27gbr-cv%27")
                    page.locator("table.runs-table td.name a", has_text="gbr-cv").first.click()
                    page.locator(drawn).first.wait_for()
                    run_url = page.url
                    page.locator("section.card:has(.chart-panel)").first.scroll_into_view_if_needed()
                    page.screenshot(path=str(out / "run.png"))
                    written.append(out / "run.png")
                    ids = page.evaluate("() => [...document.querySelectorAll('a')].map(a => a.href)")
                    del ids
                    take("commits", "/commits?rev=feature", "table, ul")
                    take("diff", "/diff?base=main&head=feature", "table.diff-table", "table.diff-table")
                    take("registry", "/models/diabetes", "table.versions")
                    page.goto(base + "/runs?filter=params.model%20%3D%20%27ridge%27")
                    for box in page.locator("table.runs-table input[name=run]").all():
                        box.check()
                    page.locator("button.compare-btn").click()
                    page.locator(drawn).first.wait_for()
                    page.screenshot(path=str(out / "compare.png"))
                    written.append(out / "compare.png")
                    del run_url
                    ctx.close()
            finally:
                browser.close()
    finally:
        server.stop()
    return written


def main() -> None:
    out = ROOT / "docs" / "img"
    with tempfile.TemporaryDirectory(prefix="gitml-screens-") as tmp:
        repo = Path(tmp) / "diabetes"
        build(repo)
        for path in shoot(repo, out):
            print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
