"""Docs name every setting and every metric; a new one without docs fails here."""

from __future__ import annotations

import re
from pathlib import Path

from sightline.config import Settings
from sightline.store.base import METRICS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`SIGHTLINE_{name.upper()}`" in text, name


def test_every_metric_is_documented() -> None:
    text = (DOCS / "api.md").read_text()
    for name in METRICS:
        assert f"`{name}`" in text, name


def test_readme_starts_with_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert readme.index("make demo") < readme.index("make test") < 1500


def _curl_commands(text: str) -> list[str]:
    """Each ``curl`` command of a markdown text, its backslash-continued lines joined."""
    out = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if re.search(r"\bcurl\b", lines[i]):
            cmd = lines[i]
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd += "\n" + lines[i]
            out.append(cmd)
        i += 1
    return out


def test_every_curl_that_sends_json_says_so() -> None:
    """``curl -d`` alone sends application/x-www-form-urlencoded, which the API answers 415."""
    files = [DOCS.parent / "README.md", *sorted(DOCS.glob("*.md"))]
    sending = []
    for f in files:
        for cmd in _curl_commands(f.read_text()):
            if re.search(r"(^|\s)(-d|--data|--data-raw|--data-binary)(\s|=|')", cmd):
                sending.append(cmd)
                assert re.search(r"-H\s+['\"]content-type:\s*application/json['\"]", cmd, re.I), (
                    f"{f.name}: {cmd}"
                )
    assert len(sending) >= 10  # the docs' examples were found


def _anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings (lowercase, punctuation dropped,
    spaces to dashes)."""
    out = set()
    in_code = False
    for line in doc.read_text().split("\n"):
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6}\s+(.*)", line)):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def test_every_docs_path_the_code_and_pages_name_exists() -> None:
    """A page or message that says "see docs/x.md#y" names a file and heading that exist."""
    src = DOCS.parent / "src" / "sightline"
    named = []
    for f in sorted(src.rglob("*")):
        if f.suffix not in (".py", ".html", ".js", ".txt") or not f.is_file():
            continue
        for m in re.finditer(r"docs/([\w./-]+\.md)(?:#([\w-]+))?", f.read_text()):
            named.append(m.group(0))
            doc = DOCS / m.group(1)
            where = f"{f.relative_to(src)}: {m.group(0)}"
            assert doc.is_file(), where
            if m.group(2):
                assert m.group(2) in _anchors(doc), where
    assert any(n.startswith("docs/cost.md#") for n in named)  # the cost page's budgets link
    assert len(named) > 20  # the references were found
