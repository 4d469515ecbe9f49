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
    "uses_helper": "79f954c1ffd7b7732522ff27325040e555ef04d78e8697b2ee72329e780e71d1",
    "uses_decorated_helper": "ceae453ab186401e4d5bf3450578b399782cc485bd37fa38bf7ae125b1dee1af",
    "decorated": "0dd6fd6fea1118b97b00d768a6389e8b4d20f45bb1056e1c5fb5210afadd155f",
    "add_two": "ea059940d18ff4ddc2cdde3d1fd0839e3f0b8fc610af52fb56cf35193479f984",
    "double": "d802334baa6d2c614db8cc38843cca2db0754f329672ac77daf12c8cfa916605",
    "fetch": "7449d8c7b30e8338a8d14537b70c09bc375245a8a95b58eeaf5faf439af7d93c",
    "annotated": "16db68b3a2d0de9df00f68b7f7fb917463d303fa45ca8e99f6af4cd67ce6073b",
    "formats": "7359d204e45c3b20be4210ab94a9d66ef1311fd0066ceb1829683438b9e13f31",
    "matches": "89c1e32dddd545ca3edd5bc72cbc0a336ce2e9505431cc4209f025585225e2c3",
    "walrus": "c17bf0021343c121b19642f83ee6a2823227e4fbc713e4bf4632f6105eb1ca66",
    "uses_class": "934d9d8f09c3eccd69adda304ed64ae6a5ac370bf6cb1fe63f526cb532dcbb70",
    "everything_else": "1c54d30523c804d7f1a1e3d2c70ead88b8f614d96e074e560487f43fac7fb61c",
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_code_identity(name: str) -> None:
    assert str(describe_code(getattr(golden_code, name)).hash) == f"pod3:{GOLDEN[name]}"


def test_golden_packet_function_identity() -> None:
    # The whole function identity: name, version, schemas (type names) and code.
    function = PacketFunction(golden_code.formats, output_keys="text", version="v2")
    assert str(function.content_hash()) == (
        "pod3:1ad8ed5cd1e7ef285e046373f4f775c977a73454d5a6da0d3db5cc43698012f8"
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
