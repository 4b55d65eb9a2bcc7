"""The repository's docs stand alone: every relative link resolves inside the clone, none points outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in out.stdout.splitlines() if (ROOT / line).exists()]


def test_every_relative_link_in_the_docs_resolves_inside_the_repository() -> None:
    docs = _tracked("README.md", "docs/*.md")
    assert ROOT / "docs" / "architecture.md" in docs and ROOT / "docs" / "quickstart.md" in docs
    for doc in docs:
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s):, mailto:
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{doc.name} links outside the repository: {target}"
            assert resolved.exists(), f"{doc.name} links to a missing file: {target}"


def test_no_file_cites_the_design_page_kept_outside_the_repository() -> None:
    for path in _tracked("*.py", "*.md", "*.js", "*.toml", "Makefile"):
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(errors="replace")
        assert "DESIGN.md" not in text and "../shared" not in text, path.relative_to(ROOT)


def test_the_readme_points_contributors_to_the_architecture_page() -> None:
    assert "[`docs/architecture.md`](docs/architecture.md)" in (ROOT / "README.md").read_text()
