"""Every third-party package the code imports by name is listed in a requirements*.in file.

A package that arrives only as another's dependency disappears from the lock the day that
package stops needing it, and the import breaks on a fresh install. The .in files are the
list of what we use; the locks (requirements*.txt) are compiled from them (`make lock`).
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions

from src.common.paths import ROOT

FOLDERS = ("src", "app", "tests", "benchmarks", "dashboard")
LOCAL = set(FOLDERS)


def imported_top_level_modules(folders: tuple[str, ...] = FOLDERS) -> dict[str, str]:
    """Top-level module -> a file that imports it (absolute imports only)."""
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def listed_requirements(pattern: str = "requirements*.in") -> set[str]:
    """The project names in every `pattern` file (options and includes skipped)."""
    names = set()
    for path in ROOT.glob(pattern):
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                names.add(normalized(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0]))
    return names


def unlisted(imports: dict[str, str], listed: set[str], distributions) -> list[str]:
    """The imported third-party modules whose distribution no .in file lists."""
    missing = []
    for module, where in sorted(imports.items()):
        if module in sys.stdlib_module_names or module in LOCAL or module == "__future__":
            continue
        # The module's distribution(s) when installed (yaml -> PyYAML); else its own name.
        candidates = {normalized(d) for d in distributions.get(module, [module])}
        if not candidates & listed:
            missing.append(f"{module} ({'/'.join(sorted(candidates))}, imported in {where})")
    return missing


def test_every_directly_imported_package_is_listed():
    found = unlisted(imported_top_level_modules(), listed_requirements(), packages_distributions())
    assert not found, f"imported but not in any requirements*.in: {found}"


def test_the_check_sees_a_package_that_only_arrives_with_another():
    """starlette comes with fastapi: importing it while listing fastapi alone is caught."""
    imports = {"starlette": "app/x.py", "yaml": "src/y.py", "json": "src/z.py"}
    listed = {"fastapi", "pyyaml"}
    found = unlisted(imports, listed, packages_distributions())
    assert found == ["starlette (starlette, imported in app/x.py)"]


def test_the_dashboards_image_lists_what_dashboard_imports():
    """The dashboard's image installs requirements-dashboard.txt alone, and holds dashboard/
    alone: it reads the API over HTTP, never src/ or app/."""
    imports = imported_top_level_modules(("dashboard",))
    assert not {"src", "app"} & set(imports), "dashboard/ imports the project's own code"
    listed = listed_requirements("requirements-dashboard.in")
    found = unlisted(imports, listed, packages_distributions())
    assert not found, f"imported in dashboard/ but not in requirements-dashboard.in: {found}"
