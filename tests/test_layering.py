"""Who imports whom: engines <- training, engines <- realtime, and nothing imports benchmarks.

The rules hold with no exceptions. Every module of the four packages is parsed (nothing is
imported) and every import is checked, also those inside functions, relative ones, and
``importlib.import_module("...")`` / ``__import__("...")`` with a literal name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("engines", "training", "realtime", "benchmarks")
FORBIDDEN = {  # importer -> packages it must not import
    "engines": ("training", "realtime", "benchmarks"),
    "training": ("realtime", "benchmarks"),
    "realtime": ("training", "benchmarks"),
    "benchmarks": (),
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = REPO) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, a module under ``root``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield node.lineno, module
            if not node.module:  # from . import x: x may be a module
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name in ("__import__", "import_module"):
                yield node.lineno, node.args[0].value


def _sources(root: Path = REPO) -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))]


def layering_problems(root: Path = REPO) -> list[str]:
    """``file:line: importer imports module`` for every import against ``FORBIDDEN`` under ``root``."""
    problems = []
    for path in _sources(root):
        rel = path.relative_to(root).as_posix()
        importer = rel.split("/")[0]
        problems += [f"{rel}:{line}: {importer} imports {module}" for line, module in imports(path, root)
                     if module.split(".")[0] in FORBIDDEN[importer]]
    return problems


def test_no_package_imports_a_layer_above_it_or_benchmarks():
    assert len(_sources()) > 50, "the packages were not found beside tests/"
    problems = layering_problems()
    assert not problems, "imports against the layering (see README, layout):\n" + "\n".join(problems)


def test_training_config_is_a_leaf():
    """training/config.py is read by every training module, so it imports none of them."""
    path = REPO / "training" / "config.py"
    found = [f"training/config.py:{line}: imports {m}" for line, m in imports(path) if m.split(".")[0] == "training"]
    assert not found, "\n".join(found)


def test_the_scanner_sees_imports_inside_functions_relative_ones_and_dynamic_ones(tmp_path):
    pkg = tmp_path / "engines"
    pkg.mkdir()
    src = pkg / "x.py"
    src.write_text("import os\n\ndef f():\n    from training.data import a\n    from . import models\n"
                   "    import importlib\n    importlib.import_module('realtime.cli')\n")
    assert sorted(imports(src, tmp_path)) == [(1, "os"), (4, "training.data"), (5, "engines"), (5, "engines.models"), (6, "importlib"),
                     (7, "realtime.cli")]
    assert layering_problems(tmp_path) == ["engines/x.py:4: engines imports training.data",
                                           "engines/x.py:7: engines imports realtime.cli"]
