"""The package's architecture as a rule: each subpackage imports only from the levels below it."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "effnb"
# bottom to top; a module may import its own level and the levels below
LEVELS = [("utils", "seed_study"), ("nn",), ("data",), ("train",), ("study",), ("report",), ("cli",)]
LEVEL = {name: i for i, names in enumerate(LEVELS) for name in names}
MAX_MODULE_LINES = 400


def _part(module: str) -> str | None:
    """``effnb.train.engine`` -> ``train``; None outside effnb or for the package root."""
    parts = module.split(".")
    return parts[1] if parts[0] == "effnb" and len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import (the package uses absolute imports only)"
            found += [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "effnb" else [])
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


def test_every_module_sits_in_a_known_level():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.name != "__init__.py" or len(rel.parts) > 1:
            assert rel.parts[0].removesuffix(".py") in LEVEL or rel.name == "__init__.py", rel


def test_no_module_imports_from_a_higher_level():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        own = rel.parts[0].removesuffix(".py")
        if own not in LEVEL:
            continue
        for module in _imports(path):
            part = _part(module)
            if part in LEVEL and LEVEL[part] > LEVEL[own]:
                upward.append(f"effnb/{rel} imports {module}")
    assert not upward, "\n".join(upward)


def test_modules_stay_small():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
