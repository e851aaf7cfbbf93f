"""Build the functions with the real `sam build` (Python 3.13, arm64, no container) and check what it made.

    .venv/bin/python tools/package_check.py [--runs 3]     (make package-check)
    .venv/bin/python tools/package_check.py --build-only   (make build: into .aws-sam/build, for `sam deploy`)

1. Build: `sam build` of template.yaml as a user runs it, with Python 3.13 (the functions' runtime) first on PATH:
   python3.13 on PATH or a pyenv version. Without it the check fails (exit 2) saying how to get it, or to build with
   Docker (`sam build --use-container`, which this check does not run). There is no fallback: a check that builds
   something else does not check the build users deploy.
2. Precompile: Python 3.13 writes every module's bytecode into the build (compileall, unchecked-hash, so extraction
   times do not matter). Lambda's /var/task and /opt are read-only, so a package without bytecode compiles every
   module it imports on every cold start (measured below: about twice as slow). `make build` ships the same.
3. Wheels: every native library is aarch64; every installed distribution has a WHEEL tag Lambda's python3.13 on
   arm64 accepts (pure Python, or CPython 3.13 / abi3 for manylinux aarch64 with glibc at most 2.34, Amazon Linux
   2023's); each version equals its `==` pin in the requirements.txt beside the code; no top-level package ships in
   both a function and its layer; the layer's BuildArchitecture is the functions' architecture.
4. Size: unzipped bytes of each function's package plus every layer it uses (Globals.Function.Layers and its own),
   as SAM built them (with the bytecode). The runtime's boto3 does not count (AWS's 250 MB quota is code plus
   layers). Limits: 250 MiB for any function, 200 MiB for the steps that ship numpy, 30 MiB for every other step.
5. Cold import: the arm64 build cannot run on this machine, so an x86_64 twin of the template (same code, same pins,
   only the architectures changed) is built and precompiled the same way, and each handler module is imported by a
   fresh Python 3.13 from the built directories only: the function's, the layer's python/, and boto3 installed the
   way the runtime ships it. PYTHONDONTWRITEBYTECODE=1, so nothing is cached between runs. The best of --runs must
   meet the goal (0.5 s; 1.0 s for the steps that ship numpy); the time without bytecode is printed beside it.
   Lambda's Graviton CPUs are not this machine's: the numbers compare builds, they do not predict Lambda's.
Exits 1 when a limit or goal is missed, saying which and by how much. Needs the package registry: not in `make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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
DEPLOY_BUILD = ROOT / ".aws-sam" / "build"  # where `sam deploy` looks
RUNTIME_VERSION = "3.13"
MIB = 1024 * 1024
AWS_LIMIT = 250 * MIB
DATA_STEPS = ("PlanDataFunction", "SplitRangeFunction", "MergeRangesFunction", "TreatRangeFunction")
# The steps that ship numpy (their requirements.txt lists it): the data step's plan, workers and merge, the ones that
# score (evaluation before deploying, the endpoint check after, the scoring API, batch scoring) and the drift check's
# statistics. They get the data step's limits; every other step must stay lean.
NUMPY_STEPS = (
    *DATA_STEPS,
    "EvaluateModelFunction",
    "VerifyEndpointFunction",
    "ScoreRecordsFunction",
    "PlanScoresFunction",
    "ScoreRangeFunction",
    "FinishScoresFunction",
    "CheckDriftFunction",
)
STEP_LIMITS = {step: 200 * MIB for step in NUMPY_STEPS}  # unzipped bytes, code and layers
DEFAULT_STEP_LIMIT = 30 * MIB
IMPORT_GOALS = {step: 1.0 for step in NUMPY_STEPS}  # seconds, precompiled, best of --runs
DEFAULT_IMPORT_GOAL = 0.5
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}
# Amazon Linux 2023 (python3.13's OS) has glibc 2.34.
MAX_GLIBC = (2, 34)
# What the python3.13 runtime provides besides the standard library (not packaged, not counted).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})


class MissingPython(SystemExit):
    """Python 3.13 is not on this machine."""


# -- template -----------------------------------------------------------------------------------------------------
def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res.get("Type") == kind}


def function_layers(template: dict[str, Any], function: str) -> list[str]:
    """Layers a function gets: the Globals' first, then its own (SAM concatenates lists). A Ref gives the layer's
    logical id; anything else (a literal ARN) is kept as written."""
    layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    layers = layers + template["Resources"][function].get("Properties", {}).get("Layers", [])
    return [layer["Ref"] if isinstance(layer, dict) and "Ref" in layer else str(layer) for layer in layers]


def twin_template(text: str, architecture: str) -> str:
    """The template with every architecture (functions' Architectures, layers' CompatibleArchitectures and
    BuildArchitecture) set to `architecture`; nothing else changes."""
    text = re.sub(r"(Architectures: \[)arm64(\])", rf"\g<1>{architecture}\g<2>", text)
    return re.sub(r"(BuildArchitecture: )arm64\b", rf"\g<1>{architecture}", text)


def architecture_failures(template: dict[str, Any]) -> list[str]:
    """A layer must be built for, and declare, the architecture the functions run on."""
    functions = template.get("Globals", {}).get("Function", {}).get("Architectures", ["x86_64"])
    failures = []
    for name, layer in resources_of(template, "AWS::Serverless::LayerVersion").items():
        built = layer.get("Metadata", {}).get("BuildArchitecture", "x86_64")
        declared = layer.get("Properties", {}).get("CompatibleArchitectures", [])
        if [built] != functions or built not in declared:
            failures.append(
                f"{name} is built for {built} and declares {declared}, but the functions run on {functions}"
            )
    return failures


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


# -- what a build holds -------------------------------------------------------------------------------------------
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


def top_level_names(directory: Path) -> set[str]:
    """Importable top-level names in a package directory: numpy/, typing_extensions.py, _x.cpython-313-....so
    (not numpy.libs/, *.dist-info/ nor __pycache__/)."""
    paths = directory.iterdir() if directory.is_dir() else []
    return {
        p.name.split(".")[0]
        for p in paths
        if (p.is_dir() and p.name.isidentifier() and p.name != "__pycache__")
        or (p.is_file() and p.suffix in (".py", ".so"))
    }


def tag_fits_lambda(tag: str, python: str = RUNTIME_VERSION) -> bool:
    """Whether a wheel tag (python-abi-platform) installs on Lambda's python`python` for arm64."""
    interpreter, abi, platform = tag.split("-")
    if platform == "any":
        return abi == "none" and any(p in ("py3", f"cp{python.replace('.', '')}") for p in interpreter.split("."))
    cp = f"cp{python.replace('.', '')}"
    if not (abi == cp and interpreter == cp) and abi != "abi3":
        return False
    if abi == "abi3" and not (interpreter.startswith("cp3") and int(interpreter[3:]) <= int(cp[3:])):
        return False
    for one in platform.split("."):
        if one == "manylinux2014_aarch64":
            return True
        match = re.fullmatch(r"manylinux_(\d+)_(\d+)_aarch64", one)
        if match and (int(match[1]), int(match[2])) <= MAX_GLIBC:
            return True
    return False


def distributions(directory: Path) -> dict[str, tuple[str, list[str]]]:
    """Normalised name -> (version, WHEEL tags) of every distribution installed in directory."""
    found = {}
    for info in directory.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").rpartition("-")
        wheel = info / "WHEEL"
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        found[normalise(name)] = (version, tags)
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def pins(requirements: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (comments and other lines ignored)."""
    if not requirements.exists():
        return {}
    found = {}
    for line in requirements.read_text().splitlines():
        match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+).*", line)
        if match:
            found[normalise(match[1])] = match[2]
    return found


def wheel_failures(part: str, directory: Path, requirements: Path) -> list[str]:
    failures = []
    installed = distributions(directory)
    for name, (version, tags) in sorted(installed.items()):
        if not any(tag_fits_lambda(tag) for tag in tags):
            failures.append(f"{part}: {name} {version} is a wheel for {', '.join(tags)}, not python3.13 on arm64")
    for name, pinned in pins(requirements).items():
        got = installed.get(name, ("missing", []))[0]
        if got != pinned:
            shown = requirements.relative_to(ROOT) if requirements.is_relative_to(ROOT) else requirements
            failures.append(f"{part}: {shown} pins {name}=={pinned}, the build has {got}")
    return failures


# -- build --------------------------------------------------------------------------------------------------------
def find_python(version: str) -> Path | None:
    """A python<version> that runs: on PATH (a pyenv shim may not), else a pyenv install."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(pyenv.glob(f"versions/{version}*/bin/python{version}"), reverse=True)
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "--version"], capture_output=True).returncode == 0:
            return Path(candidate)
    return None


def require_python() -> Path:
    python = find_python(RUNTIME_VERSION)
    if python is None:
        raise MissingPython(
            f"make package-check builds with the real `sam build`, which needs Python {RUNTIME_VERSION} (the "
            f"functions' runtime) on PATH, and python{RUNTIME_VERSION} is not on PATH nor a pyenv version here.\n"
            f"Install it: `pyenv install {RUNTIME_VERSION}` (or `uv python install {RUNTIME_VERSION}`, or your "
            f"system's python{RUNTIME_VERSION} package), then run make package-check again.\n"
            "Or build in AWS's build image with Docker: `sam build --use-container` (this check does not run it)."
        )
    return python


def sam_build(template_text: str, build: Path, python: Path, log: Path) -> None:
    """`sam build` of template_text into build, with `python`'s folder first on PATH; exits on failure."""
    build.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(build, ignore_errors=True)
    template = build.parent / f"{build.name}-template.yaml"
    template.write_text(template_text, encoding="utf-8")
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", PATH=os.pathsep.join([str(python.parent), os.environ["PATH"]]))
    command = [
        str(Path(sys.executable).parent / "sam"),
        "build",
        "--template-file",
        str(template),
        "--base-dir",
        str(ROOT),
        "--build-dir",
        str(build),
        "--no-cached",
        "--parallel",
        "--debug",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    log.write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode:
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
        raise SystemExit(
            f"`sam build` failed: {(errors or [f'exit status {result.returncode}'])[-1]} (log: {log.relative_to(ROOT)})"
        )


def precompile(build: Path, python: Path) -> None:
    """Bytecode for every module in the build, by the runtime's Python (unchecked-hash: valid whatever the files'
    times become in the zip)."""
    subprocess.run(
        [str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(build)],
        check=True,
        capture_output=True,
    )


def build(template_text: str, build_dir: Path, python: Path, name: str) -> float:
    started = time.monotonic()
    sam_build(template_text, build_dir, python, build_dir.parent / f"{name}-sam-build.log")
    precompile(build_dir, python)
    return time.monotonic() - started


# -- cold import --------------------------------------------------------------------------------------------------
PROBE = """import json, sys, time
t = time.perf_counter()
import app
print(json.dumps(time.perf_counter() - t))"""


def runtime_boto3(python: Path) -> Path:
    """boto3 installed for `python` beside the builds, as the runtime ships it (not counted, not in the build): the
    version of this venv's boto3, with the bytecode pip writes (the runtime's own site-packages are a normal pip
    install; its exact boto3 version is AWS's)."""
    import boto3

    target = OUT / f"runtime-boto3-{boto3.__version__}-compiled"
    if not (target / "boto3").exists():
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore"]
            + ["--target", str(target), f"boto3=={boto3.__version__}"],
            check=True,
            capture_output=True,
        )
    return target


def import_env(function: str, path: list[Path]) -> dict[str, str]:
    local_env = json.loads((ROOT / "events" / "local-env.json").read_text(encoding="utf-8"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(local_env.get("Parameters", {}), **local_env.get(function, {}))
    env.setdefault("AWS_REGION", "us-east-1")
    env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
    return env


def import_times(python: Path, cwd: Path, env: dict[str, str], runs: int) -> list[float]:
    """Seconds each fresh `import app` took (raises CalledProcessError when it does not import)."""
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [str(python), "-S", "-c", PROBE],  # -S: nothing from that Python's own site-packages
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(json.loads(out.stdout.splitlines()[-1]))
    return times


def without_bytecode(directory: Path, target: Path) -> Path:
    """A copy of a built directory without its bytecode (what plain `sam build` ships)."""
    if not target.exists():
        shutil.copytree(directory, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


# -- checks -------------------------------------------------------------------------------------------------------
def check_build(template: dict[str, Any], build_dir: Path) -> list[str]:
    layers = resources_of(template, "AWS::Serverless::LayerVersion")
    layer_sizes = {name: tree_bytes(build_dir / name) for name in layers}
    for layer, size in layer_sizes.items():
        print(f"Layer {layer}: {size / MIB:.2f} MiB unzipped")
    failures, sizes = architecture_failures(template), {}
    print(f"\n{'function':<24} {'code MiB':>9} {'layers MiB':>11} {'total MiB':>10} {'limit MiB':>10}  result  layers")
    for name, resource in resources_of(template, "AWS::Serverless::Function").items():
        used = function_layers(template, name)
        failures += [
            f"{name} uses layer {x}, which this stack does not build: not measured"
            for x in used
            if x not in layer_sizes
        ]
        code, layer_bytes = sizes[name] = (tree_bytes(build_dir / name), sum(layer_sizes.get(x, 0) for x in used))
        total, limit = code + layer_bytes, size_limit(name)
        print(
            f"{name:<24} {code / MIB:>9.3f} {layer_bytes / MIB:>11.2f} {total / MIB:>10.2f} {limit / MIB:>10.0f}  "
            f"{'OK' if total <= limit else 'OVER':<6}  {', '.join(used) or '-'}"
        )
        source = ROOT / resource["Properties"]["CodeUri"]
        failures += wheel_failures(name, build_dir / name, source / "requirements.txt")
        shared = top_level_names(build_dir / name) & set().union(
            *(top_level_names(build_dir / x / "python") for x in used if x in layer_sizes)
        )
        if shared - {"app"}:
            failures.append(f"{name} ships {', '.join(sorted(shared))}, which its layers ship too")
    for name, layer in layers.items():
        source = ROOT / layer["Properties"]["ContentUri"]
        failures += wheel_failures(name, build_dir / name / "python", source / "requirements.txt")
    libraries: dict[str, int] = {}
    for part in [*layer_sizes, *sizes]:
        for machine, count in native_libraries(build_dir / part).items():
            libraries[machine] = libraries.get(machine, 0) + count
            if machine != "aarch64":
                failures.append(f"{part} ships {count} {machine} native libraries; Lambda's arm64 needs aarch64")
    wheels = sum(len(distributions(p)) + len(distributions(p / "python")) for p in build_dir.iterdir() if p.is_dir())
    print("\nNative libraries in the build: " + (", ".join(f"{n} {m}" for m, n in libraries.items()) or "none"))
    print(f"Installed distributions checked for their wheel tags and pins: {wheels}")
    return failures + size_failures(sizes)


def check_imports(template: dict[str, Any], twin: Path, python: Path, runs: int) -> list[str]:
    boto = runtime_boto3(python)
    version = subprocess.run([str(python), "--version"], capture_output=True, text=True).stdout.strip()
    print(
        f"\nCold import of each handler ({version}, {os.uname().machine} twin of the arm64 build, from the built "
        f"directories only; boto3 as the runtime ships it), best and median of {runs}, goal on the best:"
    )
    print(f"{'function':<24} {'precompiled s':>14} {'median s':>9} {'no bytecode s':>14} {'goal s':>7}  result")
    failures = []
    plain = OUT / "x86_64-no-bytecode"
    for name in resources_of(template, "AWS::Serverless::Function"):
        layers = [twin / x / "python" for x in function_layers(template, name) if (twin / x).exists()]
        try:
            shipped = sorted(import_times(python, twin / name, import_env(name, [twin / name, *layers, boto]), runs))
            bare_layers = [without_bytecode(layer.parent, plain / layer.parent.name) / "python" for layer in layers]
            bare_fn = without_bytecode(twin / name, plain / name)
            bare = min(import_times(python, bare_fn, import_env(name, [bare_fn, *bare_layers, boto]), runs))
        except subprocess.CalledProcessError as exc:
            failures.append(f"{name} does not import from its build: {(exc.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        best, goal = shipped[0], import_goal(name)
        print(
            f"{name:<24} {best:>14.3f} {shipped[len(shipped) // 2]:>9.3f} {bare:>14.3f} {goal:>7.1f}  "
            f"{'OK' if best <= goal else 'SLOW'}"
        )
        if best > goal:
            failures.append(f"{name} imports in {best:.3f} s at best, {best - goal:.3f} s over its {goal} s goal")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="imports timed per handler (default 5)")
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="only build (with bytecode) into .aws-sam/build, where `sam deploy` takes it from",
    )
    args = parser.parse_args(argv)
    try:
        python = require_python()
    except MissingPython as missing:
        print(missing.code, file=sys.stderr)
        return 2
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    template = load_template(ROOT / "template.yaml")
    architecture = template["Globals"]["Function"]["Architectures"][0]
    if args.build_only:
        seconds = build(text, DEPLOY_BUILD, python, "deploy")
        print(
            f"Built {architecture} with `sam build` and {python} in {seconds:.1f} s into "
            f"{DEPLOY_BUILD.relative_to(ROOT)}, with bytecode: now `sam deploy`."
        )
        return 0
    seconds = build(text, OUT / "build", python, "build")
    print(
        f"Built {architecture} with `sam build` and {python}, precompiled, in {seconds:.1f} s into .aws-sam/package-check/build.\n"
    )
    failures = check_build(template, OUT / "build")
    shutil.rmtree(OUT / "x86_64-no-bytecode", ignore_errors=True)
    seconds = build(twin_template(text, "x86_64"), OUT / "x86_64", python, "x86_64")
    print(f"\nBuilt the x86_64 twin in {seconds:.1f} s (for the import times only).")
    failures += check_imports(template, OUT / "x86_64", python, args.runs)
    print(
        "\n" + "\n".join(f"FAIL: {failure}" for failure in failures)
        if failures
        else "\nThe real build is aarch64 at its pins, every package is within its size limit, and every handler "
        "imports from it within its goal."
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
