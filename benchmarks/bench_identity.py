"""Code identity of a pipeline of 20 function pods that import a 5,000-line local module.

The local module (about 5,000 lines) holds 250 helper functions of 20 lines, each calling the
one before (so the pods reach 12 to 240 helpers each, transitively) and one of 10 classes,
and constants. In a fresh process:
importing the pods (each is checked where it is defined), computing the 20 identities (the
first needs the module's syntax tree), compiling the pipeline, and computing the identities
again for 20 fresh pods of the same code (a second pipeline in the same process). Baselines,
measured in the same process: ``ast.parse`` of the module's text and importing the module.

Target: all 20 identities in at most 10x the time of parsing the module once (each helper is
walked once per pod that reaches it; the module is parsed once for all of them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

HELPERS = 250
PODS = 20


def _helper(i: int) -> str:
    call = f"helper_{i - 1}(y)" if i else "y"
    rule = f"Rule{i - i % 25}().apply(y)"
    body = f'''
def helper_{i}(x):
    """Helper {i}: a docstring that does not count."""
    # A comment that does not count either.
    y = x + LIMIT_{i % 10}
    if y > {i}:
        y = y - {i} // 2
    else:
        y = y + 1
    for k in range(3):
        y += k * FACTOR
    values = [y, y + 1, y + 2]
    total = sum(v for v in values if v % 2 == 0)
    label = f"h{i}:{{total:>6}}"
    if len(label) > 100:
        raise ValueError(label)
    y = {call}
    y = {rule} if y % 3 == 0 else y
    y = abs(y) if y < -1000 else y
    return y + total % 7
'''
    if i % 25:
        return body
    rule_class = f"""

class Rule{i}:
    factor = {i}

    def apply(self, x):
        return x * self.factor
"""
    return rule_class + body


def local_module() -> str:
    constants = "".join(f"LIMIT_{i} = {i * 3}\n" for i in range(10)) + "FACTOR = 2\n"
    return '"""A large local module."""\n\n' + constants + "".join(map(_helper, range(HELPERS)))


def pods_module() -> str:
    pods = "".join(
        f"""
@function_pod("y{k}", live_output=False)
def pod_{k}(x: int) -> int:
    return helper_{12 * k + 11}(x)
"""
        for k in range(PODS)
    )
    imports = ", ".join(f"helper_{12 * k + 11}" for k in range(PODS))
    return f"from podline import function_pod\nfrom biglib import {imports}\n{pods}"


_JOB = textwrap.dedent(
    """
    import ast, importlib, json, sys, time
    sys.path.insert(0, {root!r})
    text = open({big!r}).read()
    start = time.perf_counter(); ast.parse(text); parse = time.perf_counter() - start
    start = time.perf_counter(); importlib.import_module("biglib")
    import_big = time.perf_counter() - start
    import podline
    from podline.pipeline import Pipeline
    from podline.stores import MemoryStore
    start = time.perf_counter(); pods = importlib.import_module("pods")
    define = time.perf_counter() - start
    functions = [getattr(pods, f"pod_{{k}}") for k in range({n})]
    start = time.perf_counter()
    for pod in functions:
        pod.packet_function.content_hash()
    identity = time.perf_counter() - start
    source = podline.DictSource([{{"id": 1, "x": 1}}], tag_columns=["id"])
    start = time.perf_counter()
    with Pipeline("bench", MemoryStore()) as pipeline:
        for pod in functions:
            pod.pod(source)
    pipeline.uri
    compile_ = time.perf_counter() - start
    entries = sum(
        len(pod.packet_function.code.structure["entries"]) for pod in functions
    )
    # Fresh pods of the same code: the module's tree is parsed already.
    from podline.functions import PacketFunction
    start = time.perf_counter()
    for pod in functions:
        PacketFunction(pod.packet_function.fn, output_keys="y").content_hash()
    again = time.perf_counter() - start
    print(json.dumps({{"parse": parse, "import_big": import_big, "define": define,
                       "identity": identity, "compile": compile_, "again": again,
                       "entries": entries}}))
    """
)


def _job(root: Path) -> dict[str, float]:
    (root / "biglib.py").write_text(local_module())
    (root / "pods.py").write_text(pods_module())
    script = root / "job.py"
    script.write_text(_JOB.format(root=str(root), big=str(root / "biglib.py"), n=PODS))
    out = subprocess.run(
        [sys.executable, "-X", "frozen_modules=off", str(script)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONDONTWRITEBYTECODE": "1", **_env()},
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def run(quick: bool = False) -> None:
    repeats = 1 if quick else 3
    lines = local_module().count("\n")
    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as root:
            results.append(_job(Path(root)))
    best = {key: min(r[key] for r in results) for key in results[0]}
    worst = {key: max(r[key] for r in results) for key in results[0]}

    def span(key: str) -> str:
        return f"{best[key] * 1e3:7.1f} ms (to {worst[key] * 1e3:.1f})"

    print(f"local module: {lines:,} lines, {HELPERS} helpers; {PODS} pods")
    print(f"  baseline ast.parse of the module:       {span('parse')}")
    print(f"  baseline importing the module:          {span('import_big')}")
    print(f"  importing the pods (checked at definition): {span('define')}")
    print(
        f"  20 identities, first:                   {span('identity')}"
        f"  ({best['identity'] / best['parse']:.1f}x parse;"
        f" {int(best['entries']):,} entries walked)"
        f"  target <= 10x: {'met' if best['identity'] <= 10 * best['parse'] else 'NOT met'}"
    )
    print(f"  compiling the pipeline (identities known): {span('compile')}")
    print(f"  20 identities of fresh pods, same code: {span('again')}")
