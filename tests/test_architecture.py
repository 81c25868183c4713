"""The import rules of the tree (docs/ARCHITECTURE.md), read from the code's own imports.

Every ``import`` and ``from … import`` counts, wherever it stands: at module level, inside a
function, or under ``if TYPE_CHECKING:``. A new import that breaks a rule fails here with the
importing file and line.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "resolvers")

# The service side, in the order data flows through it: a stage imports only from itself and
# the stages before it.
STAGES = (
    "model",
    "history",
    "sources",
    "dls",
    "events",
    "graphql",
    "exports",
    "http",
    "cli",
    "__main__",
)
# Shared by every kind; everything else under resolvers/ is one package per kind.
KIND_SHARED = ("replica_kit", "transport")


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.importer} imports {self.imported}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(importer: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _known(name: str) -> str | None:
    """The project module ``name`` is, or is inside (None: not the project's)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports_of(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            # ``from pkg import mod`` imports the module pkg.mod when there is one.
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        for name in names:
            target = _known(name)
            if target is not None and target != module:
                yield Import(module, target, path, node.lineno)


IMPORTS = [i for module, path in MODULES.items() for i in _imports_of(module, path)]


def _stage(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _kind(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_service_side_never_imports_a_kind() -> None:
    wrong = [
        str(i)
        for i in IMPORTS
        if i.importer.startswith("gateway") and i.imported.startswith("resolvers")
    ]
    assert not wrong, "\n".join(wrong)


def test_kinds_never_import_each_other() -> None:
    wrong = []
    for i in IMPORTS:
        if not (i.importer.startswith("resolvers.") and i.imported.startswith("resolvers.")):
            continue
        a, b = _kind(i.importer), _kind(i.imported)
        if a != b and b not in KIND_SHARED:
            wrong.append(str(i))
        if a in KIND_SHARED and b not in KIND_SHARED:
            wrong.append(f"{i} (shared plumbing must not know a kind)")
    assert not wrong, "\n".join(wrong)


def test_every_kind_package_declares_its_kind_and_is_registered() -> None:
    kinds = sorted(
        p.name
        for p in (ROOT / "resolvers").iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in KIND_SHARED
    )
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    for name in kinds:
        assert (ROOT / "resolvers" / name / "kind.py").is_file(), f"resolvers/{name} has no kind.py"
        assert f'"resolvers.{name}.kind:KIND"' in text, f"resolvers/{name} is not in pyproject"


def test_stages_import_only_downwards() -> None:
    order = {stage: n for n, stage in enumerate(STAGES)}
    wrong = []
    for i in IMPORTS:
        if not (i.importer.startswith("gateway.") and i.imported.startswith("gateway")):
            continue
        here, there = _stage(i.importer), _stage(i.imported)
        assert here in order, f"gateway/{here} is not a stage of STAGES (docs/ARCHITECTURE.md)"
        if there and order[there] > order[here]:
            wrong.append(f"{i} ({here} is before {there})")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_itself_back() -> None:
    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        edges.setdefault(i.importer, set()).add(i.imported)
    # A package's __init__ is imported along with any of its modules; an import of the
    # package itself is an edge to its __init__ only.
    assert _cycle(edges) is None, " -> ".join(_cycle(edges) or ())


@pytest.mark.parametrize("depth", [1, 2])
def test_no_package_imports_itself_back(depth: int) -> None:
    def package(module: str) -> str:
        return ".".join(module.split(".")[:depth])

    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        a, b = package(i.importer), package(i.imported)
        if a != b:
            edges.setdefault(a, set()).add(b)
    assert _cycle(edges) is None, " -> ".join(_cycle(edges) or ())


def test_no_module_is_imported_by_name_at_run_time() -> None:
    """Imports by a string hide an arrow from these rules; the kinds come from entry points."""
    wrong = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "import_module":
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module}")
            if isinstance(node, ast.Name) and node.id == "__import__":
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module}")
    assert not wrong, "\n".join(wrong)


def _register_names() -> set[str]:
    names = set()
    for source in (ROOT / "registers").glob("*/*/Source.json"):
        names.add(source.parent.parent.name)
        json.loads(source.read_text("utf-8"))  # a register folder holds a real Source.json
    return names


def test_no_register_is_named_in_generic_code() -> None:
    """Generic code works for any register folder; only a kind's recordings name theirs."""
    registers = _register_names()
    assert {"FT", "VALG", "DE"} <= registers
    generic = [
        (m, p) for m, p in MODULES.items() if m.startswith("gateway") or _kind(m) in KIND_SHARED
    ]
    wrong = []
    for module, path in generic:
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and node.value in registers:
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module} names {node.value}")
    assert not wrong, "\n".join(wrong)


def test_the_rules_see_a_cycle() -> None:
    """The cycle finder itself: a back edge is found, a tree is not a cycle."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}}) is None
    names = {i.imported for i in IMPORTS}
    # The reading sees imports under TYPE_CHECKING and inside functions too.
    assert "gateway.sources.port" in names
    assert any(i.importer == "gateway.cli" and i.imported == "gateway.http.app" for i in IMPORTS)


def test_the_architecture_document_matches_the_tree() -> None:
    """docs/ARCHITECTURE.md names every module (a replica's inside is its kind's business),
    and every file it names exists."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text("utf-8")
    tree = text.split("## The tree", 1)[1].split("```")[1]
    named = set(tree.split())
    missing = []
    for path in MODULES.values():
        relative = path.relative_to(ROOT)
        if path.name == "__init__.py" or "replica" in relative.parts[2:-1]:
            continue
        if "replica" in relative.parts and relative.parts[1] != "replica_kit":
            continue
        if path.name not in named and f"{path.name}," not in named:
            missing.append(str(relative))
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"
    for word in named:
        name = word.rstrip(",:")
        if not name.endswith(".py"):
            continue
        # A path is looked up as written; a bare file name among the modules.
        exists = (
            (ROOT / name).is_file()
            if "/" in name
            else any(p.name == name for p in MODULES.values())
        )
        if not exists:
            missing.append(name)
    assert not missing, f"docs/ARCHITECTURE.md names files that do not exist: {missing}"
