"""Find (or install) the Chromium the browser tests drive.

    python infra/browser.py ensure   # exit 0 with a browser, else say how to get one and exit 1
    python infra/browser.py path     # print the executable the tests will use

Order: $HERALD_BROWSER, then a system `chromium` / `google-chrome` (Debian's
package is what CI installs), then one Playwright installed. With none,
`ensure` runs `playwright install chromium`; where that cannot download (this
kind of machine reaches package registries only), it prints how to install
one and fails. The tests call `executable_path()`, which raises with the same
message: a missing browser fails the widget tests, it never skips them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOW_TO_GET_ONE = """No Chromium found for the browser tests.
Get one of:
  - Debian/Ubuntu:  apt-get install -y chromium        (what CI does)
  - Playwright's:   .venv/bin/python -m playwright install chromium
  - any Chrome/Chromium already installed: export HERALD_BROWSER=/path/to/chrome
then run the tests again."""


class BrowserMissingError(RuntimeError):
    pass


def _playwright_chromium() -> str | None:
    """The Chromium that `playwright install chromium` put in its cache, if any."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as playwright:
            path = playwright.chromium.executable_path
    except Exception:  # noqa: BLE001 - no driver, no browser: the same answer
        return None
    return path if path and Path(path).is_file() else None


def find_executable() -> str | None:
    """The browser executable to use, or None."""
    override = os.environ.get("HERALD_BROWSER")
    if override:
        return override if Path(override).is_file() else None
    for name in SYSTEM_BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return _playwright_chromium()


def executable_path() -> str:
    """The browser executable for the tests; raises BrowserMissingError saying how to get one."""
    found = find_executable()
    if found is None:
        raise BrowserMissingError(HOW_TO_GET_ONE)
    return found


def ensure() -> int:
    """Make sure a browser exists: find one, else install Playwright's; 0 on success."""
    found = find_executable()
    if found is None:
        print("No Chromium found; trying `playwright install chromium` ...", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "playwright", "install", "chromium"], check=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as error:
            print(f"playwright install chromium failed: {error}", file=sys.stderr)
        found = find_executable()
    if found is None:
        print(HOW_TO_GET_ONE, file=sys.stderr)
        return 1
    print(f"browser: {found}")
    return 0


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "ensure"
    if command == "ensure":
        return ensure()
    if command == "path":
        found = find_executable()
        if found is None:
            print(HOW_TO_GET_ONE, file=sys.stderr)
            return 1
        print(found)
        return 0
    print(f"usage: {argv[0]} ensure|path", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
