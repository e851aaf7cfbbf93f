"""tools/package_check.py's pure parts: layers, limits, template rewrite, ELF check (no build, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from offline.cfn import load_template, loads_template
from tools import package_check as pc

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def test_every_function_gets_the_shared_layer_from_globals():
    template = load_template(ROOT / "template.yaml")
    functions = pc.resources_of(template, "AWS::Serverless::Function")
    assert "SplitRangeFunction" in functions and "CheckDriftFunction" in functions and len(functions) == 21
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
    assert pc.import_goal("SplitRangeFunction") == 1.0
    assert pc.import_goal("CleanUpFunction") == 0.5
    assert pc.AWS_LIMIT == 250 * MIB


def test_the_steps_given_numpys_limits_are_the_ones_whose_requirements_list_numpy():
    """A step that starts shipping numpy without its limits fails `make package-check` (the drift check once did)."""
    template = load_template(ROOT / "template.yaml")
    shipping = set()
    for name in pc.resources_of(template, "AWS::Serverless::Function"):
        requirements = ROOT / template["Resources"][name]["Properties"]["CodeUri"] / "requirements.txt"
        lines = requirements.read_text().splitlines() if requirements.exists() else []
        if any(line.split("==")[0].strip().lower() == "numpy" for line in lines):
            shipping.add(name)
    assert shipping == set(pc.NUMPY_STEPS)


def test_size_failures_name_the_function_and_the_excess():
    sizes = {
        "SplitRangeFunction": (190 * MIB, 10 * MIB),  # exactly at its limit
        "CleanUpFunction": (1 * MIB, 31 * MIB),  # 2 MiB over 30
        "CheckTuningFunction": (0, 10 * MIB),
    }
    assert pc.size_failures(sizes) == ["CleanUpFunction is 32.0 MiB unzipped, 2.0 MiB over its 30 MiB limit"]
    assert "SplitRangeFunction" in pc.size_failures({"SplitRangeFunction": (200 * MIB, 1)})[0]


def test_the_x86_twin_changes_every_architecture_and_nothing_else():
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    twin = loads_template(pc.twin_template(text, "x86_64"))
    original = loads_template(text)
    assert twin["Globals"]["Function"]["Architectures"] == ["x86_64"]
    assert twin["Resources"]["SharedLayer"]["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "x86_64"}
    assert twin["Resources"]["SharedLayer"]["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    assert pc.architecture_failures(twin) == [] and pc.architecture_failures(original) == []
    twin["Resources"]["SharedLayer"]["Properties"]["CompatibleArchitectures"] = ["arm64"]
    twin["Globals"]["Function"]["Architectures"] = ["arm64"]
    assert pc.architecture_failures(twin) == [
        "SharedLayer is built for x86_64 and declares ['arm64'], but the functions run on ['arm64']"
    ]
    for resource in ("Globals",):
        assert {k: v for k, v in twin[resource]["Function"].items() if k != "Architectures"} == {
            k: v for k, v in original[resource]["Function"].items() if k != "Architectures"
        }


@pytest.mark.parametrize(
    ("tag", "fits"),
    [
        ("py3-none-any", True),
        ("py2.py3-none-any", True),
        ("cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64", True),
        ("cp313-cp313-manylinux_2_28_aarch64", True),
        ("cp313-cp313-manylinux_2_34_aarch64", True),
        ("cp39-abi3-manylinux_2_24_aarch64", True),
        ("cp313-cp313-manylinux_2_35_aarch64", False),  # newer glibc than Amazon Linux 2023's 2.34
        ("cp313-cp313-manylinux_2_17_x86_64", False),
        ("cp312-cp312-manylinux_2_17_aarch64", False),
        ("cp313-cp313-musllinux_1_2_aarch64", False),
        ("cp313-cp313-linux_aarch64", False),
        ("cp314-abi3-manylinux_2_17_aarch64", False),
    ],
)
def test_wheel_tags_lambdas_python313_on_arm64_accepts(tag, fits):
    assert pc.tag_fits_lambda(tag) is fits


def test_pins_and_installed_distributions_are_compared(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# a comment\nnumpy==2.4.6\naws-lambda-powertools[parser]==3.37.0  # why\nrequests>=2\n")
    assert pc.pins(requirements) == {"numpy": "2.4.6", "aws_lambda_powertools": "3.37.0"}
    for name, version, tag in [
        ("numpy", "2.4.5", "cp313-cp313-manylinux_2_28_aarch64"),
        ("aws_lambda_powertools", "3.37.0", "py3-none-any"),
        ("pydantic_core", "2.46.5", "cp313-cp313-manylinux_2_17_x86_64"),
    ]:
        info = tmp_path / "build" / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nTag: {tag}\n")
    failures = pc.wheel_failures("F", tmp_path / "build", requirements)
    assert any("pydantic_core 2.46.5 is a wheel for cp313-cp313-manylinux_2_17_x86_64" in f for f in failures)
    assert any("pins numpy==2.4.6, the build has 2.4.5" in f for f in failures)
    assert len(failures) == 2


def test_without_python_313_the_check_fails_saying_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(pc, "find_python", lambda version: None)
    assert pc.main([]) == 2
    message = capsys.readouterr().err
    assert "needs Python 3.13" in message and "pyenv install 3.13" in message and "sam build --use-container" in message


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
