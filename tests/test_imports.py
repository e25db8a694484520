"""The package's import graph, read from the source with `ast`: no module of medcnn imports itself in a circle.

Every `import` counts, those inside functions too: a lazy import still closes a circle, it only hides it until the
function runs (as `medcnn.data.imageio.read_image` once imported `medcnn.preprocessing`, which imports
`medcnn.data.imageio`).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "medcnn"


def module_files(package=PACKAGE):
    """{dotted module name: path} of every module of the package (a package by its `__init__.py`)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name, path, modules):
    """The package modules that module `name` (at `path`) imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from medcnn.data import imageio` imports the module medcnn.data.imageio; `from x import name`, x
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import medcnn.data.imageio.x` -> medcnn.data.imageio
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(package=PACKAGE):
    modules = module_files(package)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One import circle as a list of modules [a, b, ..., a], or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize(
    "graph, cycle",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
    ],
)
def test_find_cycle(graph, cycle):
    assert find_cycle(graph) == cycle


def test_the_graph_sees_lazy_relative_and_from_package_imports(tmp_path):
    package = tmp_path / "medcnn"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "data" / "imageio.py").write_text("def read():\n    from medcnn.preprocessing import resize\n")
    (package / "data" / "loaders.py").write_text("from . import imageio\nfrom .imageio import read\n")
    (package / "preprocessing.py").write_text("from medcnn.data import imageio\nimport keras\n")
    graph = import_graph(package)
    assert graph["medcnn.data.loaders"] == {"medcnn.data.imageio"}
    assert graph["medcnn.preprocessing"] == {"medcnn.data.imageio"}
    assert find_cycle(graph) == ["medcnn.data.imageio", "medcnn.preprocessing", "medcnn.data.imageio"]


def test_no_import_cycle_among_medcnn_modules():
    graph = import_graph()
    assert {"medcnn.data.imageio", "medcnn.data.resize", "medcnn.preprocessing"} <= set(graph)
    # the resize both need lives below both of them
    assert "medcnn.data.resize" in graph["medcnn.data.imageio"] & graph["medcnn.preprocessing"]
    cycle = find_cycle(graph)
    assert cycle is None, f"Import circle: {' -> '.join(cycle)}. Move the shared code to the lower module."
