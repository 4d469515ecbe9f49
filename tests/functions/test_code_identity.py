"""Code identity: each rule of the function-identity contract."""

from __future__ import annotations

import datetime
import functools
import os
import subprocess
import sys
import zoneinfo

import pytest

from podline import SKIP
from podline.errors import FunctionIdentityError
from podline.functions import PacketFunction, code_identity
from podline.hashing import HASH_SCHEME, hash_value

from .conftest import ModuleMaker

BASE = """
SCALE = 2

def helper(x):
    return x * SCALE

def f(a: int) -> int:
    '''Add one to the scaled value.'''
    # scale first
    return helper(a) + 1
"""


def identity_of(make_module: ModuleMaker, source: str, name: str = "f") -> str:
    return str(code_identity(getattr(make_module(source), name)))


def test_same_source_same_identity(make_module: ModuleMaker) -> None:
    assert identity_of(make_module, BASE) == identity_of(make_module, BASE)


def test_editing_the_body_changes_identity(make_module: ModuleMaker) -> None:
    edited = BASE.replace("return helper(a) + 1", "return helper(a) + 2")
    assert identity_of(make_module, BASE) != identity_of(make_module, edited)


def test_editing_a_helper_changes_identity(make_module: ModuleMaker) -> None:
    edited = BASE.replace("return x * SCALE", "return x * SCALE - 1")
    assert identity_of(make_module, BASE) != identity_of(make_module, edited)


def test_editing_a_helper_of_a_helper_changes_identity(make_module: ModuleMaker) -> None:
    source = """
    def inner(x):
        return x + 1

    def helper(x):
        return inner(x) * 2

    def f(a: int) -> int:
        return helper(a)
    """
    edited = source.replace("return x + 1", "return x + 3")
    assert identity_of(make_module, source) != identity_of(make_module, edited)


def test_editing_a_constant_changes_identity(make_module: ModuleMaker) -> None:
    edited = BASE.replace("SCALE = 2", "SCALE = 3")
    assert identity_of(make_module, BASE) != identity_of(make_module, edited)


def test_docstrings_and_comments_do_not_count(make_module: ModuleMaker) -> None:
    edited = (
        BASE.replace("'''Add one to the scaled value.'''", "'''Something else entirely.'''")
        .replace("# scale first", "# a different comment")
        .replace("def helper(x):\n", "def helper(x):\n    '''A new helper docstring.'''\n")
    )
    assert identity_of(make_module, BASE) == identity_of(make_module, edited)


def test_reformatting_does_not_count(make_module: ModuleMaker) -> None:
    reformatted = """
SCALE   =   2
def helper( x ):
    return (x*SCALE)
def f(a:int)->int:
    return helper( a )+1
"""
    assert identity_of(make_module, BASE) == identity_of(make_module, reformatted)


def test_unrelated_module_code_does_not_count(make_module: ModuleMaker) -> None:
    edited = BASE + "\n\ndef unrelated():\n    return 42\n\nOTHER = 7\n"
    assert identity_of(make_module, BASE) == identity_of(make_module, edited)


def test_mutual_recursion_terminates(make_module: ModuleMaker) -> None:
    source = """
    def even(n):
        return True if n == 0 else odd(n - 1)

    def odd(n):
        return False if n == 0 else even(n - 1)

    def f(n: int) -> bool:
        return even(n)
    """
    edited = source.replace("return False if", "return True if")
    assert identity_of(make_module, source) != identity_of(make_module, edited)


def test_version_bump_and_pinned_identity(make_module: ModuleMaker) -> None:
    original = make_module(BASE).f
    edited = make_module(BASE.replace("+ 1", "+ 5")).f

    def packet_function(fn: object, version: str, identity: str) -> PacketFunction:
        return PacketFunction(fn, output_keys="y", version=version, identity=identity)  # type: ignore[arg-type]

    code_v1 = packet_function(original, "v1", "code").content_hash()
    assert packet_function(original, "v2", "code").content_hash() != code_v1
    assert packet_function(edited, "v1", "code").content_hash() != code_v1
    pinned_v1 = packet_function(original, "v1", "version").content_hash()
    # With a pinned identity an edit of the body is the user's business; the version is not.
    assert packet_function(edited, "v1", "version").content_hash() == pinned_v1
    assert packet_function(original, "v2", "version").content_hash() != pinned_v1
    assert pinned_v1 != code_v1


def test_lambda_gets_an_identity(make_module: ModuleMaker) -> None:
    module = make_module("double = lambda x: x * 2\ntriple = lambda x: x * 3\n")
    assert code_identity(module.double) != code_identity(module.triple)
    again = make_module("double = lambda x: x * 2\n")
    assert code_identity(module.double) == code_identity(again.double)


def test_two_lambdas_on_one_line_are_rejected(make_module: ModuleMaker) -> None:
    module = make_module("pair = (lambda x: x + 1, lambda x: x + 2)\n")
    with pytest.raises(FunctionIdentityError, match="lambda"):
        code_identity(module.pair[0])


def test_closures_hash_their_values(make_module: ModuleMaker) -> None:
    module = make_module(
        """
        def make_adder(k):
            def add(x: int) -> int:
                return x + k
            return add
        """
    )
    assert code_identity(module.make_adder(1)) != code_identity(module.make_adder(2))
    assert code_identity(module.make_adder(1)) == code_identity(module.make_adder(1))


def test_closures_and_nested_functions_may_refer_to_skip(make_module: ModuleMaker) -> None:
    module = make_module(
        """
        def make(threshold):
            from podline import SKIP

            def keep(x: int) -> int:
                return x if x > threshold else SKIP
            return keep

        def make_aliased():
            import podline
            nothing = podline.SKIP

            def drop(x: int) -> int:
                return nothing
            return drop
        """
    )
    assert code_identity(module.make(1)) == code_identity(module.make(1))
    assert code_identity(module.make(1)) != code_identity(module.make(2))
    assert code_identity(module.make_aliased()) == code_identity(module.make_aliased())


def test_skip_has_one_identity_in_every_process() -> None:
    code = (
        "from podline import SKIP; from podline.hashing import hash_value; print(hash_value(SKIP))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "7", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == str(hash_value(SKIP))


def test_closure_over_unhashable_value_is_rejected(make_module: ModuleMaker) -> None:
    module = make_module(
        """
        class Model:
            pass

        def make(model):
            def predict(x: int) -> int:
                return x if model else 0
            return predict
        """
    )
    with pytest.raises(FunctionIdentityError, match="'model'"):
        code_identity(module.make(module.Model()))


def test_bound_methods_and_builtins_are_rejected(make_module: ModuleMaker) -> None:
    module = make_module(
        """
        class Scaler:
            def scale(self, x: int) -> int:
                return x * 2
        """
    )
    with pytest.raises(FunctionIdentityError, match="bound method"):
        code_identity(module.Scaler().scale)
    with pytest.raises(FunctionIdentityError, match="not a Python function"):
        code_identity(len)  # type: ignore[arg-type]
    with pytest.raises(FunctionIdentityError, match="not a Python function"):
        code_identity(functools.partial(module.Scaler.scale, None))


def test_static_functions_of_classes_work(make_module: ModuleMaker) -> None:
    module = make_module(
        """
        class Tools:
            @staticmethod
            def scale(x: int) -> int:
                return x * 2
        """
    )
    assert str(code_identity(module.Tools.scale)).startswith(f"{HASH_SCHEME}:")


def test_async_functions_have_identities(make_module: ModuleMaker) -> None:
    source = "async def f(x: int) -> int:\n    return x + 1\n"
    assert identity_of(make_module, source) != identity_of(
        make_module, source.replace("+ 1", "+ 2")
    )


def test_same_module_classes_count(make_module: ModuleMaker) -> None:
    source = """
    class Rule:
        factor = 2

    def f(x: int) -> int:
        return x * Rule.factor
    """
    edited = source.replace("factor = 2", "factor = 3")
    assert identity_of(make_module, source) != identity_of(make_module, edited)


VALUES = """
import datetime, re

CUTOFF = datetime.date(2024, 1, 1)
PAT = re.compile(r"a+")
NESTED = (1, [2])
TABLE = {"k": 1}
TABLE["k"] = 10
TABLE.update(j=2)
OTHER = [1, 2]

def f(d: datetime.date, s: str, x: int) -> int:
    return int(d >= CUTOFF) + len(PAT.findall(s)) + NESTED[1][0] + TABLE["k"] + x
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("date(2024, 1, 1)", "date(2025, 1, 1)"),
        ('r"a+"', 'r"b+"'),
        ("[2]", "[9]"),
        ('TABLE["k"] = 10', 'TABLE["k"] = 20'),
        ("TABLE.update(j=2)", "TABLE.update(j=3)"),
    ],
    ids=["date", "compiled pattern", "list in a tuple", "dict filled at import", "dict call"],
)
def test_editing_how_a_module_value_is_made_changes_identity(
    make_module: ModuleMaker, old: str, new: str
) -> None:
    """A module-level value of a type podline does not hash by value is followed by the
    statements that name it: a user test found these edits reusing stale results."""
    assert old in VALUES
    assert identity_of(make_module, VALUES) != identity_of(make_module, VALUES.replace(old, new))


REGISTRY = """
SCALE = 2


def ridge(x):
    return x * SCALE


def lasso(x):
    return x - 1


MODELS = {"ridge": ridge}
MODELS["lasso"] = lasso
WEIGHTS = [SCALE, 3]


def f(name: str, x: int) -> int:
    return MODELS[name](x) + WEIGHTS[0]
"""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("return x * SCALE", "return x * SCALE + 1"),
        ("return x - 1", "return x - 2"),
        ("SCALE = 2", "SCALE = 5"),
    ],
    ids=["helper in a registry", "helper added into it", "constant a value is made of"],
)
def test_what_the_statements_making_a_module_value_read_counts(
    make_module: ModuleMaker, old: str, new: str
) -> None:
    """A registry of functions (``MODELS = {"ridge": ridge}``) is followed by its statements
    and by what they read: editing a helper it holds recomputes (user test: a model sweep
    served the results of the old helper)."""
    assert old in REGISTRY
    edited = REGISTRY.replace(old, new)
    assert identity_of(make_module, REGISTRY) != identity_of(make_module, edited)


def test_where_the_module_file_is_does_not_count(make_module: ModuleMaker) -> None:
    """A value made from ``__file__`` is followed by its statements, not by the path the
    import system set: two files with this text (two checkouts) share identities."""
    source = """
    from pathlib import Path

    HERE = Path(__file__).resolve().parent
    OUT = HERE / "models"

    def f(x: float) -> float:
        return x + len(OUT.name)
    """
    assert identity_of(make_module, source) == identity_of(make_module, source)
    edited = source.replace('"models"', '"figures"')
    assert identity_of(make_module, source) != identity_of(make_module, edited)


def test_statements_not_naming_a_value_used_do_not_count(make_module: ModuleMaker) -> None:
    edited = VALUES.replace("OTHER = [1, 2]", "OTHER = [3]") + "\nprint('imported')\n"
    assert identity_of(make_module, VALUES) == identity_of(make_module, edited)


def test_imported_code_is_not_followed(make_module: ModuleMaker) -> None:
    source = "import math\n\ndef f(x: float) -> float:\n    return math.sqrt(x)\n"
    assert identity_of(make_module, source) == identity_of(make_module, source)


def test_mutable_module_state_is_not_part_of_the_identity(make_module: ModuleMaker) -> None:
    module = make_module(
        """
        SEEN = []
        LIMITS = (1, 2)

        def f(x: int) -> int:
            SEEN.append(x)
            return x + LIMITS[0]
        """
    )
    before = code_identity(module.f)
    module.SEEN.extend([1, 2, 3])
    assert code_identity(module.f) == before
    module.LIMITS = (5, 6)
    assert code_identity(module.f) != before


CONFIGURED = """
import os

class Config:
    factor = 2.0
    offset = float(os.environ.get("PODLINE_TEST_OFFSET", "0"))
    label: str = "a"
    twice = 1
    twice = 2

def f(x: float) -> float:
    return x * Config.factor + Config.offset
"""


def test_class_attributes_count_by_value_where_the_text_does_not_give_it(
    make_module: ModuleMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module constant counts by its value; a class attribute read the same way must too:
    # one computed at import from what the text does not show, or a literal the program
    # replaced (``Config.factor = args.factor``), served results of another value before.
    module = make_module(CONFIGURED)
    before = code_identity(module.f)
    monkeypatch.setenv("PODLINE_TEST_OFFSET", "5")
    assert code_identity(make_module(CONFIGURED).f) != before
    monkeypatch.delenv("PODLINE_TEST_OFFSET")
    assert code_identity(make_module(CONFIGURED).f) == before
    module.Config.factor = 3.0
    replaced = code_identity(module.f)
    assert replaced != before
    module.Config.factor = 2.0  # the text's value again: the text's identity
    assert code_identity(module.f) == before
    module.Config.factor = 2  # an int is another value than the float the text gives
    assert code_identity(module.f) not in (before, replaced)


def test_class_attributes_the_text_gives_do_not_change_a_class_identity(
    make_module: ModuleMaker,
) -> None:
    # Classes whose attributes are literals (most) keep their identities; so do enums,
    # dataclasses and attributes a base class or decorator adds.
    source = """
    import dataclasses, enum

    class Color(enum.Enum):
        RED = 1

    @dataclasses.dataclass
    class Params:
        lr: float = 0.1
        steps: int = 10

    def f(x: float) -> float:
        return x * Params().lr + Color.RED.value
    """
    module = make_module(source)
    entries = PacketFunction(module.f, output_keys="y").code.structure["entries"]
    assert "values" not in entries["Params"]
    assert "values" not in entries["Color"]


def test_closures_over_dicts_and_zoned_datetimes_keep_order_and_zone(
    make_module: ModuleMaker,
) -> None:
    # hash_value folds a dict's order and a datetime's zone to its offset; code can tell
    # both apart (``next(iter(table))``; July in Paris is +02:00, a fixed +01:00 is not), and
    # served the other's results as cached (user test 10).
    module = make_module(
        """
        def make(value):
            def f(x: int) -> str:
                return str(value) + str(x)
            return f
        """
    )
    paris = datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    fixed = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert paris.isoformat() == fixed.isoformat()

    def of(value: object) -> str:
        return str(code_identity(module.make(value)))

    assert of({"a": 1, "b": 2}) != of({"b": 2, "a": 1})
    assert of({"a": 1, "b": 2}) == of({"a": 1, "b": 2})
    assert of(paris) != of(fixed)
    assert of([{"a": 1, "b": 2}]) != of([{"b": 2, "a": 1}])
    assert of(("t", paris)) != of(("t", fixed))
    # Values holding neither keep the identity hash_value gives them.
    for plain in (1, [1, 2.5], ("a", (None, b"x")), datetime.datetime(2024, 1, 1)):
        structure = PacketFunction(module.make(plain), output_keys="y").code.structure
        (entry,) = (e for e in structure["entries"].values() if "closure" in e)
        assert entry["closure"]["value"] == {"value": str(hash_value(plain))}
