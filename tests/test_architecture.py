"""The shape of the code, as rules a change cannot quietly break. import-linter checks the imports (see
pyproject.toml); these check what it cannot see: modules named in strings, handler and module sizes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UPPER_LAYERS = {"geofences": ("geotarget", "api"), "geotarget": ("api",)}
MAX_MODULE_LINES = 400
MAX_HANDLER_LINES = 15


def sources(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


def names_an_upper_layer(text: str, uppers: tuple[str, ...]) -> bool:
    """``"api.main:create_app"``, ``"api.routes"``, ``"geotarget"``: a module path of a layer above."""
    return any(re.fullmatch(rf"{upper}([.:][\w.:]*)?", text) for upper in uppers)


@pytest.mark.parametrize(("text", "named"), [("api.main:create_app_from_env", True), ("api", True), ("apis", False)])
def test_the_string_rule_recognises_module_paths(text, named):
    assert names_an_upper_layer(text, ("api",)) is named


@pytest.mark.parametrize("package", sorted(UPPER_LAYERS))
def test_no_lower_layer_names_an_upper_one_even_in_a_string(package):
    found = []
    for path in sources(package):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if names_an_upper_layer(node.value, UPPER_LAYERS[package]):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module",
                "__import__",
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} dynamic import")
    assert found == []


@pytest.mark.parametrize("package", ["geofences", "geotarget", "api"])
def test_modules_stay_small(package):
    long = {
        str(p.relative_to(ROOT)): n
        for p in sources(package)
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_route_handlers_parse_call_and_map_in_at_most_15_lines():
    long = {}
    for path in sources("api/routes"):
        for node in ast.parse(path.read_text()).body:
            routed = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "attr", "") in ("get", "post", "patch", "delete", "put")
                for d in node.decorator_list
            )
            if routed:
                body = node.body[1:] if ast.get_docstring(node) else node.body
                lines = (body[-1].end_lineno or 0) - body[0].lineno + 1
                if lines > MAX_HANDLER_LINES:
                    long[f"{path.name}:{node.name}"] = lines
    assert long == {}


def test_every_package_says_what_it_owns():
    undocumented = [
        str(p.relative_to(ROOT))
        for package in ("geofences", "geotarget", "api")
        for p in [ROOT / package / "__init__.py", *(ROOT / package).glob("*/__init__.py")]
        if p.exists() and "migrations" not in p.parts and not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert undocumented == []
