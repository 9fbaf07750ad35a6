"""The import graph of fcnlib: no cycles, and only the entry points import the command line.

Every ``import`` / ``from ... import`` statement of every module under ``fcnlib/`` counts,
wherever it stands (module level, inside functions, under ``if TYPE_CHECKING``). Importing
``fcnlib.a.b`` from outside the package ``fcnlib.a`` also runs ``fcnlib/a/__init__.py``, so it
counts as importing ``fcnlib.a`` too; a package's own modules importing each other do not. The
root package ``fcnlib`` (which every module imports implicitly) is left out of the graph's edges.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import fcnlib

ROOT = Path(fcnlib.__file__).resolve().parent


def _module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("fcnlib", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def _known(name: str) -> str | None:
    """The longest fcnlib module that ``name`` (a module, or a module's attribute) lies in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The fcnlib modules one import statement of ``module`` names."""
    if isinstance(node, ast.Import):
        return {m for alias in node.names if (m := _known(alias.name))}
    if node.level:
        package = module if module in PACKAGES else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    if not (base == "fcnlib" or base.startswith("fcnlib.")):
        return set()
    found = {m for alias in node.names if (m := _known(f"{base}.{alias.name}"))}
    return found | ({m} if (m := _known(base)) else set())


def _with_parents(module: str, targets: set[str]) -> set[str]:
    """``targets`` plus the packages they run on import, except ``fcnlib`` and ``module``'s own packages."""
    out = set()
    for target in targets:
        name = target
        while name and name != "fcnlib":
            if not (module == name or module.startswith(name + ".")):
                out.add(name)
            name = name.rpartition(".")[0]
    return out - {module}


def import_graph() -> dict[str, set[str]]:
    """For every fcnlib module, the fcnlib modules it imports (directly, anywhere in its code)."""
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets |= _imported(module, node)
        graph[module] = _with_parents(module, targets)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None`` if the graph is acyclic (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_graph_sees_the_known_imports():
    graph = import_graph()
    assert "fcnlib.bench" in MODULES and "fcnlib.bench.recipe" in MODULES and "fcnlib.provenance" in MODULES
    assert "fcnlib.cli" in graph["fcnlib.__main__"]
    assert "fcnlib.bench" in graph["fcnlib.cli"]  # the lazy import in cmd_bench
    assert "fcnlib.provenance" in graph["fcnlib.cli"] and "fcnlib.provenance" in graph["fcnlib.bench.run"]
    assert "fcnlib.engine" in graph["fcnlib.bench.recipe"] and "fcnlib.bench.run" in graph["fcnlib.bench.recipe"]


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_the_entry_point_imports_the_cli():
    importers = sorted(m for m, targets in import_graph().items()
                       if "fcnlib.cli" in targets and not m.startswith("fcnlib.cli."))
    assert importers == ["fcnlib.__main__"]


def test_ground_modules_and_bench_boundaries():
    graph = import_graph()
    assert graph["fcnlib.provenance"] == set()
    core_importers = sorted(m for m, targets in graph.items()
                            if any(t == "fcnlib.bench" or t.startswith("fcnlib.bench.") for t in targets)
                            and m != "fcnlib.cli" and not m.startswith(("fcnlib.bench", "fcnlib.cli.")))
    assert core_importers == [], f"the core library imports fcnlib.bench: {core_importers}"


# ----------------------------------------------------------------------------------------------
# Seams: data-set names in one module, flags only in the command line


def _string_constants(tree: ast.AST) -> list[ast.Constant]:
    """The string literals of ``tree`` that are not docstrings (f-string parts included)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]


def test_data_set_names_live_in_the_registry_only():
    from fcnlib.data.registry import DATASETS

    names = set(DATASETS)
    assert {"voc", "camvid", "shapes", "folder"} <= names
    offenders = {}
    for module, path in MODULES.items():
        if module == "fcnlib.data.registry":
            continue
        found = {n.value for n in _string_constants(ast.parse(path.read_text(encoding="utf-8")))} & names
        if len(found) >= 3:
            offenders[module] = sorted(found)
    assert offenders == {}, f"data-set names outside fcnlib/data/registry.py: {offenders}"


def test_the_name_check_sees_a_list_of_names():
    tree = ast.parse('"""voc camvid shapes"""\nNAMES = ("voc", "camvid", f"{x}shapes")\n')
    assert [n.value for n in _string_constants(tree)] == ["voc", "camvid", "shapes"]


_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_COMMAND = re.compile(r"`fcnlib [^`]*`")  # a command to run, quoted: `fcnlib download voc --root X`


def _flags_raised(tree: ast.AST) -> list[str]:
    """The flags named by string literals inside ``raise`` statements (commands to run excepted)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            text = "".join(n.value for n in _string_constants(node.exc))
            found += _FLAG.findall(_COMMAND.sub("", text))
    return found


def test_only_the_command_line_names_flags_in_its_errors():
    offenders = {}
    for module, path in MODULES.items():
        if module.startswith(("fcnlib.cli", "fcnlib.bench")):
            continue
        flags = _flags_raised(ast.parse(path.read_text(encoding="utf-8")))
        if flags:
            offenders[module] = flags
    assert offenders == {}, f"library errors that name command-line flags: {offenders}"


def test_the_flag_check_sees_a_flag_and_skips_a_command():
    assert _flags_raised(ast.parse('raise E(f"lower --lr {x} or `fcnlib download voc --root d`")')) == ["--lr"]
    assert _flags_raised(ast.parse('raise E("lower `lr`")')) == []


def test_the_command_line_turns_parameters_into_flags():
    from fcnlib.cli.flags import flag, to_flags

    assert flag("train_size") == "--train-size" and flag("checkpoint") == "CHECKPOINT"
    assert to_flags("lower `train_size` or `scale`; `fcnlib download voc --root d`") == (
        "lower --train-size or --scale; `fcnlib download voc --root d`")


def _long_functions(tree: ast.AST, limit: int = 60) -> list[tuple[str, int]]:
    """``(name, lines)`` of every function longer than ``limit`` lines (decorators, docstring in)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if node.end_lineno - start + 1 > limit:
                found.append((node.name, node.end_lineno - start + 1))
    return found


def test_no_function_is_longer_than_60_lines():
    offenders = {m: f for m, path in MODULES.items()
                 if (f := _long_functions(ast.parse(path.read_text(encoding="utf-8"))))}
    assert offenders == {}, f"functions over 60 lines: {offenders}"


def test_the_length_check_counts_lines():
    body = "\n".join(f"    x{i} = {i}" for i in range(59))
    assert _long_functions(ast.parse(f"@dec\ndef f():\n{body}\n")) == [("f", 61)]
    assert _long_functions(ast.parse(f"def f():\n{body}\n")) == []
