"""flex/ reads like a published library: every exported name, and every public method and
property of an exported class, says what it does in a docstring."""

from __future__ import annotations

import inspect

import flex


def _public_members(cls: type) -> list[tuple[str, object]]:
    found = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not (inspect.isfunction(member)
                                        or isinstance(member, property | classmethod
                                                      | staticmethod)):
            continue
        found.append((name, member))
    return found


def _documented(obj: object) -> bool:
    """Its own docstring: not one inherited, nor the signature @dataclass writes for it."""
    doc = (vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__) or ""
    return bool(doc.strip()) and not doc.startswith(f"{getattr(obj, '__name__', '')}(")


def test_every_export_and_its_public_methods_have_a_docstring():
    missing = []
    for name in flex.__all__:
        exported = getattr(flex, name)
        if not _documented(exported):
            missing.append(name)
        if inspect.isclass(exported) and exported.__module__.startswith("flex"):
            for member_name, member in _public_members(exported):
                target = member.fget if isinstance(member, property) else member
                if not _documented(target):
                    missing.append(f"{name}.{member_name}")
    assert missing == []


def test_the_exports_exist_and_the_package_is_typed():
    from importlib.resources import files

    assert all(hasattr(flex, name) for name in flex.__all__)
    assert files("flex").joinpath("py.typed").is_file()
    assert [o.value for o in flex.Outcome] == [
        "APPROVED", "DECLINED", "CHALLENGE", "CAPTUREREQUIRED", "SUBMITTED"]
    assert flex.Outcome.APPROVED == "APPROVED"  # str-valued: compares and stores as text
