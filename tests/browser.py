"""Helpers for the web viewer's browser tests: Debian's Chromium, a demo repository, the real server.

Not a test module. The fixtures built on these live in ``tests/webview_fixtures.py``;
an end-to-end module imports them with ``from tests.webview_fixtures import *``.

Playwright never downloads a browser here: it drives the system Chromium
(``/usr/bin/chromium``, Debian's ``chromium`` package, or ``$GITML_CHROMIUM``),
headless, with no sandbox, no GPU and no background networking, in a fresh
profile per launch. ``.ci/run`` installs the package when it is missing.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT_DIR = ROOT / "build" / "screenshots"  # docs/img is examples/screenshots.py's (realistic data)
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
INSTALL_HINT = ("install Debian's Chromium (as root: apt-get install -y --no-install-recommends "
                "chromium fonts-dejavu-core; .ci/run does it), point GITML_CHROMIUM at a Chromium "
                "binary, or set GITML_SKIP_BROWSER=1 to skip the browser tests")

# Shown as text everywhere, or the test catches it: window.__xss must stay undefined.
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_ATTR = "\"'><img src=x onerror=window.__xss=2>"
XSS = XSS_SCRIPT + XSS_ATTR
XSS_FILE = "<img src=x onerror=window.__xss=3>.txt"
# Metric, param and tag keys only take letters, digits and _-. :/ (gitml rejects '<'),
# so the odd key exercises spaces, slashes and colons in links and filters instead.
ODD_METRIC = "val/top 1: acc"


# -- Chromium ----------------------------------------------------------------------------------


def chromium_path() -> str:
    """The Chromium binary the tests drive: ``$GITML_CHROMIUM`` or Debian's ``/usr/bin/chromium``."""
    return os.environ.get("GITML_CHROMIUM") or DEFAULT_CHROMIUM


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here (a message naming the fix), or None."""
    exe = chromium_path()
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        return f"no Chromium at {exe}: {INSTALL_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return f"the playwright package is missing ({e}): pip install -e '.[test]'"
    return None


def launch_browser(playwright: Any) -> Any:
    """Launch the system Chromium headless (Playwright gives each launch a fresh temporary profile)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)


def running_browser(needed_by: str) -> Iterator[Any]:
    """A fixture body: Playwright started, the system Chromium launched, both stopped afterwards.

    Without Chromium or Playwright the test fails naming the fix (``needed_by`` says which tests
    need it), or is skipped when ``GITML_SKIP_BROWSER=1``.
    """
    import pytest

    problem = chromium_missing()
    if problem:
        if os.environ.get("GITML_SKIP_BROWSER") == "1":
            pytest.skip(f"GITML_SKIP_BROWSER=1: {problem}")
        pytest.fail(f"{needed_by} need Chromium: {problem}", pytrace=False)
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = launch_browser(pw)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


# -- a page under test ---------------------------------------------------------------------------


# JavaScript: how many pixels of the first canvas inside ``sel`` are not fully transparent.
_CANVAS_INK = """(sel) => {
  const root = document.querySelector(sel);
  if (!root) return -1;
  const c = root.tagName === 'CANVAS' ? root : root.querySelector('canvas');
  if (!c || !c.width || !c.height) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
  return n;
}"""


# JavaScript: elements the payloads would create if some text reached the page as HTML.
_INJECTED = """() => Array.from(document.querySelectorAll('img[src="x"], script:not([src]), [onerror]'))
  .map(e => e.outerHTML.slice(0, 120))"""


class UiPage:
    """One browser page on the viewer, recording console errors and uncaught exceptions."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.errors: list[str] = []
        self.visited: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught {exc}"))

    def _on_console(self, msg: Any) -> None:
        # The browser asks for /favicon.ico on its own; a page without an icon is not an error.
        if msg.type == "error" and not str(msg.location.get("url", "")).endswith("/favicon.ico"):
            self.errors.append(f"{self.page.url}: console.error {msg.text} ({msg.location})")

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base_url + path

    def goto(self, path: str) -> Any:
        """Open ``path``; it must answer below 400 and run no injected script."""
        resp = self.page.goto(self.url(path))
        assert resp is not None and resp.status < 400, f"GET {path} answered {resp and resp.status}"
        self.page.wait_for_load_state("load")
        self.check()
        return resp

    def check(self) -> None:
        """The page now shown ran no injected script and logged no error."""
        self.visited.append(self.page.url)
        xss = self.page.evaluate("() => typeof window.__xss === 'undefined' ? null : String(window.__xss)")
        assert xss is None, f"injected script ran on {self.page.url}: window.__xss = {xss}"
        # The CSP would stop injected markup from running (and log an error); check it is not markup at all.
        injected = self.page.evaluate(_INJECTED)
        assert not injected, f"injected markup became elements on {self.page.url}: {injected}"
        self.assert_no_errors()

    def assert_no_errors(self) -> None:
        assert not self.errors, "errors in the browser:\n" + "\n".join(self.errors)

    def canvas_ink(self, selector: str) -> int:
        """Non-transparent pixels of the canvas at (or inside) ``selector``; -1 if no such element."""
        return int(self.page.evaluate(_CANVAS_INK, selector))

    def screenshot(self, name: str, scroll_to: str | None = None) -> Path | None:
        """Save the viewport (scrolled to ``scroll_to`` first) to build/screenshots/<name>.png when GITML_SCREENSHOTS=1."""
        if os.environ.get("GITML_SCREENSHOTS") != "1":
            return None
        if scroll_to:
            self.page.locator(scroll_to).first.evaluate("(el) => el.scrollIntoView({block: 'start'})")
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        out = SCREENSHOT_DIR / f"{name}.png"
        self.page.screenshot(path=str(out))
        return out


# -- the demo repository ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoRepo:
    """What ``seed_repo`` made, for the tests to look for."""

    path: Path
    experiments: dict[str, str]  # name -> experiment id
    runs: dict[str, str]  # run name -> run id
    final_acc: dict[str, float]  # run name -> last logged acc
    hostile_run_id: str
    base: str  # commit of branch main (runs ridge-a, ridge-b)
    head: str  # commit of branch feature, checked out (runs forest, the hostile run)
    steps: int
    model: str = "demo-model"
    model_version: str = "1"
    stage: str = "production"
    metric_keys: list[str] = field(default_factory=lambda: ["acc", "loss", ODD_METRIC])

    def to_json(self) -> str:
        d = asdict(self)
        d["path"] = str(self.path)
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> DemoRepo:
        d = json.loads(text)
        d["path"] = Path(d["path"])
        return cls(**d)


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({out.returncode}): {out.stderr}")
    return out.stdout.strip()


def _png(path: Path) -> Path:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (160, 100), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((10, 10, 150, 90), outline="navy", width=3)
    draw.line((10, 90, 80, 30, 150, 60), fill="crimson", width=3)
    img.save(path)
    return path


def _log_history(gitml: Any, steps: int, rate: float, acc_end: float) -> float:
    """Log ``steps`` points of loss and acc (smooth curves with a deterministic wiggle); the last acc."""
    acc = 0.0
    for step in range(steps):
        x = step / max(1, steps - 1)
        wiggle = 0.02 * math.sin(step * 0.7)
        loss = math.exp(-rate * x * 5) + abs(wiggle)
        acc = round(acc_end * (1 - math.exp(-5 * x)) / (1 - math.exp(-5)) + (wiggle if step < steps - 1 else 0), 6)
        gitml.log_metric("loss", loss, step=step)
        gitml.log_metric("acc", acc, step=step)
        if step % 10 == 0:
            gitml.log_metric(ODD_METRIC, acc * 0.9, step=step)
    return acc


def seed_repo(path: Path, *, steps: int = 200) -> DemoRepo:
    """Make ``path`` a git repository with runs, artifacts, a hostile run and a promoted model.

    Two branches: ``main`` (commit "initial", experiment ``baseline`` with runs
    ridge-a and ridge-b) and ``feature``, checked out (commit "tune", experiment
    ``tuned`` with run forest, which logs a scikit-learn model registered as
    ``demo-model`` version 1 and promoted to production, and a run whose name,
    param and tag values, artifact name and experiment name carry script and
    attribute injection payloads). Every run logs ``steps`` points of loss and
    acc. Uses the public API in this process and leaves the tracking target
    unset afterwards.
    """
    import gitml
    from tests.conftest import close_tracking

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files = path.parent / f"{path.name}-files"  # artifact sources, outside the work tree (no dirty runs)
    files.mkdir(exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.name", "Demo User")
    _git(path, "config", "user.email", "demo@example.com")
    _git(path, "config", "commit.gpgsign", "false")
    (path / "README.md").write_text("# demo project\n")
    (path / "train.py").write_text("alpha = 0.1\nprint('train', alpha)\n")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "initial")
    base = _git(path, "rev-parse", "HEAD")

    (files / "notes.txt").write_text("plain text artifact\nsecond line\n")
    (files / "predictions.csv").write_text("id,y_true,y_pred\n" + "".join(f"{i},{i % 2},{(i * 7) % 2}\n" for i in range(20)))
    _png(files / "curve.png")

    runs: dict[str, str] = {}
    final: dict[str, float] = {}
    experiments: dict[str, str] = {}
    gitml.set_tracking_uri(str(path))
    try:
        experiments["baseline"] = gitml.set_experiment("baseline").experiment_id
        for name, alpha, rate, acc_end in (("ridge-a", "0.1", 1.0, 0.9), ("ridge-b", "0.5", 0.4, 0.42)):
            with gitml.start_run(run_name=name) as run:
                gitml.log_params({"alpha": alpha, "model": "ridge", "epochs": str(steps)})
                gitml.set_tags({"team": "vision", "stage": "baseline"})
                final[name] = _log_history(gitml, steps, rate, acc_end)
                gitml.log_text("trained on the demo data\n", "notes/summary.txt")
                gitml.log_dict({"alpha": float(alpha), "layers": [8, 4]}, "config.json")
                gitml.log_artifact(str(files / "predictions.csv"))
                gitml.log_artifact(str(files / "curve.png"), "plots")
                runs[name] = run.info.run_id

        _git(path, "checkout", "-q", "-b", "feature")
        (path / "train.py").write_text("alpha = 0.3\nn_trees = 200\nprint('train', alpha, n_trees)\n")
        _git(path, "commit", "-q", "-am", "tune: a forest with 200 trees")
        head = _git(path, "rev-parse", "HEAD")

        import numpy as np
        from sklearn.linear_model import LinearRegression

        experiments["tuned"] = gitml.set_experiment("tuned").experiment_id
        with gitml.start_run(run_name="forest") as run:
            gitml.log_params({"alpha": "0.3", "model": "forest", "epochs": str(steps), "n_trees": "200"})
            gitml.set_tags({"team": "vision", "stage": "candidate"})
            final["forest"] = _log_history(gitml, steps, 1.5, 0.95)
            gitml.log_artifact(str(files / "notes.txt"))
            gitml.log_artifact(str(files / "curve.png"), "plots")
            X = np.arange(20, dtype=float).reshape(-1, 2)
            gitml.sklearn.log_model(LinearRegression().fit(X, X.sum(axis=1)), "model")
            runs["forest"] = run.info.run_id

        experiments[XSS] = gitml.set_experiment(XSS).experiment_id
        with gitml.start_run(run_name=XSS) as run:
            gitml.log_params({"alpha": "0.2", "model": XSS, "epochs": str(steps)})
            gitml.set_tags({"team": XSS, "stage": "hostile"})
            final[XSS] = _log_history(gitml, steps, 0.2, 0.3)
            gitml.log_text(XSS + "\n", XSS_FILE)
            gitml.log_dict({"payload": XSS}, "hostile.json")
            runs[XSS] = run.info.run_id

        gitml.flush()
        version = gitml.register_model(f"runs:/{runs['forest']}/model", "demo-model")
        gitml.MlflowClient().transition_model_version_stage("demo-model", version.version, "Production")
        return DemoRepo(path=path, experiments=experiments, runs=runs, final_acc=final,
                        hostile_run_id=runs[XSS], base=base, head=head, steps=steps,
                        model_version=str(version.version))
    finally:
        close_tracking()


def isolated_env(home: Path) -> dict[str, str]:
    """This process's environment with git isolated: HOME in ``home`` (with a gitconfig), no system config."""
    from tests.conftest import GIT_ENV_DROP

    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in GIT_ENV_DROP}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def seed_repo_in_subprocess(path: Path, env: dict[str, str], *, steps: int = 200, timeout: float = 180) -> DemoRepo:
    """``seed_repo`` in a fresh interpreter (nothing of it stays in this process)."""
    code = ("import sys; from pathlib import Path; from tests.browser import seed_repo; "
            "print(seed_repo(Path(sys.argv[1]), steps=int(sys.argv[2])).to_json())")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(steps)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"seeding the demo repository failed ({out.returncode}):\n{out.stderr}")
    return DemoRepo.from_json(out.stdout.strip().splitlines()[-1])


# -- the real server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UiServer:
    """``gitml -C <repo> ui --port N`` in its own process group, as a user starts it."""

    def __init__(self, repo: Path, env: dict[str, str] | None = None, log: Path | None = None,
                 argv: list[str] | None = None) -> None:
        self.repo = Path(repo)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # ``argv`` replaces the command (its "{port}" is filled in), e.g. to try a stand-in server.
        self.argv = ([a.replace("{port}", str(self.port)) for a in argv] if argv else
                     [sys.executable, "-m", "gitml", "-C", str(self.repo), "ui",
                      "--port", str(self.port)])
        self.log = log or self.repo.parent / f"gitml-ui-{self.port}.log"
        self._log_file = open(self.log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(self.argv, cwd=self.repo, env=env, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> str:
        """Wait until ``/`` answers (any HTTP status); the base URL.

        Raises:
            RuntimeError: the server exited or did not answer within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`{' '.join(self.argv)}` exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=5):
                    return self.url
            except urllib.error.HTTPError:
                return self.url  # it answered
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"`{' '.join(self.argv)}` did not answer on {self.url} within "
                                   f"{timeout:.0f} s:\n{self.output()}")
            time.sleep(0.1)  # polling a starting server: nothing to wait on but the socket

    def output(self) -> str:
        self._log_file.flush()
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        """Terminate the whole process group (gunicorn's workers too), killing it if it lingers."""
        if self.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:  # workers that outlived the master
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log_file.close()
