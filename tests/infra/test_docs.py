"""The docs' generated parts match the code, the README shows the two commands and points to every doc, and each
option and step is documented where users look for it."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from offline.__main__ import FAIL_MODES, build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in (ROOT / "docs").glob("*.md")}


def test_generated_parts_are_current():
    render = runpy.run_path(str(ROOT / "tools" / "render_docs.py"), run_name="render_docs")
    for path in sorted(set(render["PARTS"].values())):
        text = (ROOT / path).read_text()
        assert render["update"](path, text) == text, "run: .venv/bin/python tools/render_docs.py"


def test_the_two_commands_are_at_the_top():
    top = README.split("## ", 1)[0]
    assert "make demo" in top and "make test" in top


def test_the_readme_stays_short_and_links_every_doc():
    assert len(README.splitlines()) <= 130
    for name in DOCS:
        assert f"docs/{name}" in README, f"README.md does not link docs/{name}"


def test_every_relative_link_in_the_docs_points_to_a_file_that_exists():
    for name, text in {"README.md": README, **{f"docs/{n}": t for n, t in DOCS.items()}}.items():
        base = (ROOT / name).parent
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (base / target).exists(), f"{name} links {target}, which does not exist"


def test_every_demo_option_is_documented():
    offline = DOCS["offline.md"]
    options = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    assert "--data" in options
    for option in options:
        assert f"`{option}" in offline, f"docs/offline.md does not document {option}"
    for mode in FAIL_MODES:
        assert f"`{mode}`" in offline


def test_every_step_has_a_local_invoke_line():
    for step_dir in sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()):
        assert f"--event events/{step_dir}.json" in DOCS["development.md"]
