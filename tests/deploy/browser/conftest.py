# The widget tests' Chromium fixtures. In a package of their own: Playwright's sync API leaves an event loop
# in the main thread while the browser is open, and Django then refuses the sync database fixtures of the
# async tests beside it (SynchronousOnlyOperation).
from tests.widget.conftest import browser, context  # noqa: F401
