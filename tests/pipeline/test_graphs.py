"""Pipeline graphs (``podline.pipeline.graph_render``): Mermaid and DOT text against golden
files, SVG drawn by the real ``dot`` and read back as XML, hostile labels that must not change
a drawing's structure, counts and colours after runs, and the Jupyter display forms.

Set ``PODLINE_UPDATE_GOLDEN=1`` to rewrite the golden files after a deliberate change (and
read the diff).
"""

from __future__ import annotations

import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import podline
from podline import SKIP, function_pod
from podline.errors import ConfigurationError, GraphError, MissingDependencyError
from podline.pipeline import NodeCounts, Pipeline
from podline.pipeline.graph_render import (
    STATE_COLOURS,
    GraphDrawing,
    GraphNode,
    dot_available,
    render_svg,
)
from podline.stores import DeltaStore, MemoryStore, Store

GOLDEN = Path(__file__).parent / "graphs_golden"
SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = [
    'say "hi"',
    "a --> b",
    "[x] {y} (z) <w>",
    "line\nbreak\ttab",
    "<script>alert(1)</script>",
    "#quot; &amp; ; \\ %% :::",
    "émoji 🚀 中文",
    "rtl\u202eevil",
    "esc\x1b[31mred",
    "\\N \\G \\\\ \\l",
]
FAILS_ON = {3}


@function_pod("doubled", version="v1")
def double(x: int) -> int:
    if x in FAILS_ON:
        raise ValueError(f"bad {x}")
    return 2 * x


@function_pod("tripled")
def triple(x: int) -> int:
    return 3 * x


@function_pod("total")
def add(doubled: int, tripled: int) -> int:
    return doubled + tripled


@function_pod("halved")
def halve(doubled: int) -> int:
    return SKIP if doubled == 0 else doubled // 2


def numbers(n: int = 5, label: str = "numbers") -> podline.DictSource:
    return podline.DictSource([{"id": i, "x": i} for i in range(n)], ["id"], label=label)


def letters() -> podline.DictSource:
    return podline.DictSource(
        [{"id": i, "letter": "abcde"[i]} for i in range(5)], ["id"], label="letters"
    )


def linear(store: Store) -> Pipeline:
    with Pipeline("linear", store) as pipeline:
        halve.pod(double.pod(numbers()))
    return pipeline


def join(store: Store) -> Pipeline:
    with Pipeline("join", store) as pipeline:
        joined = numbers().join(letters())
        double.pod(joined)
    return pipeline


def diamond(store: Store) -> Pipeline:
    with Pipeline("diamond", store) as pipeline:
        source = numbers()
        both = double.pod(source).join(triple.pod(source), label="both")
        add.pod(both)
    return pipeline


def batch(store: Store) -> Pipeline:
    with Pipeline("batch", store) as pipeline:
        double.pod(numbers()).batch(batch_size=2, label="pairs")
    return pipeline


def hostile(store: Store) -> Pipeline:
    with Pipeline("hostile", store) as pipeline:
        stream = numbers(label=HOSTILE[0])
        for i, label in enumerate(HOSTILE[1:]):
            pod, output = (double, "doubled") if i % 2 == 0 else (triple, "tripled")
            stream = pod.pod(stream, label=label).map_packets({output: "x"})
    return pipeline


PIPELINES = {"linear": linear, "join": join, "diamond": diamond, "batch": batch}
PIPELINES["hostile"] = hostile


@pytest.fixture
def dot() -> None:
    """Skips a test that needs Graphviz's ``dot`` where it is missing; fails instead where
    services are required (``.ci/run`` installs both the program and the package)."""
    if dot_available():
        return
    missing = "Graphviz's dot program or the graphviz package is missing (apt-get install "
    missing += "graphviz; pip install 'podline[graphs]')"
    if os.environ.get("PODLINE_REQUIRE_SERVICES"):
        pytest.fail(missing)
    pytest.skip(missing)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PODLINE_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: run with PODLINE_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_mermaid_and_dot_text_match_the_golden_files(name: str) -> None:
    pipeline = PIPELINES[name](MemoryStore())
    assert pipeline.graph is not None
    check_golden(f"{name}.mmd", pipeline.graph.to_mermaid())
    check_golden(f"{name}.dot", pipeline.graph.to_dot())
    # Deterministic: the same definition compiled again draws the same text.
    again = PIPELINES[name](MemoryStore())
    assert again.graph is not None
    assert again.graph.to_mermaid() == pipeline.graph.to_mermaid()


def test_counts_after_a_run_match_the_golden_files() -> None:
    pipeline = diamond(MemoryStore())
    result = pipeline.run(run_id="golden")
    drawing = pipeline.show_graph(result)
    check_golden("diamond-run.mmd", drawing.to_mermaid())
    check_golden("diamond-run.dot", drawing.to_dot())
    check_golden("diamond-run.txt", drawing.to_text())


def mermaid_labels(text: str) -> list[str]:
    """The label of every node statement, entities decoded; asserts the statement's form."""
    labels = []
    opening, closing = r'(?:\[\("|\("|\{\{")', r'(?:"\)\]|"\)|"\}\})'
    node = re.compile(rf'^    n\d+{opening}([^"\n<>]*(?:<br>[^"\n<>]*)*){closing}$')
    other = re.compile(r"    (n\d+ --> n\d+|classDef \w+ [\w:#,]+|class [n\d,]+ \w+)")
    for line in text.splitlines()[1:]:
        match = node.match(line)
        if match:
            decoded = re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), match.group(1))
            labels.append(decoded)
        else:
            assert other.fullmatch(line)
    return labels


def test_hostile_labels_keep_the_structure_and_read_back_as_written() -> None:
    pipeline = hostile(MemoryStore())
    assert pipeline.graph is not None
    drawing = pipeline.show_graph()
    nodes = drawing.nodes
    assert [n.label for n in nodes if n.kind == "function"] == HOSTILE[1:]
    labels = mermaid_labels(drawing.to_mermaid())
    assert len(labels) == len(nodes)
    # Every node's first line reads back as its label, control characters made visible.
    firsts = [label.split("<br>")[0] for label in labels]
    assert firsts == [drawing.lines(n)[0] for n in nodes]
    assert "line\\nbreak\\ttab" in firsts
    assert "rtl\\u202eevil" in firsts
    assert "esc\\x1b[31mred" in firsts
    text = drawing.to_text()
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert text.count("\n") == len(nodes) + 1
    dot = drawing.to_dot()
    assert len(re.findall(r"^    n\d+ \[", dot, re.MULTILINE)) == len(nodes)
    assert "<script>" not in dot
    assert "\x1b" not in dot


@pytest.mark.usefixtures("dot")
def test_hostile_labels_drawn_by_dot_read_back_as_written() -> None:
    drawing = hostile(MemoryStore()).show_graph()
    root = ET.fromstring(drawing.to_svg().encode())
    groups = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "node"]
    assert [g.find(f"{SVG_NS}title").text for g in groups] == [  # type: ignore[union-attr]
        f"n{i}" for i in range(len(drawing.nodes))
    ]
    for group, node in zip(groups, drawing.nodes, strict=True):
        texts = [t.text for t in group.iter(f"{SVG_NS}text")]
        assert texts == drawing.lines(node)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4, unique=True))
@example(["]", "]]"])  # Graphviz refused a label of only "]" characters
def test_any_labels_read_back_from_mermaid_and_dot(labels: list[str]) -> None:
    nodes = [GraphNode(labels[0], "source", "S")]
    nodes += [GraphNode(label, "function", "f v0", (labels[0],)) for label in labels[1:]]
    drawing = GraphDrawing(tuple(nodes), {labels[0]: NodeCounts(rows=2)})
    read = mermaid_labels(drawing.to_mermaid())
    assert read == ["<br>".join(drawing.lines(n)) for n in nodes]
    if dot_available():
        root = ET.fromstring(drawing.to_svg().encode())
        groups = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "node"]
        for group, node in zip(groups, nodes, strict=True):
            # dot writes the second of two spaces as a no-break space, as SVG needs (a
            # no-break space in a label is drawn as the escape \xa0, so none is real).
            shown = [t.text.replace("\xa0", " ") for t in group.iter(f"{SVG_NS}text")]  # type: ignore[union-attr]
            assert shown == drawing.lines(node)


def node_line(dot: str, drawing: GraphDrawing, label: str) -> str:
    index = [n.label for n in drawing.nodes].index(label)
    return next(line for line in dot.splitlines() if line.startswith(f"    n{index} ["))


def test_counts_and_colours_follow_each_run() -> None:
    store = MemoryStore()
    pipeline = linear(store)
    first = pipeline.show_graph()
    assert {first.state(n) for n in first.nodes} == {"not run"}
    assert "classDef" not in first.to_mermaid()

    result = pipeline.run(run_id="first")
    drawing = pipeline.show_graph(result)
    states = {n.label: drawing.state(n) for n in drawing.nodes}
    assert states == {"numbers": "ran", "double": "failed", "halve": "computed"}
    assert drawing.title == "linear, run first"
    lines = {n.label: drawing.lines(n)[-1] for n in drawing.nodes}
    assert lines == {
        "numbers": "5 rows",
        "double": "4 computed, 1 failed",
        "halve": "3 computed, 1 skipped",
    }
    dot = drawing.to_dot()
    fill, stroke = STATE_COLOURS["failed"]
    assert f'fillcolor="{fill}", color="{stroke}"' in node_line(dot, drawing, "double")
    mermaid = drawing.to_mermaid()
    assert f"classDef failed fill:{fill},stroke:{stroke}" in mermaid
    assert "class n1 failed" in mermaid

    FAILS_ON.clear()
    try:
        pipeline.run(run_id="second")  # the failed packet computes; the rest is cached
        pipeline.run(run_id="third")  # everything cached
    finally:
        FAILS_ON.add(3)
    # From the store: the latest recorded run of this graph.
    stored = pipeline.show_graph()
    assert stored.title == "linear, run third"
    assert {n.label: stored.state(n) for n in stored.nodes}["double"] == "cached"
    assert "class n1,n2 cached" in stored.to_mermaid()
    assert stored.lines(stored.nodes[1])[-1] == "5 cached"
    assert pipeline.show_graph(counts=False).counts == {}


def test_a_fresh_pipeline_object_reads_the_counts_of_the_same_graph_only(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store")
    linear(store).run(run_id="earlier")
    store.close()
    fresh = linear(DeltaStore(tmp_path / "store"))  # as a new process would define it
    assert fresh.show_graph().title == "linear, run earlier"
    assert fresh.show_graph().counts["double"].failed == 1
    with fresh:  # another node: another graph, whose runs are none yet
        triple.pod(numbers())
    extended = fresh.show_graph()
    assert extended.title == "linear"
    assert extended.counts == {}


def test_node_counts_reads_one_run_per_node(store: Store) -> None:
    pipeline = batch(store)
    assert pipeline.observations.node_counts().height == 0
    pipeline.run(run_id="a")
    FAILS_ON.clear()
    try:
        pipeline.run(run_id="b")
    finally:
        FAILS_ON.add(3)
    latest = pipeline.observations.node_counts()
    assert latest["node"].to_list() == ["double", "numbers", "pairs"]
    assert set(latest["run_id"]) == {"b"}
    assert latest.filter(node="double").row(0, named=True)["computed"] == 1
    first = pipeline.observations.node_counts("a")
    assert first.filter(node="double").row(0, named=True)["failed"] == 1
    assert pipeline.observations.node_counts(pipeline_uri="other@0").height == 0


@pytest.mark.usefixtures("dot")
def test_svg_is_drawn_by_dot_with_each_state_colour() -> None:
    pipeline = diamond(MemoryStore())
    drawing = pipeline.show_graph(pipeline.run())
    root = ET.fromstring(drawing.to_svg().encode())
    fills = {}
    for group in root.iter(f"{SVG_NS}g"):
        if group.get("class") == "node":
            title = group.find(f"{SVG_NS}title").text  # type: ignore[union-attr]
            shape = next(e for e in group if e.tag != f"{SVG_NS}title")
            fills[title] = shape.get("fill")
    expected = {f"n{i}": STATE_COLOURS[drawing.state(n)][0] for i, n in enumerate(drawing.nodes)}
    assert fills == expected
    assert STATE_COLOURS["failed"][0] in fills.values()


@pytest.mark.usefixtures("dot")
def test_jupyter_forms_with_dot() -> None:
    pipeline = batch(MemoryStore())
    pipeline.run()
    drawing = pipeline.show_graph()
    bundle = drawing._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "image/svg+xml", "text/html"}
    assert bundle["image/svg+xml"] == drawing._repr_svg_() == drawing.to_svg()
    assert bundle["text/html"] == drawing._repr_html_()
    assert bundle["text/html"].startswith("<div><svg")
    assert bundle["text/plain"] == str(drawing) == drawing.to_text()
    # A pipeline displays as its graph, with its latest run's counts; its plain text stays
    # its repr. Its graph displays the same drawing without counts.
    shown = pipeline._repr_mimebundle_()
    assert set(shown) == {"image/svg+xml", "text/html"}
    assert "4 computed, 1 failed" in shown["image/svg+xml"]
    assert pipeline.graph is not None
    graph_bundle = pipeline.graph._repr_mimebundle_()
    assert "computed" not in graph_bundle["image/svg+xml"]
    assert graph_bundle["text/plain"] == pipeline.graph.to_text()


def test_jupyter_forms_without_dot_fall_back_to_mermaid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert not dot_available()
    pipeline = batch(MemoryStore())
    drawing = pipeline.show_graph()
    bundle = drawing._repr_mimebundle_()
    assert bundle == {"text/plain": drawing.to_text(), "text/vnd.mermaid": drawing.to_mermaid()}
    assert drawing._repr_svg_() is None
    assert drawing._repr_html_() is None  # so JupyterLab draws the Mermaid form
    assert pipeline._repr_mimebundle_() == {"text/vnd.mermaid": drawing.to_mermaid()}
    with pytest.raises(MissingDependencyError, match="apt-get install graphviz"):
        drawing.to_svg()


def test_svg_without_the_graphviz_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(MissingDependencyError, match=re.escape("pip install 'podline[graphs]'")):
        render_svg("digraph { a }")


def test_save_chooses_the_format_by_suffix(tmp_path: Path) -> None:
    drawing = linear(MemoryStore()).show_graph()
    assert drawing.save(tmp_path / "g.mmd").read_text() == drawing.to_mermaid()
    assert drawing.save(tmp_path / "g.gv").read_text() == drawing.to_dot()
    assert drawing.save(tmp_path / "g.txt").read_text() == drawing.to_text()
    assert drawing.save(tmp_path / "g", format="dot").read_text() == drawing.to_dot()
    with pytest.raises(ConfigurationError, match=r"'\.svg'"):
        drawing.save(tmp_path / "g.png")


def test_a_drawing_from_plain_nodes_is_checked() -> None:
    source = GraphNode("a", "source", "DictSource")
    with pytest.raises(GraphError, match="repeated: 'a'"):
        GraphDrawing((source, source))
    with pytest.raises(GraphError, match="not in the graph: 'b'"):
        GraphDrawing((source, GraphNode("c", "function", "f v0", ("b",))))
    with pytest.raises(GraphError, match="unknown node kind"):
        GraphDrawing((GraphNode("a", "table", ""),))  # type: ignore[arg-type]
    empty = GraphDrawing(())
    assert empty.to_mermaid() == "flowchart TD\n"
    assert empty.to_text() == "pipeline graph: 0 nodes\n"
