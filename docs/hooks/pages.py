"""MkDocs hooks of the documentation site (``mkdocs.yml``): pages made from files outside ``docs/``.

- ``index.md`` is the repository's README, its links into ``docs/`` made relative to the site;
- ``tutorial.md`` is ``docs/tutorial.py`` (a Jupytext percent script) converted to Markdown with Jupytext,
  unexecuted (the test suite executes it: ``tests/test_tutorial.py``);
- links from a page to ``../README.md`` point at the home page;
- the docstrings' Sphinx roles (``:func:`name```, ``:class:`~a.b.C```) show as code (``name``, ``C``).
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TUTORIAL = "tutorial.py"


def readme_page() -> str:
    """The README with its ``docs/...`` links made relative to ``docs/`` (where the home page lives)."""
    return re.sub(r"\]\(docs/", "](", README.read_text(encoding="utf-8"))


def tutorial_page(script: Path) -> str:
    """The tutorial script as Markdown: its Markdown cells as they are, its code cells as Python blocks."""
    import jupytext

    notebook = jupytext.read(script)
    notebook.metadata = {}
    text = jupytext.writes(notebook, fmt="md")
    return re.sub(r"\A---\n.*?\n---\n+", "", text, flags=re.DOTALL)  # no front matter left to MkDocs


def on_files(files, config):
    files.append(File.generated(config, "index.md", content=readme_page()))
    script = Path(config["docs_dir"]) / TUTORIAL
    if script.is_file():
        files.append(File.generated(config, "tutorial.md", content=tutorial_page(script)))
    return files


def on_page_markdown(markdown, page, config, files):
    return re.sub(r"\]\(\.\./README\.md(#[^)]*)?\)", lambda m: f"](index.md{m.group(1) or ''})", markdown)


#: A Sphinx role left in the HTML of a docstring: ``:func:<code>name</code>``.
ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):(<code>)(~?)([^<]*)</code>")


def on_page_content(html, page, config, files):
    def code(match: re.Match) -> str:
        name = match.group(3).rsplit(".", 1)[-1] if match.group(2) else match.group(3)
        return f"{match.group(1)}{name}</code>"

    return ROLE.sub(code, html)
