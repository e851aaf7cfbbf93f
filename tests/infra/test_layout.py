"""The layout that shows the architecture: one step module per Lambda function, named like its folder; a step
module never imports another; tests share helpers through testkit, never through another test module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "shared" / "kmeans_pipeline"
FUNCTIONS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
STEPS = sorted(p.stem for p in (PACKAGE / "steps").glob("*.py") if p.stem != "__init__")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_every_function_has_its_step_module_and_every_step_module_its_function():
    assert FUNCTIONS == STEPS


def test_every_handler_calls_the_step_function_of_its_own_name():
    for name in FUNCTIONS:
        imports = imported_modules(ROOT / "functions" / name / "app.py")
        assert f"kmeans_pipeline.steps.{name}.{name}" in imports, f"functions/{name}/app.py does not call {name}()"
        others = {m for m in imports if m.startswith("kmeans_pipeline.steps.") and m.split(".")[2] != name}
        assert not others, f"functions/{name}/app.py imports another step: {others}"


def test_a_step_module_never_imports_another_step_module():
    for name in STEPS:
        imports = imported_modules(PACKAGE / "steps" / f"{name}.py")
        others = {m for m in imports if m.startswith("kmeans_pipeline.steps")}
        assert not others, f"steps/{name}.py imports {others}: shared code belongs in data/, model/, aws/ or schemas/"


def test_only_step_modules_import_step_modules():
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "steps":
            continue
        imports = imported_modules(path)
        assert not {m for m in imports if m.startswith("kmeans_pipeline.steps")}, path


def test_no_test_imports_another_test_module_or_conftest():
    for path in (ROOT / "tests").rglob("*.py"):
        imports = imported_modules(path)
        bad = {m for m in imports if m.split(".")[0] == "conftest" or m.split(".")[0].startswith("test_")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: shared helpers belong in tests/testkit/"
