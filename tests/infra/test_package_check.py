"""tools/package_check.py's pure parts: layers, limits, template rewrite, ELF check (no build, no network)."""

from __future__ import annotations

from pathlib import Path

from offline.cfn import load_template, loads_template
from tools import package_check as pc

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def test_every_function_gets_the_shared_layer_from_globals():
    template = load_template(ROOT / "template.yaml")
    functions = pc.resources_of(template, "AWS::Serverless::Function")
    assert "SplitRangeFunction" in functions and len(functions) == 15
    assert {name: pc.function_layers(template, name) for name in functions} == {n: ["SharedLayer"] for n in functions}


def test_a_functions_own_layers_follow_the_globals_and_literal_arns_are_kept():
    template = loads_template(
        "Globals: {Function: {Layers: [!Ref A]}}\n"
        "Resources:\n"
        "  F: {Type: AWS::Serverless::Function, Properties: {Layers: [!Ref B, 'arn:aws:lambda:x:1:layer:c:1']}}\n"
        "  G: {Type: AWS::Serverless::Function}\n"
    )
    assert pc.function_layers(template, "F") == ["A", "B", "arn:aws:lambda:x:1:layer:c:1"]
    assert pc.function_layers(template, "G") == ["A"]


def test_limits_and_goals_single_out_the_steps_that_ship_numpy():
    assert pc.size_limit("SplitRangeFunction") == 200 * MIB
    assert pc.size_limit("EvaluateModelFunction") == pc.size_limit("VerifyEndpointFunction") == 200 * MIB
    assert pc.size_limit("CleanUpFunction") == 30 * MIB
    assert pc.import_goal("SplitRangeFunction") == 1.5
    assert pc.import_goal("CleanUpFunction") == 0.5
    assert pc.AWS_LIMIT == 250 * MIB


def test_size_failures_name_the_function_and_the_excess():
    sizes = {
        "SplitRangeFunction": (190 * MIB, 10 * MIB),  # exactly at its limit
        "CleanUpFunction": (1 * MIB, 31 * MIB),  # 2 MiB over 30
        "CheckTuningFunction": (0, 10 * MIB),
    }
    assert pc.size_failures(sizes) == ["CleanUpFunction is 32.0 MiB unzipped, 2.0 MiB over its 30 MiB limit"]
    assert "SplitRangeFunction" in pc.size_failures({"SplitRangeFunction": (200 * MIB, 1)})[0]


def test_rewrite_runtime_changes_every_runtime_field_and_nothing_else():
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    rewritten = loads_template(pc.rewrite_runtime(text, "python3.13", "python3.11"))
    layer = rewritten["Resources"]["SharedLayer"]
    assert rewritten["Globals"]["Function"]["Runtime"] == "python3.11"
    assert layer["Metadata"] == {"BuildMethod": "python3.11", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.11"]
    assert rewritten["Globals"]["Function"]["Architectures"] == ["arm64"]
    assert pc.rewrite_runtime("Runtime: python3.130", "python3.13", "python3.11") == "Runtime: python3.130"


def test_elf_machine_reads_the_architecture():
    header = bytearray(b"\x7fELF\x02\x01\x01" + bytes(13))
    header[18:20] = (0xB7).to_bytes(2, "little")
    assert pc.elf_machine(bytes(header)) == "aarch64"
    header[18:20] = (0x3E).to_bytes(2, "little")
    assert pc.elf_machine(bytes(header)) == "x86_64"
    assert pc.elf_machine(b"not an ELF file at all") is None


def test_tree_bytes_and_native_libraries(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_bytes(b"x" * 100)
    header = bytearray(b"\x7fELF\x02\x01\x01" + bytes(13))
    header[18:20] = (0xB7).to_bytes(2, "little")
    (tmp_path / "pkg" / "_core.cpython-313-aarch64-linux-gnu.so").write_bytes(bytes(header))
    (tmp_path / "pkg" / "libfoo.so.1").write_bytes(b"text, not ELF")
    assert pc.tree_bytes(tmp_path) == 100 + 20 + 13
    assert pc.native_libraries(tmp_path) == {"aarch64": 1}


def test_top_level_names_are_what_import_finds(tmp_path):
    for directory in ("numpy", "numpy.libs", "numpy-2.4.6.dist-info", "bin"):
        (tmp_path / directory).mkdir()
    for file in ("typing_extensions.py", "_cffi_backend.cpython-313-aarch64-linux-gnu.so", "requirements.txt"):
        (tmp_path / file).write_text("")
    assert pc.top_level_names(tmp_path) == {"numpy", "bin", "typing_extensions", "_cffi_backend"}
    assert pc.top_level_names(tmp_path / "missing") == set()
