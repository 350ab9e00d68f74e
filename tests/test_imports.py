"""The package's shape: no import cycle between its modules, and no module that does several jobs."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mybb_sync"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports when it is imported (not inside functions,
    not under ``if TYPE_CHECKING``)."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            if node.module:
                found.add(".".join([*base, node.module]))
            else:  # "from . import x": the module x, or else the package itself (x is a name in it)
                found.update(_module_or_package(".".join(base), alias.name) for alias in node.names)
    return found


def _module_or_package(package: str, name: str) -> str:
    folder = PACKAGE.parent.joinpath(*package.split("."))
    return f"{package}.{name}" if (folder / f"{name}.py").exists() or (folder / name).is_dir() else package


def test_no_module_of_the_package_imports_itself_through_others() -> None:
    graph = {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    cycles = []

    def visit(module: str, path: list[str], done: set[str]) -> None:
        for dep in sorted(graph[module]):
            if dep in path:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in done:
                visit(dep, [*path, dep], done)
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module], done)
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


def test_every_module_of_the_package_stays_under_500_lines() -> None:
    """A module over 500 lines does several jobs (issue 23): split it by role instead."""
    long = {_module(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}
