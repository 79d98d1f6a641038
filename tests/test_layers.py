"""Dependencies point one way: every import in the package (module level and inside
functions, read with ``ast``, nothing executed) goes from a higher layer to a lower one, and no
two modules import each other, directly or round a loop.

The layers, lowest first (docs/architecture.md draws them). A component may import its own
modules and any component of a lower layer; components of one layer are independent of each
other (the synthesizer and the reconstruction model share nothing but what lies below them).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "humansplat"

#: lowest first; each entry is a layer, a tuple of components (module prefixes)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("humansplat._version", "humansplat.errors"),
    ("humansplat.runtime", "humansplat.logs", "humansplat.config", "humansplat.hub"),
    # maths and containers
    ("humansplat.geometry", "humansplat.cameras", "humansplat.image_filters"),
    ("humansplat.gaussians", "humansplat.metrics"),
    ("humansplat.render",),
    ("humansplat.io",),
    # stages
    ("humansplat.prior", "humansplat.latent_space"),
    ("humansplat.synth", "humansplat.model", "humansplat.avatar"),
    ("humansplat.parts_export", "humansplat.refine", "humansplat.front"),
    ("humansplat.export", "humansplat.data"),
    ("humansplat.train",),
    # the pipeline and its result
    ("humansplat.reconstruction",),
    ("humansplat.pipeline",),
    # evaluation scores what the pipeline and the trained model produce
    ("humansplat.eval",),
    # entry points
    ("humansplat.cli_train", "humansplat.extras", "humansplat.webapp"),  # subcommands, app
    ("humansplat.cli", "humansplat"),
)


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def _resolve(name: str, modules) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported package module: line of the first such import}."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for mod, (path, is_pkg) in modules.items():
        here = mod if is_pkg else mod.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[:len(here.split(".")) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                # `from pkg import sub` imports the submodule pkg.sub
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in modules else src
                           for a in node.names]
            for t in targets:
                if t == PACKAGE or t.startswith(PACKAGE + "."):
                    r = _resolve(t, modules)
                    if r and r != mod:
                        edges.setdefault(r, node.lineno)
        graph[mod] = edges
    return graph


def _component(mod: str) -> tuple[int, str] | None:
    best = None
    for level, layer in enumerate(LAYERS):
        for comp in layer:
            if (mod == comp or mod.startswith(comp + ".")) and \
                    (best is None or len(comp) > len(best[1])):
                best = (level, comp)
    return best


def test_every_module_has_a_layer():
    missing = sorted(m for m in _modules() if _component(m) is None)
    assert not missing, f"modules in no layer (add them to LAYERS here and to " \
        f"docs/architecture.md): {missing}"


def test_imports_point_down_the_layers():
    bad = []
    for mod, edges in import_graph().items():
        src = _component(mod)
        for dep, line in edges.items():
            dst = _component(dep)
            if src is None or dst is None or dst[1] == src[1]:
                continue
            if dst[0] >= src[0]:
                how = "a higher layer" if dst[0] > src[0] else "a sibling of its layer"
                bad.append(f"{mod}:{line} imports {dep} ({how}: {src[1]} -> {dst[1]})")
    assert not bad, "imports against the layering:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_function_level_and_relative_imports():
    graph = import_graph()
    # pipeline imports the prior's fit inside a method, relatively
    assert "humansplat.prior.fit" in graph["humansplat.pipeline.run"]
    assert _component("humansplat.prior.fit") == (LAYERS.index(("humansplat.prior",
                                                                  "humansplat.latent_space")),
                                                  "humansplat.prior")
