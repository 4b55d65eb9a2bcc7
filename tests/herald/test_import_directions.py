"""Dependencies point one way: tenants is the ground floor, notifications and billing build on it, the portal sits
on top, and no app imports the project's wiring. Read from the source (every import statement, at any depth,
TYPE_CHECKING blocks included), so a lazy import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("tenants", "notifications", "billing", "portal")

# app -> the apps it must not import.
LAYERS_ABOVE = {
    "tenants": ("notifications", "billing", "portal"),
    "notifications": ("billing", "portal"),
    "billing": ("portal",),
    "portal": (),
}
# The project package's wiring. Apps may import its shared HTTP pieces (herald.problems, herald.front,
# herald.errors, herald.compat, ...).
WIRING = (
    "herald.settings",
    "herald.settings_typecheck",
    "herald.asgi",
    "herald.urls",
    "herald.tasks",
    "herald.v1",
    "herald.devservices",
    "herald.management",
    "herald.testing",
    "herald.__main__",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, *, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in `source`; `from a import b` gives `a.b` as well as `a`."""
    tree = ast.parse(source)
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def file_imports(path: Path) -> list[tuple[int, str]]:
    return imported_modules(path.read_text(), module=_module_name(path), is_package=path.name == "__init__.py")


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def app_modules() -> list[Path]:
    return sorted(path for app in APPS for path in (ROOT / app).rglob("*.py"))


def forbidden_imports() -> list[str]:
    """Every import of an app that points up a layer or into the wiring, as `file:line imports module`."""
    refused = []
    for path in app_modules():
        app = path.relative_to(ROOT).parts[0]
        forbidden = [*LAYERS_ABOVE[app], *WIRING]
        for line, module in file_imports(path):
            if any(_within(module, target) for target in forbidden):
                refused.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return refused


def test_no_app_imports_a_layer_above_it_or_the_project_wiring() -> None:
    assert forbidden_imports() == []


def test_the_walk_reads_every_app_and_sees_their_imports() -> None:
    """Guards the test above against passing on nothing: it must read each app and see known imports."""
    files = app_modules()
    for app in APPS:
        assert any(path.relative_to(ROOT).parts[0] == app for path in files), app
    seen = {module for path in files for _, module in file_imports(path)}
    assert "tenants.models.SigningSecret" in seen
    assert "notifications.key_events.key_events_connect" in seen


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import billing.plans\n", "billing.plans"),
        ("from herald import settings\n", "herald.settings"),
        ("def f():\n    from notifications.realtime import x\n", "notifications.realtime"),
        ("from ..notifications import proofs\n", "notifications.proofs"),
    ],
)
def test_every_way_of_importing_is_seen(source: str, module: str) -> None:
    assert module in {name for _, name in imported_modules(source, module="tenants.probe")}
