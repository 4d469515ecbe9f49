"""The docs snippet runner itself: what it runs, what it skips, and how it reports failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .snippets import SnippetError, forget_modules_under, parse_page, run_page

FENCE = "```"


def _page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text.replace("'''", FENCE), encoding="utf-8")
    return path


def test_blocks_share_one_namespace_in_page_order_and_markers_skip_or_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _page(
        tmp_path,
        "# A page\n\n'''python\nx = 1\n'''\n\n<!-- podline: no-run -->\n\n'''python\n"
        "raise RuntimeError('never runs')\n'''\n\n'''bash\nexit 1\n'''\n\n"
        "<!-- podline: file helpers/numbers_mod.py -->\n'''python\nTWO = 2\n'''\n\n"
        "1. In a list:\n\n    '''python\n    from helpers.numbers_mod import TWO\n"
        "    y = x + TWO\n    '''\n",
    )
    page = parse_page(path, "page.md")
    assert [(b.language, b.line, b.no_run, b.file) for b in page.blocks] == [
        ("python", 4, False, None),
        ("python", 10, True, None),
        ("bash", 14, False, None),
        ("python", 19, False, "helpers/numbers_mod.py"),
        ("python", 25, False, None),
    ]
    namespace = run_page(page)
    assert (namespace["x"], namespace["y"]) == (1, 3)
    assert (tmp_path / "helpers" / "numbers_mod.py").read_text() == "TWO = 2\n"
    # helpers is a namespace package (no __init__.py): it has no __file__, only a __path__.
    assert {"helpers", "helpers.numbers_mod"} <= set(sys.modules)
    forget_modules_under(tmp_path)
    assert not {"helpers", "helpers.numbers_mod"} & set(sys.modules)


def test_a_failure_names_the_page_and_the_markdown_line(tmp_path: Path) -> None:
    path = _page(
        tmp_path,
        "Text.\n\n'''python\ndef f():\n    return undefined_name\n'''\n\n"
        "'''python\nok = 1\nf()\n'''\n",
    )
    with pytest.raises(SnippetError) as caught:
        run_page(parse_page(path, "docs/page.md"))
    message = str(caught.value)
    assert message.startswith(
        "docs/page.md, line 5 (in the block at line 9) raised NameError: "
        "name 'undefined_name' is not defined"
    )
    # The traceback starts in the page and quotes its lines, not the runner's frames.
    assert f'File "{path}", line 10, in <module>' in message
    assert "    return undefined_name" in message
    assert "snippets.py" not in message


def test_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _page(tmp_path, "'''python\nx = (\n'''\n")
    with pytest.raises(SnippetError, match=r"^page\.md, line 2: the block at line 2 is not valid"):
        run_page(parse_page(path, "page.md"))


def test_functions_defined_in_a_page_have_a_code_identity(tmp_path: Path) -> None:
    # Code identity parses the function's file: the runner shows it the page's Python.
    path = _page(
        tmp_path,
        "'''python\nimport podline\n\n@podline.function_pod('double')\n"
        "def double(x: int) -> int:\n    return 2 * x\n\n"
        "rows = podline.DictSource([{'k': 1, 'x': 2}], tag_columns=['k'])\n"
        "out = double.pod(rows).as_table()\n'''\n",
    )
    namespace = run_page(parse_page(path, "page.md"))
    assert namespace["out"].column("double").to_pylist() == [4]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("'''py\nx = 1\n'''\n", r"page\.md, line 1: a ```py block is not run as a test"),
        ("'''pycon\n>>> 1\n'''\n", r"line 1: a ```pycon block is not run"),
        ("<!-- podline: no-run -->\nSome text.\n'''python\nx\n'''\n", r"line 1: .* must be right"),
        ("'''python\nx = 1\n'''\n<!-- podline: no-run -->\n", r"line 4: .* not followed"),
        ("<!-- podline: no-run -->\n'''bash\nls\n'''\n", r"precedes a ```bash block"),
        ("<!-- podline: file ../x.py -->\n'''python\nx\n'''\n", r"must be a relative path"),
        ("'''python\nx = 1\n", r"line 1: the code block opened here is never closed"),
    ],
)
def test_mistakes_in_a_page_are_errors(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(SnippetError, match=error):
        parse_page(_page(tmp_path, text), "page.md")


def test_a_slow_marker_marks_the_page(tmp_path: Path) -> None:
    assert parse_page(_page(tmp_path, "<!-- podline: slow -->\n"), "page.md").slow
    assert not parse_page(_page(tmp_path, "# fast\n"), "page.md").slow
