"""Code identity follows the user's project code into other modules, and stops at installed
packages and the standard library (their versions are recorded or opted into instead)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import podline
from conftest import ModuleTree
from podline.errors import FunctionDefinitionError, FunctionIdentityError
from podline.functions import PacketFunction, describe_code
from podline.functions.project import file_origin, module_origin

SCALE = """
from userlib.util import base

def ext_scale(x):
    return base(x) * 10

def unrelated():
    return 1
"""

UTIL = """
OFFSET = 1

def base(x):
    return x + OFFSET
"""


USES_EXT_SCALE = "from userlib.scale import ext_scale\n\ndef f(x):\n    return ext_scale(x)\n"


def identity(tree: ModuleTree, module: str = "pipe", name: str = "f") -> str:
    """The identity of ``module.name`` as a fresh process would compute it."""
    return str(describe_code(getattr(tree.load(module), name)).hash)


def changes(tree: ModuleTree, path: str, old: str, new: str, module: str = "pipe") -> bool:
    before = identity(tree, module)
    tree.edit(path, old, new)
    return identity(tree, module) != before


@pytest.fixture
def project(user_project: ModuleTree) -> ModuleTree:
    user_project.write("userlib/scale.py", SCALE)
    user_project.write("userlib/util.py", UTIL)
    return user_project


@pytest.mark.parametrize(
    "pipe",
    [
        "from userlib.scale import ext_scale\n\ndef f(x: int) -> int:\n    return ext_scale(x)\n",
        "import userlib.scale as s\n\ndef f(x: int) -> int:\n    return s.ext_scale(x)\n",
        "import userlib.scale\n\ndef f(x: int) -> int:\n    return userlib.scale.ext_scale(x)\n",
        "def f(x: int) -> int:\n    from userlib.scale import ext_scale\n    return ext_scale(x)\n",
        "def f(x: int) -> int:\n    import userlib.scale\n    return userlib.scale.ext_scale(x)\n",
    ],
    ids=["from-import", "module-alias", "dotted", "local-from-import", "local-import"],
)
def test_editing_an_imported_helper_changes_identity(project: ModuleTree, pipe: str) -> None:
    project.write("pipe.py", pipe)
    assert changes(project, "userlib/scale.py", "* 10", "* 100")


SHADOWED = """
def vigour(x):
    return x * 2

def f(vigour: float) -> float:
    scaled = [vigour for vigour in range(3)]
    def inner(y):
        return y + vigour
    return inner(vigour) + len(scaled)

def g(x: float) -> float:
    return vigour(x)
"""


def test_a_parameter_or_local_named_like_a_module_function_is_not_a_reference(
    user_project: ModuleTree,
) -> None:
    # ``f`` reads its parameter ``vigour`` (also a comprehension variable and a closure's
    # free variable), never the module's function; ``g`` calls that function.
    user_project.write("pipe.py", SHADOWED)
    structure = describe_code(user_project.load("pipe").f).structure
    assert "vigour" not in str(structure.get("refs", {}))
    assert not changes(user_project, "pipe.py", "return x * 2", "return x * 3")
    before = identity(user_project, name="g")
    user_project.edit("pipe.py", "return x * 3", "return x * 4")
    assert identity(user_project, name="g") != before


def test_helpers_of_imported_helpers_count_transitively(project: ModuleTree) -> None:
    project.write("pipe.py", USES_EXT_SCALE)
    assert changes(project, "userlib/util.py", "return x + OFFSET", "return x - OFFSET")
    assert changes(project, "userlib/util.py", "OFFSET = 1", "OFFSET = 2")


def test_other_code_of_an_imported_module_does_not_count(project: ModuleTree) -> None:
    project.write("pipe.py", USES_EXT_SCALE)
    assert not changes(project, "userlib/scale.py", "return 1", "return 2")
    assert not changes(project, "userlib/scale.py", "* 10", "*   10  # reformatted")


def test_moving_a_helper_to_another_module_changes_nothing(project: ModuleTree) -> None:
    project.write("pipe.py", "from userlib.util import base\n\ndef f(x):\n    return base(x)\n")
    before = identity(project)
    project.write("userlib/moved.py", UTIL)
    project.write("pipe.py", "from userlib.moved import base\n\ndef f(x):\n    return base(x)\n")
    assert identity(project) == before


def test_imported_classes_and_their_helpers_count(project: ModuleTree) -> None:
    project.write(
        "userlib/model.py",
        """
        from userlib.util import base

        class Model:
            def predict(self, x):
                return base(x) * 2
        """,
    )
    project.write(
        "pipe.py", "from userlib.model import Model\n\ndef f(x):\n    return Model().predict(x)\n"
    )
    assert changes(project, "userlib/model.py", "* 2", "* 3")
    assert changes(project, "userlib/util.py", "x + OFFSET", "x * OFFSET")


def test_a_project_module_used_as_a_value_counts_whole(project: ModuleTree) -> None:
    project.write(
        "pipe.py", "import userlib.util as u\n\ndef f(x):\n    return getattr(u, 'base')(x)\n"
    )
    assert changes(project, "userlib/util.py", "OFFSET = 1", "OFFSET = 1\nOTHER = 2")


def test_a_helper_defined_after_the_pod_counts(user_project: ModuleTree) -> None:
    # The identity is computed at first use, when the module has been run to its end.
    user_project.write(
        "late.py",
        """
        from podline import function_pod

        @function_pod("y")
        def f(x: int) -> int:
            return helper(x)

        def helper(x):
            return x + 1
        """,
    )

    def pod_hash() -> str:
        return str(user_project.load("late").f.packet_function.content_hash())

    before = pod_hash()
    user_project.edit("late.py", "x + 1", "x + 2")
    assert pod_hash() != before


def test_a_file_edited_after_import_is_an_error_not_a_wrong_identity(
    user_project: ModuleTree,
) -> None:
    user_project.write("stale.py", "def f(x):\n    return x\n")
    module = user_project.load("stale")
    user_project.edit("stale.py", "def f(x):", "# a new first line\ndef f(x):")
    with pytest.raises(FunctionIdentityError, match="changed since it was imported"):
        describe_code(module.f)


def test_a_helper_edited_in_place_after_import_is_an_error_not_a_wrong_identity(
    user_project: ModuleTree,
) -> None:
    # The definition stays where it was, its body changes (a colleague's `git pull` in a
    # shared working copy, an edit in a long session): the process runs the imported code,
    # and an identity of the new text stored its results as the new code's, served to the
    # next process running the new code (user test 7: 3 served where x * 5 + 1 is 6).
    user_project.write("helpers.py", "def scale(x):\n    return x * 2\n")
    user_project.write(
        "steps.py",
        "import podline\nfrom helpers import scale\n\n\n"
        '@podline.function_pod("y")\ndef f(x: int) -> int:\n    return scale(x) + 1\n',
    )
    steps = user_project.load("steps")
    user_project.edit("helpers.py", "x * 2", "x * 5")
    with pytest.raises(FunctionIdentityError, match=r"helpers\.scale in .* changed since the"):
        describe_code(steps.f.packet_function.fn)
    numbers = podline.DictSource([{"k": 1, "x": 1}], tag_columns=["k"])
    with pytest.raises(FunctionIdentityError, match="reload the module"):
        steps.f.pod(numbers)
    # Put back as imported: the same identity as before the edit.
    user_project.edit("helpers.py", "x * 5", "x * 2")
    assert (
        describe_code(steps.f.packet_function.fn).hash
        == describe_code(user_project.load("steps").f.packet_function.fn).hash
    )


# --------------------------------------------------------------------------- not followed


def test_installed_package_code_is_not_followed_but_recorded(
    user_project: ModuleTree, installed_packages: ModuleTree
) -> None:
    installed_packages.write("fakepkg/__init__.py", "def scale(x):\n    return x * 10\n")
    user_project.write("pipe.py", "from fakepkg import scale\n\ndef f(x):\n    return scale(x)\n")
    assert describe_code(user_project.load("pipe").f).packages == {"fakepkg"}
    before = identity(user_project)
    installed_packages.edit("fakepkg/__init__.py", "* 10", "* 100")
    installed_packages.forget()
    assert identity(user_project) == before


def test_switching_where_a_name_is_imported_from_counts(
    user_project: ModuleTree, installed_packages: ModuleTree
) -> None:
    for name in ("fake_a", "fake_b"):
        installed_packages.write(f"{name}/__init__.py", "def mean(x):\n    return x\n")
    user_project.write("pipe.py", "from fake_a import mean\n\ndef f(x):\n    return mean(x)\n")
    before = identity(user_project)
    user_project.edit("pipe.py", "fake_a", "fake_b")
    assert identity(user_project) != before


def test_closing_over_another_library_function_counts(user_project: ModuleTree) -> None:
    user_project.write(
        "pipe.py",
        """
        import math

        def make(op):
            def f(x):
                return op(x)
            return f
        """,
    )
    module = user_project.load("pipe")
    assert describe_code(module.make(math.floor)).hash != describe_code(module.make(math.ceil)).hash


@pytest.mark.parametrize(
    ("obj", "origin"),
    [
        (math, "stdlib"),
        (os, "stdlib"),
        (sys, "stdlib"),
        (np, "installed"),
        (pytest, "installed"),
        (podline, "podline"),
    ],
)
def test_module_origins(obj: Any, origin: str) -> None:
    assert module_origin(obj) == origin


def test_file_origins(tmp_path: Path) -> None:
    assert file_origin(str(tmp_path / "mine.py")) == "project"
    assert file_origin(str(tmp_path / "venv" / "lib" / "site-packages" / "x.py")) == "installed"
    assert file_origin("/usr/lib/python3/dist-packages/x.py") == "installed"
    assert file_origin("<frozen os>") == "unknown"
    link = tmp_path / "linked.py"
    link.symlink_to(Path(math.__file__ if hasattr(math, "__file__") else os.__file__))
    assert file_origin(str(link)) == "stdlib"  # by where the file really is


# --------------------------------------------------------------------------- depends_on


def packet_function(fn: Callable[..., Any], **options: Any) -> PacketFunction:
    return PacketFunction(fn, output_keys="y", **options)


def test_depends_on_puts_versions_into_the_identity(
    user_project: ModuleTree,
    installed_packages: ModuleTree,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installed_packages.write("fakepkg/__init__.py", "def scale(x):\n    return x * 10\n")
    installed_packages.distribution("fake-dist", "1.0", top_level="fakepkg")
    user_project.write(
        "pipe.py", "from fakepkg import scale\n\ndef f(x: int) -> int:\n    return scale(x)\n"
    )
    fn = user_project.load("pipe").f
    plain = packet_function(fn).content_hash()
    by_import_name = packet_function(fn, depends_on=["fakepkg"])
    assert by_import_name.dependencies == {"fake-dist": "1.0"}
    assert by_import_name.content_hash() != plain
    assert packet_function(fn, depends_on=["fake-dist"]).content_hash() == (
        by_import_name.content_hash()
    )
    # Upgrading the distribution (a new environment: same code, other metadata).
    upgraded = ModuleTree(tmp_path / "env2" / "site-packages")
    upgraded.distribution("fake-dist", "2.0", top_level="fakepkg")
    monkeypatch.syspath_prepend(str(upgraded.root))
    again = packet_function(fn, depends_on=["fakepkg"])
    assert again.dependencies == {"fake-dist": "2.0"}
    assert again.content_hash() != by_import_name.content_hash()


def test_depends_on_an_unknown_name_is_an_error() -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(FunctionDefinitionError, match=r"'no-such-dist'.*not an installed"):
        packet_function(f, depends_on=["no-such-dist"])
    assert packet_function(f, depends_on="numpy").dependencies == {"numpy": np.__version__}


def test_a_chain_of_helpers_longer_than_the_recursion_limit(user_project: ModuleTree) -> None:
    depth = sys.getrecursionlimit() + 100
    helpers = "".join(f"def h{i}(x):\n    return h{i - 1}(x) + 1\n\n" for i in range(1, depth))
    user_project.write("chain.py", f"def h0(x):\n    return x\n\n{helpers}")
    user_project.write(
        "pipe.py", f"from chain import h{depth - 1}\n\ndef f(x):\n    return h{depth - 1}(x)\n"
    )
    code = describe_code(user_project.load("pipe").f)
    assert len(code.structure["entries"]) == depth + 1
    assert changes(user_project, "chain.py", "    return x\n", "    return -x\n")


def test_namespace_packages_of_the_project_are_followed(user_project: ModuleTree) -> None:
    # No __init__.py (PEP 420): the package goes by its directory.
    (user_project.root / "nslib").mkdir()
    (user_project.root / "nslib" / "tools.py").write_text("def h(x):\n    return x * 2\n")
    user_project.write("pipe.py", "import nslib.tools\n\ndef f(x):\n    return nslib.tools.h(x)\n")
    assert module_origin(user_project.load("nslib")) == "project"
    assert changes(user_project, "nslib/tools.py", "x * 2", "x * 3")
    user_project.write(
        "pipe.py", "def f(x):\n    import nslib.tools\n    return nslib.tools.h(x)\n"
    )
    assert changes(user_project, "nslib/tools.py", "x * 3", "x * 4")


@pytest.mark.parametrize(
    ("definition", "edit"),
    [
        ("P = namedtuple('P', 'x y')", ("'x y'", "'y x'")),
        ("Color = Enum('Color', 'RED GREEN')", ("'RED GREEN'", "'GREEN RED'")),
    ],
    ids=["namedtuple", "functional-enum"],
)
def test_classes_made_by_a_call_count_by_their_statement(
    user_project: ModuleTree, definition: str, edit: tuple[str, str]
) -> None:
    name = definition.split(" ", maxsplit=1)[0]
    user_project.write(
        "shapes.py", f"from collections import namedtuple\nfrom enum import Enum\n\n{definition}\n"
    )
    user_project.write("pipe.py", f"from shapes import {name}\n\ndef f(x):\n    return {name}\n")
    assert changes(user_project, "shapes.py", *edit)
