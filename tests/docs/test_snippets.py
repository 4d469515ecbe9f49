"""Every ```python block of README.md and docs/**/*.md runs (see ``tests/docs/snippets.py``).

One test per page, so a failure names the page, the Markdown line and the error. A page runs
in a fresh temporary working directory (on ``sys.path``, as a script's directory is), with
``PODLINE_STORE`` naming a store inside it, so ``podline.default_store()`` is new per page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from podline.stores import Store

from .snippets import SLOW, SnippetError, forget_modules_under, parse_page, run_page

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _param(path: Path) -> object:
    name = path.relative_to(ROOT).as_posix()
    lines = path.read_text("utf-8").splitlines()
    slow = [pytest.mark.slow] if any(line.strip() == SLOW for line in lines) else []
    return pytest.param(path, id=name, marks=slow)


@pytest.mark.parametrize("path", [_param(path) for path in PAGES])
def test_the_page_code_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        page = parse_page(path, path.relative_to(ROOT).as_posix())
    except SnippetError as exc:
        failure = str(exc)
    else:
        failure = ""
    if failure:  # outside the except block, so pytest shows the message alone
        pytest.fail(failure, pytrace=False)
    if not page.runnable:
        pytest.skip("no ```python block on this page")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PODLINE_STORE", str(tmp_path / ".podline"))
    namespace: dict[str, object] = {}
    try:
        run_page(page, namespace)
    except SnippetError as exc:
        failure = str(exc)
    finally:
        _close_stores(namespace)
        forget_modules_under(tmp_path)
    if failure:
        pytest.fail(failure, pytrace=False)


def _close_stores(namespace: dict[str, object]) -> None:
    """Flush and close what the page left open, before its directory goes away."""
    for value in namespace.values():
        if isinstance(value, Store) and not isinstance(value, type):  # not a store class
            value.close()
