"""The README's settings reference is generated from the engine's field docs: keep them in sync."""

from __future__ import annotations

from pathlib import Path

from scripts.settings_reference import reference, rewrite

ROOT = Path(__file__).resolve().parent.parent


def test_settings_reference_matches_the_field_docs():
    readme = (ROOT / "README.md").read_text()
    assert rewrite(readme) == readme, "run `python scripts/settings_reference.py` to update README.md"
    assert "| `r` |" in reference() and "### [training]" in reference()


def test_readme_shows_every_screenshot():
    readme = (ROOT / "README.md").read_text()
    for svg in sorted((ROOT / "screenshots").glob("*.svg")):
        assert f"screenshots/{svg.name}" in readme, svg.name
