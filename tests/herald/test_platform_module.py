"""`platform/` is a plain folder: it must never shadow the standard library."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import herald

REPO = Path(__file__).resolve().parents[2]


def test_import_platform_is_the_standard_library() -> None:
    import platform

    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    assert platform.system()  # the function libraries call


def test_platform_from_the_repository_root_is_still_the_standard_library() -> None:
    # Run from the checkout, where a `platform` package would win if it existed.
    out = subprocess.run(
        [sys.executable, "-c", "import platform, herald; print(platform.__file__); print(platform.system())"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "site-packages" not in out[0] and str(REPO) not in out[0]
    assert out[1] in ("Linux", "Darwin", "Windows")


def test_platform_folder_has_no_init_and_herald_is_a_regular_package() -> None:
    assert not (REPO / "platform" / "__init__.py").exists()
    assert Path(herald.__file__).resolve() == REPO / "platform" / "herald" / "__init__.py"
