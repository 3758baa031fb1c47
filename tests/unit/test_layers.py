"""Imports point one way: the pure modules never reach I/O libraries or the engine, and the
service never reaches the test support (``walkthroughs.testing``, where I/O is allowed)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "walkthroughs"
IO_AND_ENGINE = {"bytewax", "confluent_kafka", "pymongo", "orjson", "socket", "os", "requests"}
TEST_SUPPORT = "walkthroughs.testing"
TOOLS = "walkthroughs.tools"


def _each(package: str) -> list[str]:
    return [f"{package}/{path.name}" for path in sorted((PACKAGE / package).glob("*.py"))]


FORBIDDEN = {
    "errors.py": IO_AND_ENGINE | {"google"},
    # The wire formats, the attribution logic and the helpers they share: pure, no engine.
    # orjson parses the erasure requests' JSON: a format, not I/O.
    **{module: IO_AND_ENGINE - {"orjson"} | {TEST_SUPPORT, TOOLS} for module in _each("wire")},
    **{module: IO_AND_ENGINE | {TEST_SUPPORT, TOOLS} for module in _each("utils")},
    **{
        module: IO_AND_ENGINE | {TEST_SUPPORT, TOOLS, "walkthroughs.dataflow"}
        for module in _each("attribution")
    },
    "wire/schema.py": IO_AND_ENGINE | {"google", "walkthroughs"},
    "wire/framing.py": IO_AND_ENGINE | {"google", TEST_SUPPORT, "walkthroughs.wire.codec"},
    "utils/routes.py": IO_AND_ENGINE | {TEST_SUPPORT, "walkthroughs"},
    "dataflow/parcels.py": IO_AND_ENGINE | {TEST_SUPPORT, TOOLS, "walkthroughs.dataflow.flow"},
    "runtime/redaction.py": IO_AND_ENGINE | {TEST_SUPPORT, TOOLS},
    "sinks/partitions.py": IO_AND_ENGINE | {TEST_SUPPORT, "walkthroughs"},
}
# Every module of the service: all of the package but the test support and the generated code.
SERVICE = sorted(
    str(path.relative_to(PACKAGE))
    for path in PACKAGE.rglob("*.py")
    if path.relative_to(PACKAGE).parts[0] not in {"testing", "_pb"}
)


def imported_modules(path: Path) -> set[str]:
    """The absolute module names a file imports (``from a.b import c`` names ``a.b``)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def reaches(modules: set[str], package: str) -> bool:
    """Whether any of ``modules`` is ``package`` or inside it."""
    return any(m == package or m.startswith(f"{package}.") for m in modules)


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_pure_module_imports_no_io(module: str) -> None:
    imported = imported_modules(PACKAGE / module)
    bad = {package for package in FORBIDDEN[module] if reaches(imported, package)}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_service_modules_are_all_found() -> None:
    assert set(FORBIDDEN) <= set(SERVICE)
    assert {"dataflow/app.py", "dataflow/flow.py", "sinks/mongo.py"} <= set(SERVICE)
    assert not [m for m in SERVICE if m.startswith(("testing/", "_pb/"))]


@pytest.mark.parametrize(
    "module", [m for m in SERVICE if not m.startswith("tools/") and m != "__main__.py"]
)
def test_the_dataflow_never_imports_the_tools(module: str) -> None:
    """The CLI, topic administration and sample traffic ship beside the dataflow, not in it."""
    assert not reaches(imported_modules(PACKAGE / module), TOOLS), f"{module} imports {TOOLS}"


def test_every_module_is_in_its_package_code_map() -> None:
    """Each package's docstring lists its modules, and the top one lists the packages."""
    missing = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        folder = init.parent
        if "_pb" in folder.relative_to(PACKAGE.parent).parts:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        names = [
            p.stem for p in folder.glob("*.py") if p.name not in {"__init__.py", "__main__.py"}
        ]
        names += [p.name for p in folder.iterdir() if (p / "__init__.py").exists()]
        missing += [f"{folder.name}.{n}" for n in sorted(names) if f"``{n}``" not in doc]
    assert missing == [], f"not in their package's docstring: {missing}"


@pytest.mark.parametrize("module", SERVICE)
def test_service_never_imports_test_support(module: str) -> None:
    assert not reaches(imported_modules(PACKAGE / module), TEST_SUPPORT), (
        f"{module} imports {TEST_SUPPORT}: test support must not ship into the dataflow's path"
    )


def test_the_dataflow_loads_no_mongodb_driver_until_mongodb_is_on() -> None:
    """``app`` imports the MongoDB sink and its check only when ``WALKTHROUGHS_MONGO_ENABLED``.

    The driver costs ~60 ms of CPU at every process start (bench/README.md, session 14).
    """
    probe = (
        "import sys, walkthroughs.dataflow.app; "
        "print(sorted(m for m in sys.modules if 'mongo' in m))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE.parent,
    ).stdout
    assert shown.strip() == "[]"
