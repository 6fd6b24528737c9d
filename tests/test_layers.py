"""The layering of satsr, read from the imports (every ``import``, also inside functions and under
``TYPE_CHECKING``): no module imports one of a higher layer, and no modules import each other in a circle.

    io (+ defaults) -> types, nn, data -> models, diffusion -> evaluation, training -> pipelines -> cli
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import satsr

SRC = Path(satsr.__file__).parent
#: Lowest first; a module may import its own layer and the ones below it.
LAYERS = (
    ("satsr.defaults", "satsr.io"),
    ("satsr.types", "satsr.nn", "satsr.data"),
    ("satsr.models", "satsr.diffusion"),
    ("satsr.evaluation", "satsr.training"),
    ("satsr.pipelines",),
    ("satsr.cli", "satsr"),  # the command, and the package's face (``satsr.load``, ``satsr.upscale_file``)
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of a module: that of the longest prefix ``LAYERS`` names."""
    best = max((p for names in LAYERS for p in names if module == p or module.startswith(p + ".")), key=len)
    return next(k for k, names in enumerate(LAYERS) if best in names)


def imports() -> dict[str, set[str]]:
    """Every satsr module and the satsr modules it imports (a ``from package import module`` counts as the
    module)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.split(".")[0] == "satsr"}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "satsr":
                named = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                targets |= named or {node.module}
        graph[name] = {t for t in targets if t != name and t in modules}
    return graph


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
        for source, targets in imports().items()
        for target in sorted(targets)
        if layer(target) > layer(source) and source != "satsr"
    ]
    assert upward == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    graph, circles = imports(), []
    graph = {m: {t for t in ts if t != "satsr"} for m, ts in graph.items() if m != "satsr"}  # the face

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph[module]):
            if target in path:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert circles == []


def test_importing_satsr_and_its_command_stays_light() -> None:
    """``import satsr`` and ``satsr --help`` load neither torch nor GDAL: the heavy parts are imported
    where they are used."""
    code = "import sys, satsr, satsr.cli; print(sorted({'torch', 'rasterio', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
