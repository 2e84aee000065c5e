"""The README's project TOML reference, generated from the engine's field docs.

`python scripts/settings_reference.py` rewrites the part of README.md between the
markers; tests/test_readme.py fails when the README is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
START, END = "<!-- settings-reference:start -->", "<!-- settings-reference:end -->"


def toml_value(value) -> str:
    import tomli_w

    if value is None:
        return "(unset)"
    if isinstance(value, dict):  # an inline table
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return tomli_w.dumps({"x": value}).split("=", 1)[1].strip()


def reference() -> str:
    from smolora_engine.project_fields import field_docs

    lines, section = [], None
    for key, type_word, default, doc in field_docs():
        head, name = key.split(".", 1)
        if head != section:
            section = head
            lines += ["", f"### [{head}]", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        lines.append(f"| `{name}` | {type_word} | `{toml_value(default)}` | {doc.replace('|', '/')} |")
    return "\n".join(lines).strip() + "\n"


def rewrite(readme: str) -> str:
    before, rest = readme.split(START, 1)
    _old, after = rest.split(END, 1)
    return f"{before}{START}\n{reference()}{END}{after}"


if __name__ == "__main__":
    path = ROOT / "README.md"
    path.write_text(rewrite(path.read_text()))
    print(f"updated the settings reference in {path}")
