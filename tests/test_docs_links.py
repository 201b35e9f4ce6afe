"""Every relative link and image in README.md and docs/*.md resolves to a file of the
repository (and, with an anchor into a Markdown page, to one of its headings); every
``docs/...`` path they mention exists; no page points outside the repository for the method."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DOCS_PATH = re.compile(r"(?<![\w/.])docs/[\w./-]*\w")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
EXTERNAL = ("http://", "https://", "mailto:")


def pages(root: Path = REPO) -> list[Path]:
    """README.md and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page: lower case, punctuation dropped, spaces →
    hyphens (code blocks are not headings)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found = set()
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def broken(page: Path, root: Path = REPO) -> list[str]:
    """What in ``page`` does not resolve: relative links (file and anchor) and docs/ paths."""
    text = page.read_text(encoding="utf-8")
    problems = []
    for target in LINK.findall(text):
        if target.startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(root.resolve()):
            problems.append(f"{target}: outside the repository")
        elif not file.exists():
            problems.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{target}: no heading #{anchor} in {file.name}")
    for mention in DOCS_PATH.findall(LINK.sub("", text)):  # paths in prose, from the root
        if not (root / mention).exists():
            problems.append(f"{mention}: mentioned, but no such path")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_and_docs_path_resolves(page):
    assert broken(page) == []


def test_every_docs_page_is_reachable_from_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {(REPO / t.partition("#")[0]).resolve() for t in LINK.findall(readme)}
    assert [p.name for p in pages()[1:] if p.resolve() not in linked] == []


def test_the_method_lives_in_the_repository():
    method = (REPO / "docs" / "method.md").read_text(encoding="utf-8")
    assert "## The reverse model" in method and "## The spindle schedule" in method
    assert not any(t.startswith(EXTERNAL) for t in LINK.findall(method))
    outside = "shared" + "/docs"
    for path in REPO.rglob("*"):
        if path.suffix in {".py", ".md", ".sh"} and ".git" not in path.parts:
            assert outside not in path.read_text(encoding="utf-8", errors="replace"), path


def test_the_check_finds_what_is_broken(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Second part\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/a.md) [ok too](docs/a.md#second-part) [gone](docs/b.md) "
        "[bad anchor](docs/a.md#third) [web](https://example.org) [up](../x.md)\n"
        "See `docs/a.md` and `docs/c.md`.\n```\n# not a heading\n```\n"
    )
    assert broken(readme, tmp_path) == [
        "docs/b.md: no such file",
        "docs/a.md#third: no heading #third in a.md",
        "../x.md: outside the repository",
        "docs/c.md: mentioned, but no such path",
    ]
    assert anchors(readme) == set()


def test_the_readmes_toy_likelihood_is_the_committed_demo_bound():
    """The README's toy figure is the one bench/results/cpu_demo_bound.json records (and the
    docs' example prints), not a figure from an older run."""
    bound = json.loads((REPO / "bench/results/cpu_demo_bound.json").read_text())
    readme = (REPO / "README.md").read_text()
    assert (
        f"256 validation sentences): {bound['full_sequence_nats_per_token']:.2f} nats per" in readme
    )
    example = (REPO / "docs/likelihood.md").read_text()
    assert (
        f"{bound['given_length_nats_per_token']:.4f} ± {bound['given_length_se']:.4f}   "
        f"{bound['full_sequence_nats_per_token']:.4f} ± {bound['full_sequence_se']:.4f}"
    ) in example
