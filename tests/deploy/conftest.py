from tests.widget.conftest import browser, context  # noqa: F401 - the widget tests' Chromium fixtures
