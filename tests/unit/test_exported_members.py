"""Every error loadkit raises on purpose is exported where people import from.

As httpx's ``tests/test_exported_members.py``: a class deriving from
`loadkit.errors.LoadkitError` that some module raises (``raise X(...)``,
found with `ast`) must be in the ``__all__`` of its public home: the package
whose ``__init__`` fronts the private module that defines it
(``loadkit/sink/_server.py`` -> ``loadkit.sink``), or the public module
itself (``loadkit/urls.py``), where a module without ``__all__`` exports
its public names, as Python's star import does. And every name in an
``__all__`` must exist.

The source is read with `ast`, and modules are imported in a subprocess
only: importing them all here would bring in Locust, which monkey-patches
the standard library under the other tests.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import loadkit

PACKAGE_DIR = Path(loadkit.__file__).resolve().parent
ROOT = "LoadkitError"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def is_package(module: str) -> bool:
    return (PACKAGE_DIR.parent.joinpath(*module.split(".")) / "__init__.py").exists()


def public_home(module: str) -> str:
    """The public module that fronts `module`: itself, or the package above its first private part."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if part.startswith("_"):
            return ".".join(parts[:index])
    return module


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def loadkit_errors(trees: dict[str, ast.Module]) -> dict[str, str]:
    """Class name -> defining module, for every class deriving from LoadkitError (by name)."""
    bases: dict[str, tuple[str, set[str]]] = {}
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases[node.name] = (module, {_name(base) for base in node.bases} - {None})
    errors = {ROOT: bases[ROOT][0]}
    grew = True
    while grew:
        grew = False
        for name, (module, parents) in bases.items():
            if name not in errors and parents & errors.keys():
                errors[name] = module
                grew = True
    return errors


def raised_names(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Name -> modules where ``raise Name(...)`` or ``raise Name`` appears."""
    raised: dict[str, set[str]] = {}
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = _name(exc)
                if name:
                    raised.setdefault(name, set()).add(module)
    return raised


def exports(modules: list[str]) -> dict[str, dict]:
    """Module -> {"all": its __all__ or None, "public": its public names, "missing": __all__ names absent}."""
    script = """
import importlib, json, sys
found = {}
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None)
    missing = []
    for exported in names or ():
        try:
            getattr(module, exported)
        except AttributeError:
            missing.append(exported)
    public = [n for n in vars(module) if not n.startswith("_")]
    found[name] = {"all": None if names is None else list(names), "public": public, "missing": missing}
print(json.dumps(found))
"""
    result = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=120,
                            cwd=PACKAGE_DIR.parent)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def unexported_errors(trees: dict[str, ast.Module]) -> list[str]:
    """``Name (defined in M, raised in R) not in H.__all__`` for each raised error its home does not export."""
    errors = loadkit_errors(trees)
    raised = raised_names(trees)
    wanted = {name: module for name, module in errors.items() if name in raised}
    homes = exports(sorted({public_home(module) for module in wanted.values()}))
    problems = []
    for name, module in sorted(wanted.items()):
        home = public_home(module)
        found = homes[home]
        names = found["all"]
        if names is None and is_package(home):
            problems.append(f"{home} has no __all__ (it should export {name})")
        elif name not in (names if names is not None else found["public"]):
            where = ", ".join(sorted(raised[name]))
            problems.append(f"{name} (defined in {module}, raised in {where}) is not in {home}.__all__")
    return problems


def test_every_raised_loadkit_error_is_exported():
    trees = sources()
    assert len(loadkit_errors(trees)) > 10  # the walk found the tree, not just its root
    assert unexported_errors(trees) == []


def test_a_missing_export_is_found():
    """The check itself can fail: an error raised but left out of __all__ is named."""
    trees = sources()
    tree = trees["loadkit.sink._faults"]
    tree.body.append(ast.parse("class UnexportedFaultError(FaultError):\n    pass\n").body[0])
    tree.body.append(ast.parse("def fail():\n    raise UnexportedFaultError('x')\n").body[0])
    assert unexported_errors(trees) == [
        "UnexportedFaultError (defined in loadkit.sink._faults, raised in loadkit.sink._faults)"
        " is not in loadkit.sink.__all__"
    ]


def test_every_exported_name_exists():
    trees = sources()
    packages = sorted(module for module in trees if is_package(module))
    with_all = sorted(
        module for module, tree in trees.items()
        if any(isinstance(node, ast.Assign) and any(_name(t) == "__all__" for t in node.targets)
               for node in tree.body)
    )
    found = exports(sorted(set(packages) | set(with_all)))
    assert {module: info["missing"] for module, info in found.items() if info["missing"]} == {}
    for package in packages:
        if package != "loadkit":
            assert found[package]["all"] is not None, f"{package} has no __all__"
