"""The package's layers, checked from its source: imports run one way, privates stay private.

Every module under ``src/tlcourse`` is discovered from the file system and parsed with
``ast`` (module-level *and* function-level imports, so a lazy import cannot hide a cycle).
The checkers are plain functions on an import graph, each also tested on a small synthetic
graph so that it is known to fail when it should.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import tlcourse

PACKAGE = Path(tlcourse.__file__).parent
FRAMEWORKS = ("torch", "tensorflow", "keras")
HALVES = ("tlcourse.torch", "tlcourse.keras")

# A half passes itself to a framework-free loop as the ``backend`` (``pretrain_source_model
# (tlcourse.torch, ...)``). It imports its own package inside the function for that: the
# package's __init__ imports the module, so this is the one cycle allowed, and only
# between a half's module and that half's own package.
ALLOWED_CYCLE_EDGES = {
    ("tlcourse.torch.source", "tlcourse.torch"): "passes the half itself as the backend",
}
# Both frameworks start from one source model, trained once in PyTorch: the Keras half's
# get_source_model loads it (inside the function) and ports it. The one cross-half import.
ALLOWED_CROSS_HALF = {
    ("tlcourse.keras.source", "tlcourse.torch.source"): "one source model for both halves",
}
# port.py converts weights between the frameworks, so it needs both (each imported inside
# the function that needs it); it is the only framework-free module that may.
ALLOWED_FRAMEWORK_IMPORTS = {
    "tlcourse.port": "ports weights between PyTorch and Keras, so it needs both",
    "tlcourse.finetune_command": "the tlcourse-finetune command runs the half that its "
    "--framework option names (imported inside the function for that framework)",
}

# frameworks.py asks whether TensorFlow is already in sys.modules: it guards the import
# order of the frameworks themselves, it does not choose a backend.
ALLOWED_FRAMEWORK_NAMES = {
    **ALLOWED_FRAMEWORK_IMPORTS,
    "tlcourse.frameworks": "checks which framework is loaded, to order their imports",
}


@dataclass(frozen=True)
class Import:
    """One imported name: ``from module import name`` (name None for ``import module``)."""

    importer: str
    module: str
    name: str | None
    line: int


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["tlcourse", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def discover(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package, by dotted name (found on disk, never listed by hand)."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def parse_imports(name: str, source: str, is_package: bool = False) -> list[Import]:
    """Every import statement in ``source``, wherever it is (top level or in a function)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found += [Import(name, module, alias.name, node.lineno) for alias in node.names]
    return found


def all_imports(modules: dict[str, Path]) -> list[Import]:
    return [
        imp
        for name, path in modules.items()
        for imp in parse_imports(name, path.read_text(), path.name == "__init__.py")
    ]


def resolve(imp: Import, modules) -> tuple[str, str | None]:
    """(target module, imported attribute or None): ``from tlcourse import torch`` is the
    module ``tlcourse.torch``; ``from tlcourse.data import x`` is attribute x of data."""
    if imp.name is not None and f"{imp.module}.{imp.name}" in modules:
        return f"{imp.module}.{imp.name}", None
    return imp.module, imp.name


def import_graph(imports: list[Import], modules) -> dict[str, set[str]]:
    """Edges importer -> imported module, between modules of the package only."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        target, _ = resolve(imp, modules)
        if target in modules and target != imp.importer:
            graph[imp.importer].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]], allowed=frozenset()) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted.

    ``allowed`` edges are left out of the graph first.
    """
    edges = {a: sorted(b for b in bs if (a, b) not in allowed) for a, bs in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, []):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(groups)


def private_imports(imports: list[Import], modules) -> list[str]:
    """``from tlcourse.x import _name`` where x is another module of the package."""
    bad = []
    for imp in imports:
        target, attr = resolve(imp, modules)
        if target in modules and target != imp.importer:
            hidden = attr if attr is not None else target.rsplit(".", 1)[-1]
            if hidden.startswith("_") and not hidden.startswith("__"):
                bad.append(f"{imp.importer}:{imp.line} imports {target}.{hidden}")
    return bad


def half_of(module: str) -> str | None:
    return next((h for h in HALVES if module == h or module.startswith(h + ".")), None)


def framework_free_violations(imports: list[Import], modules, allowed=frozenset()) -> list[str]:
    """A module outside both halves importing a framework or a half."""
    bad = []
    for imp in imports:
        if half_of(imp.importer) is not None or imp.importer in allowed:
            continue
        target, _ = resolve(imp, modules)
        if target.split(".")[0] in FRAMEWORKS or half_of(target) is not None:
            bad.append(f"{imp.importer}:{imp.line} imports {target}")
    return bad


def cross_half_violations(imports: list[Import], modules) -> list[str]:
    """A module of one half importing the other half."""
    bad = []
    for imp in imports:
        mine, target = half_of(imp.importer), resolve(imp, modules)[0]
        theirs = half_of(target)
        if mine is not None and theirs is not None and mine != theirs:
            if (imp.importer, target) not in ALLOWED_CROSS_HALF:
                bad.append(f"{imp.importer}:{imp.line} imports {target}")
    return bad


@pytest.fixture(scope="module")
def package():
    modules = discover()
    return modules, all_imports(modules)


def test_modules_are_discovered_not_listed(package):
    modules, imports = package
    assert {"tlcourse", "tlcourse.data", "tlcourse.torch.optim", "tlcourse.keras.optim"} <= set(
        modules
    )
    assert len(modules) == len(list(PACKAGE.rglob("*.py")))
    # Function-level imports are seen too (port.py imports torch only inside functions).
    assert any(i.importer == "tlcourse.port" and i.module == "torch" for i in imports)


def test_no_import_cycles(package):
    modules, imports = package
    graph = import_graph(imports, modules)
    for a, b in ALLOWED_CYCLE_EDGES:
        assert b in graph[a], f"allowed edge {a} -> {b} no longer exists; drop it"
    assert find_cycles(graph, frozenset(ALLOWED_CYCLE_EDGES)) == []


def test_no_module_imports_another_modules_private_name(package):
    modules, imports = package
    assert private_imports(imports, modules) == []


def test_framework_free_modules_import_no_framework(package):
    modules, imports = package
    assert framework_free_violations(imports, modules, frozenset(ALLOWED_FRAMEWORK_IMPORTS)) == []


def test_halves_do_not_import_each_other(package):
    modules, imports = package
    assert cross_half_violations(imports, modules) == []


def test_framework_free_modules_do_not_name_a_framework(package):
    # No dispatch on framework names (``if framework == "torch"``,
    # ``backend.__name__.endswith("torch")``): a loop gets the half as ``backend``.
    modules, _ = package
    bad = []
    for name, path in modules.items():
        if half_of(name) is not None or name in ALLOWED_FRAMEWORK_NAMES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c for c in ast.walk(node) if isinstance(c, ast.Constant)]
                if any(c.value in ("torch", "keras", "tensorflow") for c in consts):
                    bad.append(f"{name}:{node.lineno}")
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                "endswith",
                "startswith",
            ):
                if any(
                    isinstance(a, ast.Constant) and a.value in ("torch", "keras") for a in node.args
                ):
                    bad.append(f"{name}:{node.lineno}")
    assert bad == []


# The checkers on small synthetic packages: each one must be able to fail.

MODULES = dict.fromkeys(
    ["tlcourse", "tlcourse.a", "tlcourse.b", "tlcourse.c", "tlcourse.torch", "tlcourse.torch.t"]
    + ["tlcourse.keras", "tlcourse.keras.k"]
)


def imports_of(sources: dict[str, str]) -> list[Import]:
    return [i for name, src in sources.items() for i in parse_imports(name, src)]


def test_cycle_finder_finds_a_cycle_hidden_in_a_function():
    imports = imports_of(
        {
            "tlcourse.a": "from tlcourse.b import f\n",
            "tlcourse.b": "def g():\n    from tlcourse.c import h\n",
            "tlcourse.c": "import tlcourse.a\n",
        }
    )
    graph = import_graph(imports, MODULES)
    assert find_cycles(graph) == [["tlcourse.a", "tlcourse.b", "tlcourse.c"]]
    assert find_cycles(graph, frozenset({("tlcourse.c", "tlcourse.a")})) == []


def test_cycle_finder_sees_from_package_import_module():
    imports = imports_of(
        {
            "tlcourse.torch": "from tlcourse.torch.t import f\n",
            "tlcourse.torch.t": "def g():\n    from tlcourse import torch as backend\n",
        }
    )
    assert find_cycles(import_graph(imports, MODULES)) == [["tlcourse.torch", "tlcourse.torch.t"]]


def test_private_import_checker():
    imports = imports_of(
        {
            "tlcourse.a": "from tlcourse.b import _hidden, visible\n",
            "tlcourse.c": "from tlcourse.a import __all__\nfrom tlcourse import _x\n",
        }
    )
    assert private_imports(imports, MODULES) == [
        "tlcourse.a:1 imports tlcourse.b._hidden",
        "tlcourse.c:2 imports tlcourse._x",
    ]


def test_framework_checkers():
    imports = imports_of(
        {
            "tlcourse.a": "def f():\n    import torch\n",
            "tlcourse.b": "from tlcourse.keras.k import fit\n",
            "tlcourse.c": "import numpy\n",
            "tlcourse.torch.t": "import torch\nfrom tlcourse.keras import fit\n",
            "tlcourse.keras.k": "import keras\nfrom tlcourse.a import f\n",
        }
    )
    assert framework_free_violations(imports, MODULES) == [
        "tlcourse.a:2 imports torch",
        "tlcourse.b:1 imports tlcourse.keras.k",
    ]
    assert framework_free_violations(imports, MODULES, frozenset({"tlcourse.a"})) == [
        "tlcourse.b:1 imports tlcourse.keras.k"
    ]
    assert cross_half_violations(imports, MODULES) == ["tlcourse.torch.t:2 imports tlcourse.keras"]


def test_relative_imports_are_resolved():
    (imp,) = parse_imports("tlcourse.torch.t", "from ..a import _f\n")
    assert (imp.module, imp.name) == ("tlcourse.a", "_f")
    (imp,) = parse_imports("tlcourse.torch", "from .t import f\n", is_package=True)
    assert imp.module == "tlcourse.torch.t"
