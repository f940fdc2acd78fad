"""python/flipbook/_native.pyi against the compiled flipbook._native: the same classes, the same
methods and properties (both ways), and the same parameter names."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from flipbook import _native

STUB = Path(__file__).resolve().parent.parent / "python" / "flipbook" / "_native.pyi"


def decorators(function: ast.FunctionDef) -> set[str]:
    return {d.id for d in function.decorator_list if isinstance(d, ast.Name)}


def stub_classes() -> dict[str, dict[str, ast.FunctionDef]]:
    tree = ast.parse(STUB.read_text(), filename=str(STUB))
    return {
        node.name: {item.name: item for item in node.body if isinstance(item, ast.FunctionDef)}
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }


def public(names: object) -> set[str]:
    assert isinstance(names, (set, dict, list))
    return {name for name in names if not name.startswith("_")}


def runtime_classes() -> dict[str, type]:
    return {name: value for name, value in vars(_native).items() if isinstance(value, type)}


def test_the_same_classes() -> None:
    assert set(stub_classes()) == set(runtime_classes())
    assert public(dir(_native)) == set(runtime_classes()), "the module has members that are not classes"


@pytest.mark.parametrize("name", sorted(stub_classes()))
def test_the_same_members(name: str) -> None:
    stub = stub_classes()[name]
    cls = runtime_classes()[name]
    runtime = {member: value for member, value in vars(cls).items()}
    assert public(stub) == public(runtime), f"{name}: stub {sorted(public(stub))}, module {sorted(public(runtime))}"
    for dunder in set(stub) - public(stub):  # dunders the stub declares must exist
        assert hasattr(cls, dunder), f"{name}.{dunder}"


@pytest.mark.parametrize("name", sorted(stub_classes()))
def test_the_same_kinds_and_parameters(name: str) -> None:
    cls = runtime_classes()[name]
    for member, function in stub_classes()[name].items():
        if member.startswith("_") or member not in vars(cls):
            continue  # a missing member is test_the_same_members' failure
        value = vars(cls)[member]
        kinds = decorators(function)
        # A read-only attribute of the module is a getter or, for a field kept as a Python
        # object, a member of a frozen class; the stub spells both as a property.
        attribute = inspect.isgetsetdescriptor(value) or inspect.ismemberdescriptor(value)
        if "property" in kinds:
            assert attribute, f"{name}.{member} is a property in the stub only"
            continue
        assert not attribute, f"{name}.{member} is a property in the module only"
        assert ("staticmethod" in kinds) == isinstance(value, staticmethod), f"{name}.{member}: static or not"
        stub_parameters = [a.arg for a in function.args.posonlyargs + function.args.args + function.args.kwonlyargs]
        runtime_parameters = list(inspect.signature(getattr(cls, member)).parameters)
        assert stub_parameters == runtime_parameters, f"{name}.{member}"
