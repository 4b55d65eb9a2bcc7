"""The package as pip builds it: no setuptools warning, and every app's code, commands, templates and static files.

The image installs a wheel (infra/Dockerfile: `pip install .`), `make install` / `make install-run` an editable
install: both are built here from a copy of the checkout's files, as pip builds them (isolated build, the
setuptools pyproject.toml asks for).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = {
    "herald": ROOT / "platform" / "herald",
    **{name: ROOT / name for name in ("tenants", "notifications", "billing", "portal")},
}
# What setuptools says when it has something to warn about (its warning classes, and `check.warn(...)`, the line
# of its source that Python prints under a BuildBackendWarning). pip's own "WARNING: Location ..." lines about
# this machine's package index are not the package's.
SETUPTOOLS_WARNING = re.compile(r"Warning:|check\.warn|Package would be ignored|SetuptoolsDeprecation", re.I)


def _copy_checkout(target: Path) -> Path:
    """The files a build sees (what git tracks and what is new), without virtualenvs and caches."""
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", ".herald", "build", "dist", ".*_cache")
    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def _setuptools_warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if SETUPTOOLS_WARNING.search(line)]


def _expected_files() -> set[str]:
    """Every module, template and static file of the apps, as the installed path it must have."""
    expected = set()
    for name, folder in APPS.items():
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                expected.add(f"{name}/{path.relative_to(folder).as_posix()}")
    return expected


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_checkout(tmp_path_factory.mktemp("packaging") / "herald")


def test_the_wheel_builds_without_setuptools_warnings_and_holds_every_app_file(source: Path) -> None:
    dist = source.parent / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert _setuptools_warnings(output) == [], output[-3000:]
    [wheel] = dist.glob("herald-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = {name for name in archive.namelist() if ".dist-info/" not in name}
    missing = _expected_files() - names
    assert not missing, sorted(missing)[:20]
    # Only the apps: never the stdlib-shadowing `platform`, the tests or the tooling.
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == set(APPS), tops
    # The management commands of every app are there (billing's and notifications' were once left out).
    for command in ("billing/management/commands/billing_reconcile.py", "herald/management/commands/serve.py"):
        assert command in names


def test_the_editable_install_has_no_setuptools_warnings_and_imports_from_the_checkout(source: Path) -> None:
    env_dir = source.parent / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # As the Makefile runs it (its one silenced notice is the editable mode's "Editable installation" note).
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "-e", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONWARNINGS": "ignore:Editable installation", "PATH": "/usr/bin:/bin"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert _setuptools_warnings(output) == [], output[-3000:]
    # Without dependencies nothing imports Django; the packages themselves resolve to the copied checkout.
    probe = (
        "import importlib.util as u, platform, sys; "
        "print(*[u.find_spec(n).submodule_search_locations[0] for n in "
        "('herald', 'tenants', 'notifications', 'billing', 'portal')]); print(platform.__file__)"
    )
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd="/", timeout=60)
    assert found.returncode == 0, found.stderr
    locations, stdlib_platform = found.stdout.strip().splitlines()
    assert locations.split() == [str(source / "platform" / "herald")] + [
        str(source / name) for name in ("tenants", "notifications", "billing", "portal")
    ]
    assert "site-packages" not in stdlib_platform and stdlib_platform.endswith("platform.py")
