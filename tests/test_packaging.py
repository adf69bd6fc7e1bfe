"""A built wheel carries the built-in suites and model cards and works outside the source tree.

Builds an sdist from a copy of the source, a wheel from that sdist (as ``python -m build`` does),
installs the wheel into a fresh venv in tmp_path and runs ``mova-bench`` from a folder outside
the source tree. Offline: the wheel is built with the setuptools of this interpreter
(``--no-build-isolation``) and installed with ``--no-deps``; the new venv sees the dependencies
through a ``.pth`` line naming this interpreter's site-packages (appended to ``sys.path``; the
``.pth`` files in there, such as an editable install's finder, are not run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

#: top-level entries of the checkout that a build never needs
_NOT_COPIED = {"tests", "benchmarks", "leaderboard", "reports", "runs", "build", "dist"}


def _setuptools_is_new_enough() -> bool:
    try:
        major = int(metadata.version("setuptools").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 77


def _ignore(folder: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    if Path(folder) == ROOT:
        skip |= {n for n in names if n.startswith(".") or n in _NOT_COPIED or (ROOT / n / "pyvenv.cfg").exists()}
    return skip


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv outside the source tree with the wheel installed; returns (venv, cwd, env)."""
    if not _setuptools_is_new_enough():
        pytest.skip("building the wheel offline needs setuptools>=77 here (pip install -e '.[test]')")
    tmp = tmp_path_factory.mktemp("packaging")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
           and not k.startswith("MOVA_BENCH_")}
    env["MOVA_BENCH_HOME"] = str(tmp / "home")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_ignore)
    dist = tmp / "dist"
    sdist = _run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
                  dist], cwd=src, env=env).stdout.split()[-1]
    with tarfile.open(dist / sdist) as tar:
        names = tar.getnames()
    for folder in ("prompts", "models"):  # the sdist keeps the top-level folders
        assert any(n.split("/")[1:2] == [folder] and n.endswith(".yaml") for n in names), names
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist,
          dist / sdist], cwd=tmp, env=env)
    (wheel,) = dist.glob("mova_bench-*.whl")

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp, env=env)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp, env=env)
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp, env=env).stdout.strip())
    outer = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_outer_dependencies.pth").write_text("".join(f"{p}\n" for p in outer))

    cwd = tmp / "elsewhere"
    cwd.mkdir()
    return venv, cwd, env


def test_installed_package_is_the_wheel_not_the_source_tree(installed):
    venv, cwd, env = installed
    probe = textwrap.dedent("""
        import json, mova_bench, mova_bench.cards as c, mova_bench.suites as s
        found = s.available_suites()
        print(json.dumps({"file": mova_bench.__file__, "in_source_tree": s.IN_SOURCE_TREE,
                          "suites": {k: str(v) for k, v in found.items()},
                          "models_dir": str(c.MODELS_DIR),
                          "thunderstorm": s.load_suite("thunderstorm_set").source,
                          "first_frames": [p.first_frame for n in found for p in s.load_suite(n).prompts if p.first_frame]}))
    """)
    info = json.loads(_run([venv / "bin" / "python", "-c", probe], cwd=cwd, env=env).stdout)
    site = str(venv.resolve())
    assert info["file"].startswith(site), info["file"]
    assert not info["in_source_tree"]
    assert set(info["suites"]) >= {p.stem for p in (ROOT / "prompts").glob("*.yaml")}
    assert all(path.startswith(site) for path in info["suites"].values()), info["suites"]
    assert info["thunderstorm"].startswith(site) and info["models_dir"].startswith(site)
    # images a suite names (first_frame) ship with it
    assert all(Path(f).is_file() and f.startswith(site) for f in info["first_frames"]), info["first_frames"]


def test_cli_lists_and_validates_the_builtins(installed):
    venv, cwd, env = installed
    exe = venv / "bin" / "mova-bench"
    suites = _run([exe, "list", "suites"], cwd=cwd, env=env).stdout
    listed = {line.split()[0] for line in suites.splitlines() if line.strip()}
    assert listed >= {"thunderstorm_set", "impacts_set"} | {p.stem for p in (ROOT / "prompts").glob("*.yaml")}, suites
    models = json.loads(_run([exe, "list", "models", "--json"], cwd=cwd, env=env).stdout)
    cards = {yaml.safe_load(p.read_text())["name"] for p in (ROOT / "models").glob("*.yaml")}
    assert {m["name"] for m in models} >= cards | {"procedural"}
    checked = _run([exe, "validate"], cwd=cwd, env=env).stdout
    assert checked.count("ok   suite") == len(listed) and checked.count("ok   model") == len(cards), checked
    unknown = subprocess.run([str(exe), "run", "--model", "procedural", "--suite", "no_such_suite"], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "thunderstorm_set" in unknown.stderr, unknown.stderr


def test_one_prompt_run(installed):
    venv, cwd, env = installed
    (cwd / "tiny.yaml").write_text(textwrap.dedent("""
        name: tiny
        version: "1"
        defaults: {duration_s: 1, fps: 12, sample_rate: 16000, width: 64, height: 48, samples_per_prompt: 1}
        reference: {kind: procedural, samples_per_prompt: 1}
        prompts:
          - id: drum
            text: A drum is hit twice in a quiet room.
    """))
    proc = _run([venv / "bin" / "mova-bench", "run", "--model", "procedural", "--suite", "tiny.yaml", "--out", cwd / "runs",
                 "--metrics", "sync_offset_ms", "--json"], cwd=cwd, env=env)
    assert "sync_offset_ms" in proc.stdout
    (clips,) = (cwd / "runs").glob("*/clips")
    # the built-in suite by name; the tiny run's clip as its reference keeps this to seconds
    # (the suite's own procedural reference renders 33 clips: ~20 s)
    proc = _run([venv / "bin" / "mova-bench", "run", "--model", "procedural", "--suite", "thunderstorm_set",
                 "--samples-per-prompt", "1", "--out", cwd / "runs", "--metrics", "sync_offset_ms",
                 "--reference", clips], cwd=cwd, env=env)
    assert "thunderstorm_set" in proc.stderr
