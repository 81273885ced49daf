"""Fixtures for the web viewer's browser tests (headless Debian Chromium via Playwright).

An end-to-end test module imports them all::

    from tests.webview_fixtures import *  # noqa: F403  (browser, ui_env, demo_repo, ui_server, ui)

- ``browser`` (session): Chromium launched from ``/usr/bin/chromium`` or
  ``$GITML_CHROMIUM``; Playwright never downloads one. Without it the tests
  FAIL naming ``apt-get install chromium``, unless ``GITML_SKIP_BROWSER=1``
  (then they are skipped).
- ``ui_env`` (module): os.environ with git isolated in a HOME of its own (tmp).
- ``demo_repo`` (module): ``tests.browser.seed_repo`` run in a fresh
  interpreter with git isolated (HOME in tmp, no system config); a ``DemoRepo``.
- ``ui_server`` (module): the real ``gitml -C <repo> ui --port N`` in its own
  process group; its base URL once ``/`` answers (60 s at most). Torn down
  with the whole process group.
- ``ui`` (function): a ``UiPage`` (fresh browser context, 1280x800) on that
  server; it records console errors and uncaught exceptions, and checks that
  no injected script ran, on every ``goto`` and again at teardown.

Set ``GITML_SCREENSHOTS=1`` to have ``UiPage.screenshot`` write build/screenshots/*.png (the docs' images
come from examples/screenshots.py, on realistic data).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import (
    DemoRepo, UiPage, UiServer, isolated_env, running_browser, seed_repo_in_subprocess,
)

__all__ = ["browser", "demo_repo", "ui", "ui_env", "ui_server"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (the system one), for the module. Not for the session: Playwright's sync
    API keeps an event loop running in this thread while it is started, and a later module's
    asyncio.run() or its own sync_playwright() in the same worker would fail on it."""
    yield from running_browser("The web viewer's browser tests")


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment with git isolated in a HOME of this module's own."""
    return isolated_env(tmp_path_factory.mktemp("ui-home"))


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory: pytest.TempPathFactory, ui_env: dict[str, str]) -> DemoRepo:
    """The demo repository (see ``tests.browser.seed_repo``), seeded once per module."""
    return seed_repo_in_subprocess(tmp_path_factory.mktemp("ui") / "repo", ui_env)


@pytest.fixture(scope="module")
def ui_server(demo_repo: DemoRepo, ui_env: dict[str, str]) -> Iterator[str]:
    """The real ``gitml ui`` on ``demo_repo``; its base URL (http://127.0.0.1:PORT)."""
    server = UiServer(demo_repo.path, env=ui_env)
    try:
        yield server.wait_ready(timeout=60)
    finally:
        server.stop()


@pytest.fixture
def ui(browser: Any, ui_server: str) -> Iterator[UiPage]:
    """A fresh page on the viewer; fails at teardown on console errors or an injected script."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=ui_server)
    context.set_default_timeout(15_000)
    page = UiPage(context.new_page(), ui_server)
    try:
        yield page
        if not page.page.is_closed():
            page.check()
    finally:
        context.close()
