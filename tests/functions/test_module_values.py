"""A module-level value edited in its file after the module was imported is an error, not the
old value run under the new text's identity (decision 94; podline.functions.module_values).

Code identity follows a list or a dict read from a module by the text of the statement that
makes it. A process that imported ``FACTORS = [2.0]`` and then saw the file become
``FACTORS = [3.0]`` (a ``git pull`` in a shared working copy) computed with 2.0 and stored
the results as what ``[3.0]`` computes; a fresh process with 3.0 was served them.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import podline
from conftest import ModuleTree
from podline.errors import FunctionIdentityError
from podline.functions import describe_code
from podline.functions.module_values import same_value

HELPERS = """
FACTORS = [2.0]


def factor(x):
    return x * FACTORS[0]
"""

STEPS = """
import podline
from helpers import factor


@podline.function_pod("y")
def f(x: float) -> float:
    return factor(x)
"""


def _identity(module: Any) -> str:
    return str(describe_code(module.f.packet_function.fn).hash)


def test_a_value_edited_after_import_is_an_error(user_project: ModuleTree) -> None:
    user_project.write("helpers.py", HELPERS)
    user_project.write("steps.py", STEPS)
    steps = user_project.load("steps")
    before = _identity(steps)
    user_project.edit("helpers.py", "[2.0]", "[3.0]")
    with pytest.raises(FunctionIdentityError) as caught:
        describe_code(steps.f.packet_function.fn)
    message = str(caught.value)
    assert "helpers.factor reads 'FACTORS', which" in message
    assert "helpers.py now makes [3.0] (line 2) while the running module holds [2.0]" in message
    assert "importlib.reload" in message
    numbers = podline.DictSource([{"k": 1, "x": 1.0}], tag_columns=["k"])
    with pytest.raises(FunctionIdentityError, match="'FACTORS'"):
        steps.f.pod(numbers)
    # Put back as imported: no error, the identity it had.
    user_project.edit("helpers.py", "[3.0]", "[2.0]")
    assert _identity(steps) == before


def test_a_value_named_in_all_is_still_checked(user_project: ModuleTree) -> None:
    user_project.write("helpers.py", '__all__ = ["FACTORS", "factor"]\n' + HELPERS)
    user_project.write("steps.py", STEPS)
    steps = user_project.load("steps")
    user_project.edit("helpers.py", "[2.0]", "[3.0]")
    with pytest.raises(FunctionIdentityError, match="'FACTORS'"):
        describe_code(steps.f.packet_function.fn)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("[2.0]", "[2]"),  # 2 is not 2.0
        ("[2.0]", "[True]"),
        ("[2.0]", "[-0.0]"),
        ("[2.0]", "[2.0, 1e999]"),
        ("[2.0]", "{'a': 2.0}"),
        ("[2.0]", "(2.0, [1])"),
        ("[2.0]", "None"),
    ],
)
def test_every_change_of_type_or_value_counts(user_project: ModuleTree, old: str, new: str) -> None:
    helpers = HELPERS.replace("FACTORS[0]", "len(FACTORS)")
    user_project.write("helpers.py", helpers)
    user_project.write("steps.py", STEPS)
    steps = user_project.load("steps")
    user_project.edit("helpers.py", old, new)
    with pytest.raises(FunctionIdentityError, match="'FACTORS'"):
        describe_code(steps.f.packet_function.fn)


@pytest.mark.parametrize(
    "value",
    [
        "[0.0, -0.0, 1e999, -1e999, True, 1, 1.0, 1j, -2, 'a', b'b', None, (1, ('x',))]",
        "{'a': 1, 1: [2.5], (1, 2): {'n': None}}",
        "{1, 'a', (2, -0.0), b'c'}",
        "set()",
        "(1, [2, 3])",
    ],
)
def test_an_unchanged_value_is_no_error(user_project: ModuleTree, value: str) -> None:
    user_project.write(
        "helpers.py", f"FACTORS = {value}\n\n\ndef factor(x):\n    return x * len(FACTORS)\n"
    )
    user_project.write("steps.py", STEPS)
    steps = user_project.load("steps")
    describe_code(steps.f.packet_function.fn)
    # The file touched, its text the same: still no error.
    user_project.edit("helpers.py", "FACTORS", "FACTORS")
    describe_code(steps.f.packet_function.fn)


# A module that changes its own value, at import or as it runs: the live value is not the
# literal, and nothing was edited. Not compared (the module docs say which uses are reads).
CHANGED_BY_THE_MODULE = {
    "augmented": "FACTORS = [2.0]\nFACTORS += [1.0]\n",
    "appended": "FACTORS = [2.0]\nFACTORS.append(1.0)\n",
    "item set": "FACTORS = [2.0]\nFACTORS[0] = 5.0\n",
    "assigned twice": "FACTORS = [2.0]\nFACTORS = [5.0]\n",
    "deleted": "FACTORS = [2.0]\ndel FACTORS\nFACTORS = [5.0]\n",
    "aliased": "FACTORS = [2.0]\nALIAS = FACTORS\nALIAS.append(1.0)\n",
    "set by a function at import": (
        "FACTORS = [2.0]\n\n\ndef setup():\n    global FACTORS\n    FACTORS = [5.0]\n\n\nsetup()\n"
    ),
    "filled by a function at import": (
        "FACTORS = [2.0]\n\n\ndef fill(values):\n    values.append(1.0)\n\n\nfill(FACTORS)\n"
    ),
    "after a semicolon": "FACTORS = [2.0]\nN = 1; FACTORS.append(1.0)\n",
    "in a one-line if": "FACTORS = [2.0]\nif N := 1: FACTORS.append(1.0)\n",
    "in a call over lines": "FACTORS = [2.0]\nprint(\n    'x',\n    FACTORS.append(1.0),\n)\n",
    "by a method at import": (
        "FACTORS = [2.0]\n\n\nclass Setup:\n    @staticmethod\n    def run():\n"
        "        FACTORS.clear()\n\n\nSetup.run()\n"
    ),
    "by a decorator argument": (
        "FACTORS = [2.0]\n\n\ndef mark(values):\n    values.append(1.0)\n    return lambda f: f\n"
        "\n\n@mark(\n    FACTORS\n)\ndef marked():\n    return 1\n"
    ),
    "set through globals()": "FACTORS = [2.0]\nglobals()['FACTORS'] = [5.0]\n",
    "rebound by a star import": "FACTORS = [2.0]\nfrom starred import *\n",
    "nested item mutated": "FACTORS = [[2.0]]\nFACTORS[0].append(1.0)\n",
    "nested item through a loop": "FACTORS = [[2.0]]\nfor row in FACTORS:\n    row.append(1.0)\n",
    "a registry": (
        "FACTORS = {}\n\n\ndef register(fn):\n    FACTORS[fn.__name__] = fn\n    return fn\n\n\n"
        "@register\ndef one():\n    return 1\n"
    ),
    "a cache": (
        "FACTORS = {}\n\n\ndef remember(k):\n    FACTORS.setdefault(k, k)\n    return k\n\n\n"
        "remember(3)\n"
    ),
}


@pytest.mark.parametrize(
    "module", list(CHANGED_BY_THE_MODULE.values()), ids=list(CHANGED_BY_THE_MODULE)
)
def test_a_value_the_module_changes_itself_is_no_error(
    user_project: ModuleTree, module: str
) -> None:
    user_project.write("starred.py", "FACTORS = [5.0]\n")
    user_project.write("helpers.py", module + "\n\ndef factor(x):\n    return x * len(FACTORS)\n")
    user_project.write("steps.py", STEPS)
    steps = user_project.load("steps")
    describe_code(steps.f.packet_function.fn)


def test_a_value_the_pods_module_changes_as_it_runs_is_no_error(
    user_project: ModuleTree,
) -> None:
    # The function's own cache, filled by running it: its identity is asked for again in
    # every new pipeline of the session.
    user_project.write(
        "cached.py",
        """
        import podline

        SEEN = {}


        @podline.function_pod("y")
        def f(x: float) -> float:
            if x not in SEEN:
                SEEN[x] = x * 2
            return SEEN[x]
        """,
    )
    cached = user_project.load("cached")
    assert cached.f(1.0) == 2.0
    assert cached.SEEN == {1.0: 2.0}
    describe_code(cached.f.packet_function.fn)


def test_a_value_set_from_outside_the_module_is_an_error(user_project: ModuleTree) -> None:
    # A script setting a module's list before running: the code runs with the new list under
    # the identity of the file's, as an edit would.
    user_project.write("helpers.py", HELPERS)
    user_project.write("steps.py", STEPS)
    steps = user_project.load("steps")
    sys.modules["helpers"].FACTORS = [5.0]
    with pytest.raises(FunctionIdentityError, match="changed from outside the module"):
        describe_code(steps.f.packet_function.fn)


def test_a_value_the_text_does_not_tell_is_not_checked(user_project: ModuleTree) -> None:
    # Made by a call: the text cannot be evaluated safely, and the value is not compared
    # (docs/identity.md lists this among what is not followed).
    user_project.write("helpers.py", HELPERS.replace("[2.0]", "sorted([2.0])"))
    user_project.write("steps.py", STEPS)
    steps = user_project.load("steps")
    user_project.edit("helpers.py", "[2.0]", "[3.0]")
    describe_code(steps.f.packet_function.fn)


def test_same_value() -> None:
    nan = float("nan")
    assert same_value([nan], [nan])
    assert same_value({"a": (1, -0.0)}, {"a": (1, -0.0)})
    assert not same_value(0.0, -0.0)
    assert not same_value(1, True)
    assert not same_value(1, 1.0)
    assert not same_value({1}, {1.0})
    assert not same_value({-0.0}, {0.0})
    assert not same_value({"a": 1, "b": 2}, {"b": 2, "a": 1})  # another text made it
    assert not same_value([1, 2], [1, 2, 3])
    assert not same_value(complex(0, 0.0), complex(0, -0.0))
    assert same_value(math.inf, math.inf)


# --------------------------------------------------------------------------- two processes

SESSION = """
import pathlib
import sys

import podline
import steps

# A colleague's `git pull` while this process runs: the file now says 3.0.
helpers = pathlib.Path("helpers.py")
helpers.write_text(helpers.read_text().replace("[2.0]", "[3.0]"))
source = podline.DictSource([{"k": 1, "x": 1.0}], tag_columns=["k"])
try:
    with podline.Pipeline("p", store=podline.DeltaStore("store")) as pipeline:
        steps.f.pod(source)
    pipeline.run()
except podline.PodlineError as exc:
    print(type(exc).__name__)
    sys.exit(0)
print("ran", pipeline.f.as_table().column("y").to_pylist())
"""

FRESH = """
import podline
import steps

source = podline.DictSource([{"k": 1, "x": 1.0}], tag_columns=["k"])
with podline.Pipeline("p", store=podline.DeltaStore("store")) as pipeline:
    steps.f.pod(source)
result = pipeline.run()
print(result.counts["f"].computed, pipeline.f.as_table().column("y").to_pylist())
"""


def _script(root: Path, text: str) -> str:
    script = root / "script.py"
    script.write_text(textwrap.dedent(text))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(podline.__file__).parents[1]), str(root)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_script_never_stores_the_old_value_under_the_new_text(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "steps.py").write_text(STEPS)
    assert _script(tmp_path, SESSION) == "FunctionIdentityError"
    # A fresh process reading the new text computes 3.0; nothing of 2.0 was stored for it.
    assert _script(tmp_path, FRESH) == "1 [3.0]"
