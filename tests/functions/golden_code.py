"""Functions whose code identities are pinned in test_identity_golden.py.

Each covers a piece of syntax or a kind of reference code identity handles. Do not edit this
file: an edit changes the pinned identities (that is what the golden test is for). Everything
here parses on every supported Python (3.11+), so no PEP 695 type parameters.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SCALE = 3
LIMITS = (0.5, 2.0, -0.0)
NAMES = frozenset({"a", "b"})
GREETING = "héllo\N{SNOWMAN}"
BIG = 2**100


def helper(x: float) -> float:
    """A helper: its docstring does not count."""
    return x * SCALE + LIMITS[0]


def uses_helper(x: float) -> float:
    # A comment does not count either.
    return helper(x) + 1


@functools.cache
def cached_helper(n: int) -> int:
    return n * BIG % 97


def uses_decorated_helper(n: int) -> int:
    return cached_helper(n) + len(NAMES)


def traced(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


@traced
def decorated(x: int) -> int:
    return x - 1


def make_adder(k: int) -> Callable[[int], int]:
    def add(x: int) -> int:
        return x + k

    return add


add_two = make_adder(2)

double = lambda x: x * 2  # noqa: E731


async def fetch(x: int) -> int:
    await asyncio.sleep(0)
    return x + SCALE


def annotated(
    a: int, b: list[dict[str, float | None]], *, c: tuple[int, ...] = (1, 2), **kw: Any
) -> dict[str, Any]:
    return {"a": a, "b": b, "c": c, **kw}


def formats(x: float, name: str, width: int) -> str:
    return f"{name!r:>{width}} = {x:.3f} {x=} {GREETING} {{literal}} {f'{x:{width}.{2}}'}"


def matches(command: object) -> str:
    match command:
        case {"go": str(direction)} if direction in ("n", "s"):
            return f"go {direction}"
        case [int(a), int(b), *rest]:
            return f"{a + b} {len(rest)}"
        case Point(x=0, y=yy) | Point(x=yy, y=0):
            return f"axis {yy}"
        case None | True:
            return "nothing"
        case _:
            return "other"


def walrus(values: list[int]) -> list[int]:
    return [y for v in values if (y := v * 2) > SCALE and (total := y) >= 0 and total]


@dataclass(frozen=True)
class Point:
    x: float
    y: float

    def norm(self) -> float:
        return math.hypot(self.x, self.y)


def uses_class(x: float) -> float:
    return Point(x, -x).norm() + 0x1F + 1e-3 + 2j.imag


def everything_else(items: dict[str, int], path: str) -> int:
    total = 0
    for key, value in sorted(items.items()):
        try:
            with open(path) as handle:
                total += len(handle.read()) if key else -value
        except (OSError, ValueError) as exc:
            raise RuntimeError(str(exc)) from exc
        else:
            continue
        finally:
            del key
    while total > 10:
        total //= 2
    assert total >= 0, "negative"
    global SCALE  # noqa: PLW0602
    return total**2 @ 1 if False else total << 1 | 2 & ~3 ^ 4 and not None
