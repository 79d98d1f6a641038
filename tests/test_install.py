"""What a fresh machine gets: every third-party module the package, the app, the scripts and
the tests import is installed by ``scripts/setup.sh --test`` and importable here; a wheel
carries the bundled checkpoint, which then loads from any working directory.

The import list is derived by scanning the sources (every ``import`` statement, also inside
functions and ``try`` blocks), never kept by hand: a new import of an undeclared package
fails here, as gsplat's did when ``setup.sh --test`` did not install it."""

from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["humansplat", "tests", "app.py", "scripts", "benchmarks"]


def _local_modules() -> set[str]:
    """Top-level names that resolve to this repository's own files (the package, app.py,
    the test helpers and benchmark modules imported by sibling scripts)."""
    names = {"humansplat", "tests", "benchmarks", "scripts"}
    for folder in (ROOT, ROOT / "tests", ROOT / "benchmarks", ROOT / "scripts"):
        names |= {p.stem for p in folder.glob("*.py")}
    return names


def _python_files() -> list[Path]:
    files = []
    for entry in SCANNED:
        p = ROOT / entry
        files += [p] if p.is_file() else sorted(p.rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def scanned_imports() -> dict[str, list[str]]:
    """Top-level third-party module -> the files that import it."""
    local, std = _local_modules(), set(sys.stdlib_module_names) | {"__future__"}
    found: dict[str, list[str]] = {}
    for f in _python_files():
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in std and top not in local:
                    found.setdefault(top, []).append(str(f.relative_to(ROOT)))
    return found


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _req_name(spec: str) -> str | None:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return _norm(m.group(1)) if m else None


def setup_installs() -> set[str]:
    """Distribution names ``scripts/setup.sh --test`` installs by name: the package's own
    dependencies and the extras it asks for, requirements files, and plain names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    names: set[str] = set()

    def add(spec: str) -> None:
        if spec.startswith((".", "-e")) or spec == "-e":
            return
        name = _req_name(spec)
        if name:
            names.add(name)

    lines = (ROOT / "scripts" / "setup.sh").read_text().splitlines()
    pip_lines = [ln.strip() for ln in lines if ln.strip().startswith("$PIP ")]
    assert pip_lines, "scripts/setup.sh installs nothing with $PIP?"
    for line in pip_lines:
        words = shlex.split(line)[1:]
        i = 0
        while i < len(words):
            w = words[i]
            if w == "-r":
                for req in (ROOT / words[i + 1]).read_text().splitlines():
                    req = req.split("#")[0].strip()
                    if req:
                        add(req)
                i += 2
                continue
            m = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", w)
            if m:  # the project itself: its dependencies and the named extras
                for dep in project["dependencies"]:
                    add(dep)
                for extra in (m.group(1) or "").split(","):
                    for dep in extras.get(extra, []) if extra else []:
                        add(dep)
            elif not w.startswith("-"):
                add(w)
            i += 1
    return names


def test_every_imported_module_is_importable():
    """A module our code or tests import but this environment lacks fails the suite (it
    never becomes a skip)."""
    imports = scanned_imports()
    assert {"torch", "gsplat", "mediapipe", "anny"} <= set(imports)  # the scan sees them
    missing = {m: files[:3] for m, files in imports.items()
               if importlib.util.find_spec(m) is None}
    assert not missing, f"imported but not installed (add to scripts/setup.sh): {missing}"


def test_every_imported_module_is_installed_by_setup():
    """Each imported module's distribution is one setup.sh --test names (directly, not only
    as some other package's dependency, which could drop it)."""
    installs = setup_installs()
    by_module = md.packages_distributions()
    undeclared = {}
    for module, files in sorted(scanned_imports().items()):
        dists = {_norm(d) for d in by_module.get(module, [])}
        if not dists & installs:
            undeclared[module] = (sorted(dists), files[:3])
    assert not undeclared, ("imported but not installed by scripts/setup.sh --test "
                            f"(module: (its distributions, where imported)): {undeclared}")


def test_the_scan_catches_a_dependency_setup_would_not_install(tmp_path, monkeypatch):
    """The check above is live: drop gsplat from what setup.sh installs and it fails."""
    real = setup_installs()
    assert "gsplat" in real
    monkeypatch.setattr(sys.modules[__name__], "setup_installs",
                        lambda: real - {"gsplat"})
    try:
        test_every_imported_module_is_installed_by_setup()
    except AssertionError as err:
        assert "gsplat" in str(err)
    else:
        raise AssertionError("a missing gsplat went unnoticed")


def test_wheel_carries_the_bundled_checkpoint_for_any_working_directory(tmp_path):
    """A non-editable install (a wheel, installed into a plain folder) holds the bundled
    checkpoint as package data, and `from_pretrained()` run from an unrelated folder loads
    it from there, not from this checkout."""
    from humansplat.hub import BUNDLED_CHECKPOINT

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "humansplat", src / "humansplat",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("humansplat-*.whl"))
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, timeout=600)
    shipped = {p.name for p in BUNDLED_CHECKPOINT.iterdir()}
    assert {"pipeline.json", "config.json", "model.safetensors", "README.md"} <= shipped
    installed = target / "humansplat" / "checkpoints" / "humansplat-tiny"
    assert {p.name for p in installed.iterdir()} == shipped
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("from humansplat.pipeline import HumanSplatPipeline as P; p = P.from_pretrained();"
            " print(p.source.kind, p.source.path, p.checkpoint_info()['model_preset'])")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("HUMANSPLAT_CHECKPOINT", "PYTHONPATH")}
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True,
                         text=True, env={**env, "PYTHONPATH": str(target)}, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    kind, path, preset = out.stdout.split()
    assert kind == "bundled" and Path(path) == installed.resolve(), out.stdout
    assert preset == "tiny"


def test_cli_says_plainly_when_the_bundled_checkpoint_is_gone(tmp_path, monkeypatch, capsys):
    """No silent fallback to the baseline: a one-line error naming what is missing, exit 2,
    no result folder."""
    from humansplat import cli, hub

    monkeypatch.delenv(hub.CHECKPOINT_ENV, raising=False)
    monkeypatch.setattr(hub, "BUNDLED_CHECKPOINT", tmp_path / "gone" / "humansplat-tiny")
    rc = cli.main(["reconstruct", str(ROOT / "examples" / "astronaut.jpg"), "-o",
                   str(tmp_path / "out"), "--no-video", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("humansplat reconstruct: error: the bundled checkpoint is "
                             "missing: no folder "), err
    assert not any((tmp_path / "out").glob("*/meta.json"))
