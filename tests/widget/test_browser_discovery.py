"""infra/browser.py: which Chromium the tests drive, and a clear failure (never a skip) without one."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from infra.browser import BrowserMissingError, executable_path, find_executable, main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.browser
def test_the_browser_found_is_an_executable_file() -> None:
    path = executable_path()
    assert Path(path).is_file() and os.access(path, os.X_OK)


def test_a_missing_browser_raises_with_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HERALD_BROWSER", "/nonexistent/chromium")
    assert find_executable() is None
    with pytest.raises(BrowserMissingError, match="apt-get install -y chromium"):
        executable_path()
    assert main(["browser.py", "path"]) == 1
    assert "playwright install chromium" in capsys.readouterr().err


def test_without_a_browser_the_browser_tests_fail_and_say_why() -> None:
    """A whole pytest run without a browser: the browser test fails with the message, nothing is skipped."""
    env = {
        **os.environ,
        "HERALD_BROWSER": "/nonexistent/chromium",
        # The running session's PostgreSQL and Redis, but a test database of its own.
        "DATABASE_TEST_NAME": f"test_nobrowser_{uuid.uuid4().hex[:8]}",
    }
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "tests/widget/test_serving.py::test_widget_loads_pinned_by_integrity_under_a_strict_csp",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "No Chromium found for the browser tests" in output
    assert "apt-get install -y chromium" in output
    assert "1 failed" in output or "1 error" in output, output
    assert "skipped" not in output
