"""The dependency rule of docs/ARCHITECTURE.md, checked on the source: every import of every module (at the top
or inside a function) goes to the same package or a lower one, and no modules import each other in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src"

# Each package and the packages it may import; a package may always import itself and the shared modules
# (cnnlab.cores, cnnlab.errors, cnnlab.files, cnnlab.names), which import no other cnnlab module.
SHARED = {"cnnlab.cores", "cnnlab.errors", "cnnlab.files", "cnnlab.names"}
ALLOWED = {
    "data": set(),
    "nn": set(),
    "engine": {"nn"},
    "lab": {"data", "nn"},
    "training": {"data", "nn", "engine", "lab"},
    "serve": {"data", "nn", "engine", "lab", "training"},
    "keras": {"data", "nn", "engine", "lab", "training", "serve"},
    "cli": {"data", "nn", "engine", "lab", "training", "serve", "keras"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The cnnlab modules ``path`` imports: ``from cnnlab.a import b`` counts as cnnlab.a.b when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("cnnlab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnnlab"):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in MODULES else node.module)
    return found - {"cnnlab"}  # the package's lazy public names (cnnlab/__init__.py) are strings, not imports


MODULES = {_module_name(path): path for path in SOURCE.rglob("*.py")}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or module in {f"cnnlab.{p}" for p in ALLOWED} else None


def test_every_module_has_a_package_in_the_rule():
    loose = sorted(
        name for name in MODULES if _package(name) is None and name not in SHARED | {"cnnlab", "cnnlab.__main__"}
    )
    assert not loose, f"modules outside the packages of the dependency rule: {loose}"
    assert set(ALLOWED) >= {_package(name) for name in MODULES} - {None}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_never_up(module):
    package = _package(module)
    for imported in sorted(GRAPH[module]):
        target = _package(imported)
        if imported in SHARED or target is None or target == package:
            continue
        if package is None:  # the shared modules and cnnlab/__main__.py
            assert module == "cnnlab.__main__" and target == "cli", f"{module} imports {imported}"
            continue
        assert target in ALLOWED[package], f"{module} ({package}) imports {imported} ({target}): an upward import"
    if module in SHARED:
        assert not {i for i in GRAPH[module] if i not in SHARED}, f"{module} must import no cnnlab package"


def test_no_modules_import_each_other_in_a_circle():
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(GRAPH.get(module, ())):
            if imported not in MODULES:
                continue
            if state.get(imported) == "open":
                cycle = path[path.index(imported) :] + [imported] if imported in path else [module, imported]
                pytest.fail("an import circle: " + " -> ".join(cycle))
            if imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])


def test_the_command_line_and_the_names_import_no_torch():
    """``cnnlab --help`` stays fast: the CLI's modules and the table of names import torch only inside commands."""
    code = (
        "import sys, cnnlab.cli, cnnlab.names, cnnlab.training.config; cnnlab.cli._register_commands(); "
        "print(sorted(m for m in ('torch', 'numpy', 'matplotlib', 'PIL') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
