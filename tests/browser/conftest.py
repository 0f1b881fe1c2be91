"""Fixtures for the real-browser tests: a JupyterLab server and Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.lab import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    JupyterLab,
    running_jupyterlab,
)


@pytest.fixture(scope="session")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """JupyterLab serving a temp root on a free port, kernels on the local backend."""
    with running_jupyterlab(tmp_path_factory.mktemp("jupyterlab")) as lab:
        yield lab


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium; a missing browser fails the run (install: apt-get install chromium).

    Package-scoped (hence this package's ``__init__.py``): Playwright's sync API keeps an
    event loop running in this thread while it is open, so it must be closed before the
    rest of the suite (``asyncio.run``) runs.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: run `apt-get install -y chromium`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; on the way out it leaves a full-page screenshot in test-artifacts/."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    yield opened
    opened.screenshot(path=ARTIFACTS / "last-page.png", full_page=True)
    context.close()
