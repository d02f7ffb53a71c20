"""The generated documentation matches the committed reports: the README's headline figures and
docs/benchmarks.md are what ``python -m benchmarks docs`` makes of ``benchmarks/results``, so a
hand edit (or a new report committed without rerunning the generator) fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import docs, headline
from benchmarks.report import RESULTS

REPO = Path(__file__).resolve().parents[2]
FIX = "run `python -m benchmarks docs` to regenerate it from benchmarks/results"


def test_readme_headline_figures_are_generated_from_the_reports() -> None:
    readme = (REPO / "README.md").read_text()
    assert headline.current(readme) == headline.render().strip(), f"README headline figures are stale: {FIX}"


def test_benchmarks_page_is_generated_from_the_reports() -> None:
    page = REPO / "docs" / "benchmarks.md"
    expected = docs.render(RESULTS / "latency", RESULTS / "accuracy", page)
    assert page.read_text() == expected, f"docs/benchmarks.md is stale: {FIX}"


def test_splice_replaces_only_the_block() -> None:
    text = f"# title\n\nbefore\n{headline.START}\nold | table\n{headline.END}\nafter\n"
    out = headline.splice(text, "new block\n")
    assert out == f"# title\n\nbefore\n{headline.START}\nnew block\n{headline.END}\nafter\n"
    assert headline.current(out) == "new block"
    assert headline.splice(out, "new block") == out


@pytest.mark.parametrize("text", ["no markers", f"{headline.END}\n{headline.START}\n",
                                  f"{headline.START}\n{headline.START}\n{headline.END}\n"])
def test_splice_refuses_a_readme_without_one_block(text: str) -> None:
    with pytest.raises(ValueError, match="headline-figures"):
        headline.splice(text, "x")


def test_docs_command_rewrites_the_readme_it_is_given(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{headline.START}\nhand-typed numbers\n{headline.END}\nrest\n")
    before = (REPO / "README.md").read_text()
    assert docs.main(["--out", str(tmp_path / "benchmarks.md"), "--readme", str(readme)]) == 0
    assert headline.current(readme.read_text()) == headline.render().strip()
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("\nrest\n")
    # a page written elsewhere leaves the repository's README alone unless --readme names it
    assert docs.main(["--out", str(tmp_path / "other.md")]) == 0
    assert (REPO / "README.md").read_text() == before
