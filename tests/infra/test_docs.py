"""The README's generated parts match the code, and it documents the commands and options users run."""

from __future__ import annotations

import runpy
from pathlib import Path

from offline.__main__ import FAIL_MODES, build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_generated_parts_are_current():
    render = runpy.run_path(str(ROOT / "tools" / "render_docs.py"), run_name="render_docs")
    assert render["update"](README) == README, "run: .venv/bin/python tools/render_docs.py"


def test_the_two_commands_are_at_the_top():
    top = README.split("## ", 1)[0]
    assert "make demo" in top and "make test" in top


def test_every_demo_option_is_documented():
    options = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    assert "--data" in options
    for option in options:
        assert f"`{option}" in README, f"README does not document {option}"
    for mode in FAIL_MODES:
        assert f"`{mode}`" in README


def test_every_step_has_a_local_invoke_line():
    for step_dir in sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()):
        assert f"--event events/{step_dir}.json" in README
