"""The house rules, checked: layering, no import cycles, small modules, one exception tree."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import embedkit
from embedkit.errors import EmbedkitError

SRC = Path(embedkit.__file__).parent
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages([str(SRC)], prefix="embedkit.")
    if "__main__" not in m.name
)
CONSUMERS = (
    "embedkit.search",
    "embedkit.jobs",
    "embedkit.frame",
    "embedkit.outputs",
    "embedkit.evaluate",
    "embedkit.sklearn",
    "embedkit.integrations",
    "embedkit.ray",
    "embedkit.dask",
    "embedkit.plot",
)


def _imports(module: str) -> set[str]:
    """embedkit modules imported at module level or inside functions (not TYPE_CHECKING)."""
    path = SRC.joinpath(*module.split(".")[1:])
    file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(file.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("embedkit"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("embedkit")}
    return found - {module}


def test_no_module_over_400_lines() -> None:
    sizes = {f: len(f.read_text("utf-8").splitlines()) for f in SRC.rglob("*.py")}
    assert {str(f): n for f, n in sizes.items() if n > 400} == {}


def test_consumers_never_import_a_backend() -> None:
    for module in MODULES:
        if module.startswith(CONSUMERS):
            backends = {m for m in _imports(module) if m.startswith("embedkit.backends")}
            assert not backends, (module, backends)


def test_backends_never_import_each_other() -> None:
    for module in MODULES:
        if not module.startswith("embedkit.backends."):
            continue
        own = module.split(".")[2].partition("_")[0]  # x_train, x_onnx, ...: x's own helpers
        others = {
            m
            for m in _imports(module)
            if m.startswith("embedkit.backends.") and m.split(".")[2].partition("_")[0] != own
        }
        assert not others, (module, others)


def test_jobs_and_words_do_not_import_upwards() -> None:
    for module in MODULES:
        if module.startswith(("embedkit.jobs", "embedkit.words")):
            up = {
                m
                for m in _imports(module)
                if m.startswith((*CONSUMERS[2:], "embedkit.search.index", "embedkit.cli"))
            }
            assert not up, (module, up)


def test_no_import_cycle() -> None:
    graph = {m: {i for i in _imports(m) if i in MODULES} for m in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [])


def test_every_exception_class_is_in_the_tree() -> None:
    for name in MODULES:
        if name.startswith("embedkit.backends") or name == "embedkit.cli":
            continue  # optional dependencies: checked by their own tests
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            ours = obj.__module__.startswith("embedkit")
            if ours and issubclass(obj, Exception) and not issubclass(obj, Warning):
                assert issubclass(obj, EmbedkitError), f"{name}.{obj.__name__}"
