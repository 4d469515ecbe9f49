"""Editing code recomputes exactly what depends on it, across processes: a helper in another
module of the user's project, not an installed package's file (unless ``depends_on`` opts a
package's version in)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import podline
from conftest import ModuleTree
from podline.pipeline import Pipeline
from podline.stores import Store

PIPELINE = """
import json
import sys

import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import DeltaStore
from userlib.scale import ext_scale
from userlib.other import shift


@function_pod("scaled", live_output=False)
def scale(x: int) -> int:
    return ext_scale(x)


@function_pod("label", live_output=False)
def describe(scaled: int) -> str:
    return f"v{scaled}"


@function_pod("shifted", live_output=False)
def offset(x: int) -> int:
    return shift(x)


if __name__ == "__main__":
    with DeltaStore(sys.argv[1]) as store:
        rows = [{"id": i, "x": i} for i in range(6)]
        source = podline.DictSource(rows, tag_columns=["id"], source_id="numbers")
        with Pipeline("edits", store) as pipeline:
            describe.pod(scale.pod(source))
            offset.pod(source)
        result = pipeline.run()
        counts = {
            k: [result.counts[k].computed, result.counts[k].cached]
            for k in ("scale", "describe", "offset")
        }
        print(json.dumps({"counts": counts, "label": pipeline.describe.as_table().to_pylist()}))
"""


def run_in_a_fresh_process(project: ModuleTree, store: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project.root), *sys.path])}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    completed = subprocess.run(
        [sys.executable, str(project.root / "pipe.py"), str(store)],
        capture_output=True,
        text=True,
        env=env,
        cwd=project.root,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_editing_an_imported_helper_recomputes_exactly_the_dependent_rows(
    user_project: ModuleTree, tmp_path: Path
) -> None:
    user_project.write("userlib/scale.py", "def ext_scale(x):\n    return x * 10 if x > 2 else x\n")
    user_project.write("userlib/other.py", "def shift(x):\n    return x + 1\n")
    user_project.write("pipe.py", PIPELINE)
    store = tmp_path / "store"
    first = run_in_a_fresh_process(user_project, store)
    assert first["counts"] == {"scale": [6, 0], "describe": [6, 0], "offset": [6, 0]}

    user_project.edit("userlib/scale.py", "x * 10 if", "x * 100 if")
    second = run_in_a_fresh_process(user_project, store)
    # Every call of the edited function is recomputed; downstream, only the rows whose input
    # changed (x > 2); the branch that does not use the helper is not touched.
    assert second["counts"] == {"scale": [6, 0], "describe": [3, 3], "offset": [0, 6]}
    assert [row["label"] for row in second["label"]] == [
        "v0",
        "v1",
        "v2",
        "v300",
        "v400",
        "v500",
    ]


# --------------------------------------------------------------------------- installed code


def test_an_installed_package_edit_recomputes_nothing_unless_its_version_is_opted_in(
    user_project: ModuleTree, installed_packages: ModuleTree, tmp_path: Path, store: Store
) -> None:
    installed_packages.write("fakepkg/__init__.py", "def times(x):\n    return x * 10\n")
    installed_packages.distribution("fake-dist", "1.0", top_level="fakepkg")
    user_project.write(
        "pipe.py",
        """
        from fakepkg import times
        from podline import function_pod

        @function_pod("y", live_output=False)
        def scale(x: int) -> int:
            return times(x)

        @function_pod("y", live_output=False, depends_on=["fakepkg"])
        def pinned(x: int) -> int:
            return times(x)
        """,
    )

    def counts(pod: str) -> tuple[int, int]:
        module = user_project.load("pipe")
        source = podline.DictSource([{"id": i, "x": i} for i in range(4)], tag_columns=["id"])
        with Pipeline(pod, store, observe=False) as pipeline:
            getattr(module, pod).pod(source)
        result = pipeline.run().counts[pod]
        return result.computed, result.cached

    assert counts("scale") == (4, 0)
    assert counts("pinned") == (4, 0)
    installed_packages.edit("fakepkg/__init__.py", "* 10", "* 100")
    installed_packages.forget()
    # Not followed: the edit alone recomputes neither (the manifest records the version).
    assert counts("scale") == (0, 4)
    assert counts("pinned") == (0, 4)
    # A new version of the distribution: only the pod that depends on it recomputes.
    upgraded = ModuleTree(tmp_path / "env2" / "site-packages")
    upgraded.distribution("fake-dist", "2.0", top_level="fakepkg")
    sys.path.insert(0, str(upgraded.root))
    try:
        assert counts("scale") == (0, 4)
        assert counts("pinned") == (4, 0)
    finally:
        sys.path.remove(str(upgraded.root))
