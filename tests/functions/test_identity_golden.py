"""Code identities must not change with the Python version.

The golden values below are what scheme ``pod3`` gives the functions of ``golden_code.py``.
``.ci/run`` runs this file under Python 3.11, 3.12 and 3.13 (it needs nothing but podline's
core dependencies and pytest, and no conftest). A failure under one version only means the
canonical form depends on the interpreter; a failure under all means the scheme changed:
that needs a new scheme id (``podline.hashing.digest``) and docs/identity.md's history.

``test_canonical_text_is_the_same_under_every_python`` compares the canonical texts of a
corpus under every other interpreter it finds (by pyenv or on ``PATH``), running
``canonical.py`` on its own; its guard shows that ``ast.dump``, what identities hashed up to
``pod2``, differs on the same corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from podline.functions import PacketFunction, describe_code

from . import golden_code

GOLDEN = {
    "uses_helper": "64919fe14023cb7b85a348be6fdcbde1a6bb3ae8c84667a50e575c4b0349fb72",
    "uses_decorated_helper": "519a72b1b12f0bad06258bb10e2f35762a38dd352ec81ddd21b4bdf5fabc8131",
    "decorated": "5616b880a950a960a50c651572bae3f42ac3ff987e3718a60e33ade4865f83ec",
    "add_two": "9b9764028b6afc818eb359d51dd6dcc1ad26b2cf7b7af37c052ce64a70174318",
    "double": "ec39abb12b07ed90b21ed860ae42996f0df402335936350f9da618323c0e8d64",
    "fetch": "34730e8ce6e930ee5f98af855e7933798d61fa0c27c68fdc056af619ab1136f1",
    "annotated": "84bbfa0fd778d10b05bf63fd7fce13bc9b6960c773d5d5174a85a56423abb301",
    "formats": "0ea729850ab9ad0cf5154cf2b3467555c4e560ad7d57c85ab3c72ecdcc84bcca",
    "matches": "b95ef8f3368402a782c8ba9ce845a91fdcbe67513673492eb6a08ebb4e440100",
    "walrus": "1b479ef22ac74cf779b599f6c44864bd3d581f04b24b5ac04c9a0a8c5f2e476c",
    "uses_class": "0b4aa88df6469f612fe80be3145578084fa8e068258e473825fe9f6aaa1acfd5",
    "everything_else": "db096fd9d5376c143e0b2e03a4a4fd830a6cbd6f14a3ab611f3d50be7dfe7a3c",
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_code_identity(name: str) -> None:
    assert str(describe_code(getattr(golden_code, name)).hash) == f"pod3:{GOLDEN[name]}"


def test_a_golden_identity_follows_from_the_documented_encoding() -> None:
    # ``double = lambda x: x * 2`` by hand, as docs/identity.md describes it: the canonical
    # text, its SHA-256 as the entry's code, the structure as sorted compact ASCII JSON, and
    # SHA-256 of "pod3:code", a group separator and that JSON.
    text = (
        "Lambda(args=arguments(args=[arg(arg=str:1:x,),],),body=BinOp(left=Name(ctx=Load(),"
        "id=str:1:x,),op=Mult(),right=Constant(value=int:0x2,),),)"
    )
    code = hashlib.sha256(text.encode()).hexdigest()
    structure = (
        '{"entries":{"<lambda>":{"code":"' + code + '","kind":"function"}},"root":"<lambda>"}'
    )
    expected = hashlib.sha256(b"pod3:code\x1d" + structure.encode()).hexdigest()
    assert GOLDEN["double"] == expected


def test_golden_packet_function_identity() -> None:
    # The whole function identity: name, version, schemas (type names) and code.
    function = PacketFunction(golden_code.formats, output_keys="text", version="v2")
    assert str(function.content_hash()) == (
        "pod3:51147446a3f4d49676231f87f7edf0294c67e7b026aecb3f50110fbbae214110"
    )


# --------------------------------------------------------------------------- other Pythons

CANONICAL = Path(__file__).parents[2] / "src" / "podline" / "functions" / "canonical.py"

# Run by each interpreter: the canonical text (and ast.dump) of every file given, by SHA-256.
PROBE = """
import ast, hashlib, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("canonical", sys.argv[1])
canonical = importlib.util.module_from_spec(spec)
spec.loader.exec_module(canonical)
result = {}
for path in sys.argv[2:]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    texts = {"canonical": canonical.canonical_text(tree), "dump": ast.dump(tree)}
    result[path] = {
        k: hashlib.sha256(v.encode("utf-8", "surrogatepass")).hexdigest()
        for k, v in texts.items()
    }
print(json.dumps(result))
"""


def other_interpreters() -> dict[str, str]:
    """``{"3.12": path}`` for every CPython 3.11+ found besides this one: the paths in
    ``PODLINE_TEST_PYTHONS`` (os.pathsep-separated), pyenv's versions, ``python3.N`` on PATH."""
    candidates = [p for p in os.environ.get("PODLINE_TEST_PYTHONS", "").split(os.pathsep) if p]
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        versions = Path(root.stdout.strip()) / "versions"
        candidates += [str(p) for p in sorted(versions.glob("3.*/bin/python3"))]
    candidates += [w for n in range(11, 20) if (w := shutil.which(f"python3.{n}"))]
    found: dict[str, str] = {}
    for path in candidates:
        version = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        current = "{}.{}".format(*sys.version_info[:2])
        if version and version != current and tuple(map(int, version.split("."))) >= (3, 11):
            found.setdefault(version, path)
    return found


def corpus() -> list[str]:
    """The golden functions and podline's own sources: f-strings, match, async, classes."""
    src = CANONICAL.parents[1]
    return [str(Path(golden_code.__file__)), *sorted(str(p) for p in src.rglob("*.py"))]


def probe(python: str, files: list[str]) -> dict[str, dict[str, str]]:
    completed = subprocess.run(
        [python, "-c", PROBE, str(CANONICAL), *files],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
    )
    return json.loads(completed.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def probes() -> dict[str, dict[str, dict[str, str]]]:
    others = other_interpreters()
    if not others:
        pytest.skip("no other Python 3.11+ interpreter found (pyenv, PATH or PODLINE_TEST_PYTHONS)")
    files = corpus()
    return {"here": probe(sys.executable, files)} | {
        version: probe(path, files) for version, path in sorted(others.items())
    }


def test_canonical_text_is_the_same_under_every_python(
    probes: dict[str, dict[str, dict[str, str]]],
) -> None:
    here = {path: texts["canonical"] for path, texts in probes["here"].items()}
    for version, result in probes.items():
        differing = sorted(p for p, texts in result.items() if texts["canonical"] != here[p])
        assert differing == [], f"Python {version} gives other canonical texts for {differing}"


def test_guard_ast_dump_differs_between_those_pythons(
    probes: dict[str, dict[str, dict[str, str]]],
) -> None:
    # What the test above protects against: hashing ast.dump (scheme pod2) gave another
    # identity to the same code under 3.12 and 3.13 than under 3.11.
    here = {path: texts["dump"] for path, texts in probes["here"].items()}
    for version, result in probes.items():
        if version != "here":
            assert any(texts["dump"] != here[p] for p, texts in result.items()), version
