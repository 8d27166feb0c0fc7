"""Browser tests: Debian's Chromium driven by Playwright against a real Airflow stack.

Chromium comes from Debian (`/usr/bin/chromium`, which `make test` installs), never from
`playwright install`. Without it the tests are skipped with the reason, except under CI (`CI` set),
where a missing browser is a failure, not a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

# The e2e harness: a real api-server, scheduler, dag-processor and triggerer per test module.
from tests.e2e.conftest import airflow_extra_env, airflow_stack  # noqa: F401

BROWSER_DIR = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in tests/browser as `browser`."""
    for item in items:
        if BROWSER_DIR in item.path.parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so the `tab` fixture can take a screenshot on failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Return Debian's Chromium; skip (fail under CI) when it is not installed."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: `make test` (or `make chromium`) installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is an error)")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser_context(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Run one headless Chromium with a fresh profile for the module; cookies persist across its tests."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


class Page:
    """A browser tab and the JavaScript dialogs (alert, confirm, prompt) it opened."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def tab(browser_context: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    """Open a tab for one test; on failure, save a full-page screenshot under the test's tmp_path."""
    page = browser_context.new_page()
    tab = Page(page)
    try:
        yield tab
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            path = tmp_path / "failure.png"
            try:
                page.screenshot(path=str(path), full_page=True)
                print(f"\nscreenshot of the failure ({page.url}): {path}")
            except Exception as exc:  # the browser may be what failed
                print(f"\nno screenshot of the failure: {type(exc).__name__}: {exc}")
        page.close()
