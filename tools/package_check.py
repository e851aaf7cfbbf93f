"""Build every function as `sam build` would, check its unzipped size against Lambda's limits, time cold imports.

    .venv/bin/python tools/package_check.py [--mode auto|local|pip] [--runs 5]      (or: make package-check)

1. Build into .aws-sam/package-check/build (never the developer's .aws-sam/build), for arm64 as the template says:
   auto  `sam build` of the template as it is when the functions' runtime (python3.13) runs here, on PATH or as a
         pyenv version; otherwise as `local`.
   local `sam build` of a copy of the template whose runtime (Runtime, BuildMethod, CompatibleRuntimes) is the
         local Python. Wheels are then chosen for that Python's ABI and Lambda's glibc for it, not the real one's:
         for python3.11 (glibc 2.26, manylinux_2_17 at most) numpy >= 2.3, aarch64 wheels manylinux_2_28 only, fails.
   pip   no SAM: each CodeUri/ContentUri is copied and its requirements.txt installed with `pip install --target`
         from the aarch64 wheels of the template's runtime (what aws-lambda-builders downloads for Lambda).
   If `sam build` fails, the pip route is taken, and the output says why.
2. Size: unzipped bytes of the function's package plus every layer it uses (Globals.Function.Layers and its own).
   The runtime's boto3 does not count (AWS's 250 MB quota is code plus layers). Limits: 250 MiB for any function,
   200 MiB for the steps that ship numpy (data step, evaluation, endpoint check), 30 MiB for every other step. Every native library must be
   aarch64.
3. Cold import: `import functions.<step>.app` in a fresh interpreter of this venv, with events/local-env.json's
   variables and sys.path as the tests have it (the arm64 build cannot run on this machine). The best of --runs
   must meet the goal: 0.5 s, 1.5 s for the data step. Bytecode is cached here; sam's packages ship no .pyc, so on
   Lambda the first import also compiles the layer's modules. Every third-party package a handler loads must be in
   its package or layers, or come with the runtime (boto3).
Exits 1 when a limit or goal is missed, saying which and by how much. Needs the package registry: not in `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from offline.cfn import load_template  # noqa: E402

OUT = ROOT / ".aws-sam" / "package-check"
MIB = 1024 * 1024
AWS_LIMIT = 250 * MIB
DATA_STEPS = ("PlanDataFunction", "SplitRangeFunction", "MergeRangesFunction", "TreatRangeFunction")
# The steps that ship numpy: the data step's plan, workers and merge, and the ones that score (evaluation before
# deploying, the endpoint check after, the scoring API). They get the data step's limits; every other step must stay
# lean.
NUMPY_STEPS = (*DATA_STEPS, "EvaluateModelFunction", "VerifyEndpointFunction", "ScoreRecordsFunction")
STEP_LIMITS = {step: 200 * MIB for step in NUMPY_STEPS}  # unzipped bytes, code and layers
DEFAULT_STEP_LIMIT = 30 * MIB
IMPORT_GOALS = {step: 1.5 for step in NUMPY_STEPS}  # seconds
DEFAULT_IMPORT_GOAL = 0.5
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


# -- template -----------------------------------------------------------------------------------------------------
def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res.get("Type") == kind}


def function_layers(template: dict[str, Any], function: str) -> list[str]:
    """Layers a function gets: the Globals' first, then its own (SAM concatenates lists). A Ref gives the layer's
    logical id; anything else (a literal ARN) is kept as written."""
    layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    layers = layers + template["Resources"][function].get("Properties", {}).get("Layers", [])
    return [layer["Ref"] if isinstance(layer, dict) and "Ref" in layer else str(layer) for layer in layers]


def rewrite_runtime(text: str, runtime: str, local: str) -> str:
    """The template with every mention of `runtime` (e.g. python3.13) replaced by `local` (e.g. python3.11)."""
    return re.sub(rf"\b{re.escape(runtime)}\b", local, text)


def size_limit(function: str) -> int:
    return min(STEP_LIMITS.get(function, DEFAULT_STEP_LIMIT), AWS_LIMIT)


def import_goal(function: str) -> float:
    return IMPORT_GOALS.get(function, DEFAULT_IMPORT_GOAL)


def size_failures(sizes: dict[str, tuple[int, int]]) -> list[str]:
    """sizes: function -> (code bytes, layer bytes). One message per function over its limit."""
    return [
        f"{function} is {sum(size) / MIB:.1f} MiB unzipped, {(sum(size) - size_limit(function)) / MIB:.1f} MiB "
        f"over its {size_limit(function) / MIB:.0f} MiB limit"
        for function, size in sizes.items()
        if sum(size) > size_limit(function)
    ]


def tree_bytes(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def elf_machine(header: bytes) -> str | None:
    """The architecture an ELF header is built for; None when it is not ELF."""
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    code = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(code, hex(code))


def native_libraries(path: Path) -> dict[str, int]:
    """Count of shared libraries under path, by architecture."""
    counts: dict[str, int] = {}
    for lib in path.rglob("*.so*"):
        if lib.is_file() and (machine := elf_machine(lib.open("rb").read(20))):
            counts[machine] = counts.get(machine, 0) + 1
    return counts


# -- build --------------------------------------------------------------------------------------------------------
def find_python(version: str) -> Path | None:
    """The directory of a python<version> that runs: on PATH (a pyenv shim may not), else a pyenv install."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(pyenv.glob(f"versions/{version}*/bin/python{version}"), reverse=True)
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return Path(candidate).parent
    return None


def sam_build(template_text: str, build: Path, path_prefix: Path | None) -> str | None:
    """Run `sam build` on template_text; None on success, else the reason (the log is kept beside the build)."""
    (OUT / "template.yaml").write_text(template_text, encoding="utf-8")
    path = os.pathsep.join(filter(None, [str(path_prefix or ""), os.environ["PATH"]]))
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", PATH=path)
    command = [
        str(Path(sys.executable).parent / "sam"),
        "build",
        "--template-file",
        str(OUT / "template.yaml"),
        "--base-dir",
        str(ROOT),
        "--build-dir",
        str(build),
        "--no-cached",
        "--parallel",
        "--debug",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    (OUT / "sam-build.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
    return (errors or [f"exit status {result.returncode}"])[-1] if result.returncode else None


def pip_build(source: Path, target: Path, runtime: str) -> None:
    """Copy source and pip-install its requirements.txt into target for Lambda's arm64 `runtime`."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    requirements = source / "requirements.txt"
    if not requirements.exists():
        return
    version = runtime.removeprefix("python")
    platforms = [
        "manylinux2014_aarch64",
        "manylinux_2_17_aarch64",
        "manylinux_2_28_aarch64",
        "manylinux_2_34_aarch64",
        "linux_aarch64",
    ]
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(target),
        "-r",
        str(requirements),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        version,
        "--abi",
        "cp" + version.replace(".", ""),
    ]
    result = subprocess.run(
        command + [arg for platform in platforms for arg in ("--platform", platform)], capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(
            f"pip could not install {requirements.relative_to(ROOT)} for {runtime}/arm64:\n" + result.stderr.strip()
        )


def build_all(template: dict[str, Any], mode: str) -> Path:
    build, runtime = OUT / "build", template["Globals"]["Function"]["Runtime"]
    local = f"python{sys.version_info.major}.{sys.version_info.minor}"
    shutil.rmtree(build, ignore_errors=True)
    build.parent.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    started, failure = time.monotonic(), "--mode pip"
    if mode != "pip":
        found = find_python(runtime.removeprefix("python")) if mode == "auto" and runtime != local else None
        if found or runtime == local:
            print(f"Building with `sam build` for {runtime}/arm64, with {found / runtime if found else runtime}.")
        else:
            why = f"{runtime} does not run here" if mode == "auto" else "--mode local"
            print(
                f"{why}: building with `sam build` from a copy of the template whose runtime is {local} (the local "
                "Python), still arm64."
            )
            text = rewrite_runtime(text, runtime, local)
        failure = sam_build(text, build, found)
        if failure:
            print(f"`sam build` failed ({failure}); see {(OUT / 'sam-build.log').relative_to(ROOT)}.")
    if failure:
        print(f"Building with `pip install --target` from the {runtime} aarch64 wheels (no sam build).")
        shutil.rmtree(build, ignore_errors=True)
        for name, res in resources_of(template, "AWS::Serverless::LayerVersion").items():
            pip_build(ROOT / res["Properties"]["ContentUri"], build / name / "python", runtime)
        for name, res in resources_of(template, "AWS::Serverless::Function").items():
            pip_build(ROOT / res["Properties"]["CodeUri"], build / name, runtime)
    print(f"Built in {time.monotonic() - started:.1f} s into {build.relative_to(ROOT)}.\n")
    return build


# -- cold import --------------------------------------------------------------------------------------------------
# What the python3.13 runtime provides besides the standard library (not packaged, not counted).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})
PROBE = """import json, sys, sysconfig, time
before = set(sys.modules)
t = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t
site = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
new = {{name.partition(".")[0] for name in set(sys.modules) - before
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(site)}}
print(json.dumps([elapsed, sorted(new)]))"""


def import_times(module: str, env: dict[str, str], runs: int) -> tuple[list[float], set[str]]:
    """Seconds each fresh `import module` took, and the third-party top-level packages it loaded."""
    times, packages = [], set()
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(module=module)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
        elapsed, loaded = json.loads(out)
        times.append(elapsed)
        packages.update(loaded)
    return times, packages


def top_level_names(directory: Path) -> set[str]:
    """Importable top-level names in a package directory: numpy/, typing_extensions.py, _x.cpython-313-....so
    (not numpy.libs/ nor *.dist-info/)."""
    paths = directory.iterdir() if directory.is_dir() else []
    return {
        p.name.split(".")[0]
        for p in paths
        if (p.is_dir() and p.name.isidentifier()) or (p.is_file() and p.suffix in (".py", ".so"))
    }


def import_env(function: str) -> dict[str, str]:
    local_env = json.loads((ROOT / "events" / "local-env.json").read_text(encoding="utf-8"))
    env = dict(os.environ, **local_env.get("Parameters", {}), **local_env.get(function, {}))
    env.setdefault("AWS_REGION", "us-east-1")
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT)])
    return env


def check_sizes(template: dict[str, Any], build: Path) -> list[str]:
    layer_sizes = {name: tree_bytes(build / name) for name in resources_of(template, "AWS::Serverless::LayerVersion")}
    for layer, size in layer_sizes.items():
        print(f"Layer {layer}: {size / MIB:.2f} MiB unzipped")
    failures, sizes = [], {}
    print(f"\n{'function':<24} {'code MiB':>9} {'layers MiB':>11} {'total MiB':>10} {'limit MiB':>10}  result  layers")
    for name in resources_of(template, "AWS::Serverless::Function"):
        layers = function_layers(template, name)
        failures += [
            f"{name} uses layer {layer}, which this stack does not build: not measured"
            for layer in layers
            if layer not in layer_sizes
        ]
        code, layer_bytes = sizes[name] = (tree_bytes(build / name), sum(layer_sizes.get(x, 0) for x in layers))
        total, limit = code + layer_bytes, size_limit(name)
        print(
            f"{name:<24} {code / MIB:>9.3f} {layer_bytes / MIB:>11.2f} {total / MIB:>10.2f} {limit / MIB:>10.0f}  "
            f"{'OK' if total <= limit else 'OVER':<6}  {', '.join(layers) or '-'}"
        )
    libraries: dict[str, int] = {}
    for part in [*layer_sizes, *sizes]:
        for machine, count in native_libraries(build / part).items():
            libraries[machine] = libraries.get(machine, 0) + count
            if machine != "aarch64":
                failures.append(f"{part} ships {count} {machine} native libraries; Lambda's arm64 needs aarch64")
    print("\nNative libraries in the build: " + (", ".join(f"{n} {m}" for m, n in libraries.items()) or "none"))
    return failures + size_failures(sizes)


def check_imports(template: dict[str, Any], build: Path, runs: int) -> list[str]:
    failures = []
    print(
        f"\nCold import of each handler module in a fresh {sys.executable} ({os.uname().machine}, Python "
        f"{sys.version.split()[0]}), best and median of {runs}; the goal applies to the best (least disturbed).\n"
        "The arm64 build itself cannot be imported on this machine: this imports the repo's code with the venv's "
        "packages."
    )
    # boto3 comes with the runtime: what it loads here (this venv's optional botocore extras too) is not shipped.
    _, boto3_loads = import_times("boto3", dict(os.environ), 1)
    if extras := sorted(boto3_loads - RUNTIME_PROVIDED):
        print(
            f"This venv's boto3 also loads {', '.join(extras)} (optional extras Lambda's runtime is not known to "
            "ship): the times below include them, so they overstate Lambda's a little."
        )
    print(f"{'function':<24} {'module':<32} {'best s':>7} {'median s':>9} {'goal s':>7}  result")
    for name, resource in resources_of(template, "AWS::Serverless::Function").items():
        module = "functions." + Path(resource["Properties"]["CodeUri"]).name + ".app"
        try:
            times, packages = import_times(module, import_env(name), runs)
        except subprocess.CalledProcessError as exc:
            failures.append(f"{module} does not import: {(exc.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        best, goal = min(times), import_goal(name)
        print(
            f"{name:<24} {module:<32} {best:>7.3f} {statistics.median(times):>9.3f} {goal:>7.1f}  "
            f"{'OK' if best <= goal else 'SLOW'}"
        )
        if best > goal:
            failures.append(f"{name} imports in {best:.3f} s at best, {best - goal:.3f} s over its {goal} s goal")
        shipped = top_level_names(build / name).union(
            *(top_level_names(build / layer / "python") for layer in function_layers(template, name))
        )
        if missing := sorted(packages - shipped - RUNTIME_PROVIDED - boto3_loads):
            failures.append(
                f"{module} imports {', '.join(missing)}, which neither {name}'s package nor its layers "
                "ship (it would fail on Lambda)"
            )
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["auto", "local", "pip"], default="auto", help="how to build (see top)")
    parser.add_argument("--runs", type=int, default=5, help="imports timed per handler (default 5)")
    args = parser.parse_args()
    template = load_template(ROOT / "template.yaml")
    build = build_all(template, args.mode)
    failures = check_sizes(template, build) + check_imports(template, build, args.runs)
    print(
        "\n" + "\n".join(f"FAIL: {failure}" for failure in failures)
        if failures
        else "\nEvery package is within its size limit and every handler imports within its goal."
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
