"""Every repository file that a comment, a docstring or a document names exists.

The scanner reads the repository's text files (tracked, or untracked and not ignored): the
comments and docstrings of Python and Snakemake files, the comments of YAML, TOML and shell files,
and the whole text of Markdown and reStructuredText files. Every token that looks like a file name
or a relative path ending in a scanned extension must name a file of the repository, and a
`#section` after a Markdown file must name one of its headings. A name resolves relative to the
repository root, to the mentioning file's folder, as the tail of a tracked path (a layout listing
names `schemas/...` under its folder), or, without a folder, as a file name anywhere in the tree.
"""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCANNED_SUFFIXES = {".py", ".smk", ".md", ".yaml", ".yml", ".rst", ".sh", ".toml"}
SCANNED_NAMES = {"Snakefile"}  # Snakemake's entry point, a Python-like file without a suffix
WHOLE_TEXT = {".md", ".rst"}  # documents: every word counts, code blocks included

# A file name with optional folders, ending in a scanned extension, optionally followed by
# `#anchor`. It may not start inside a URL, a longer path or a template (`{study}/claims.md`),
# and may not continue into a longer name (`design.md.bak`); a sentence's full stop may follow.
REFERENCE = re.compile(
    r"(?<![\w./:@~${}<>*-])"
    r"((?:[\w.-]+/)*[\w-][\w.-]*\.(?:md|py|yaml|yml|smk|rst|sh|toml))"
    r"(?:#([\w-]+))?"
    r"(?!\.?[\w/-])"
)

# Outputs the workflow writes at run time. They are git-ignored, so a fresh clone lacks them;
# docs and comments may still name them.
GENERATED_PREFIXES = ("results/",)  # everything the workflow produces lives under results/
GENERATED_NAMES = {
    "claims.md",  # a study's claims with verdicts, written by gc/report.py under results/
}

# Placeholder and example names: files the docs ask the reader to write (the README's study
# that extends paper.yaml) or that stand for any file in a sentence.
EXAMPLES = {"more_cifar10.yaml", "a.yaml", "b.yaml", "OTHER.yaml", "NAME.yaml"}

# Files of other projects that comments and docs cite as sources; never files of this one.
EXTERNAL = {
    "training/networks.py": "NVlabs/edm: EDM's networks (docs/ect.md#sources)",
    "training/loss.py": "locuslab/ect: ECT's objective (docs/ect.md#sources)",
    "run_ecm_1hour.sh": "locuslab/ect: ECT's one-hour recipe (docs/ect.md#sources)",
}


def repository_files(root: Path) -> list[str]:
    """The checkout's files as git sees them: tracked, plus untracked ones not ignored."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({f for f in out.split("\0") if f and (root / f).is_file()})


def _scanned(path: str, root: Path) -> bool:
    p = Path(path)
    if p.suffix in SCANNED_SUFFIXES or p.name in SCANNED_NAMES:
        return True
    if p.suffix:
        return False
    try:  # scripts without a suffix (.ci/run): scanned as shell if they start with #!
        with open(root / path, "rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


def _hash_comments(text: str) -> list[tuple[int, str]]:
    """`#` comments of YAML, TOML and shell: (line, text) from the first `#` that starts a word."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        m = re.search(r"(?:^|\s)#(.*)$", line)
        if m:
            out.append((n, m.group(1)))
    return out


def _python_comments(text: str) -> list[tuple[int, str]]:
    """Comments of Python or Snakemake source (tokenize), falling back to `#` lines."""
    try:
        return [
            (tok.start[0], tok.string)
            for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type == tokenize.COMMENT
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _hash_comments(text)


def _docstrings(text: str) -> list[tuple[int, str]]:
    """Docstrings of a Python module, its classes and functions, with their first line."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                out.append((body[0].lineno, body[0].value.value))
    return out


def prose(path: str, text: str) -> list[tuple[int, str]]:
    """The parts of a file that speak to a reader: (first line, text) pieces."""
    suffix = Path(path).suffix
    if suffix in WHOLE_TEXT:
        return [(1, text)]
    if suffix == ".py":
        return _python_comments(text) + _docstrings(text)
    if suffix == ".smk" or Path(path).name in SCANNED_NAMES:
        return _python_comments(text)
    return _hash_comments(text)


def slug(heading: str) -> str:
    """A Markdown heading's anchor as GitHub writes it: lower case, punctuation dropped,
    spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown file's headings (ATX style, outside fenced code)."""
    out, fenced = set(), False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)):
            out.add(slug(m.group(1)))
    return out


def _resolve(name: str, mentioned_in: str, files: set[str]) -> str | None:
    """The repository file `name` refers to, or None."""
    for candidate in (name, os.path.normpath(os.path.join(os.path.dirname(mentioned_in), name))):
        if candidate in files:
            return candidate
    if "/" not in name:  # a bare file name: anywhere in the tree
        return next((f for f in sorted(files) if Path(f).name == name), None)
    # a partial path: the tail of a file's path, as a layout listing names it under its folder
    return next((f for f in sorted(files) if f.endswith("/" + name)), None)


def dangling_references(root: Path, files: list[str]) -> list[str]:
    """`path:line: name` for every file name in prose that names no file of the repository
    (nor a generated output or a cited file of another project), and for every `#section`
    that is not a heading of the Markdown file it follows."""
    present = set(files)
    problems = []
    for path in files:
        if not _scanned(path, root):
            continue
        text = (root / path).read_text(encoding="utf-8", errors="replace")
        for first_line, piece in prose(path, text):
            for m in REFERENCE.finditer(piece):
                name, anchor = m.group(1), m.group(2)
                line = first_line + piece.count("\n", 0, m.start())
                if name in EXTERNAL or name in GENERATED_NAMES or name in EXAMPLES:
                    continue
                if name.startswith(GENERATED_PREFIXES):
                    continue
                target = _resolve(name, path, present)
                if target is None:
                    problems.append(f"{path}:{line}: {name}")
                elif anchor and target.endswith(".md"):
                    if anchor not in anchors((root / target).read_text(encoding="utf-8")):
                        problems.append(f"{path}:{line}: {name}#{anchor} (no such section)")
    return problems


def test_every_file_named_in_comments_and_docs_exists():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    problems = dangling_references(ROOT, repository_files(ROOT))
    assert not problems, "named but missing from the repository:\n" + "\n".join(problems)


def test_design_notes_are_in_the_repository_and_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for doc in ("docs/design.md", "docs/ect.md"):
        assert (ROOT / doc).is_file()
        assert doc in readme
    # The sections the code cites by anchor.
    assert {"the-training-step", "evaluation-protocol", "paper-numbers", "paper-setups"} <= (
        anchors((ROOT / "docs/design.md").read_text())
    )


def _tree(tmp_path: Path, files: dict[str, str]) -> list[str]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return sorted(files)


def test_scanner_finds_dangling_names_and_sections(tmp_path):
    missing_design = "DESIGN" + ".md"  # built, so this file's own scan never sees them
    missing_doc = "docs/" + "missing.md"
    files = _tree(
        tmp_path,
        {
            "docs/design.md": "# Notes\n\n## The training step\n\nSee ../gc/mod.py.\n",
            "gc/mod.py": (
                f'"""Facts: {missing_design}; the step: docs/design.md#the-training-step."""\n'
                "\n"
                f"# See {missing_doc}, and docs/design.md#no-such-section.\n"
                f'NAME = "{missing_design}"  # a string, not prose: ignored. helper.py exists.\n'
                "# Writes results/claims.md and claims.md (generated); cites training/loss.py.\n"
                "# https://example.org/elsewhere/README.md is a URL, not a repository file.\n"
            ),
            "gc/helper.py": "def f():\n    '''Beside mod.py, in the same folder.'''\n",
            "workflow/config/a.yaml": f"x: 1  # notes in {missing_design}\n",
            "workflow/rules/r.smk": "# reads config/a.yaml and gone.smk\nrule all:\n    input: []\n",
            "README.md": f"Layout: rules/r.smk; docs in {missing_doc}.\n",
        },
    )
    problems = dangling_references(tmp_path, files)
    assert sorted(problems) == sorted(
        [
            f"gc/mod.py:1: {missing_design}",
            f"gc/mod.py:3: {missing_doc}",
            "gc/mod.py:3: docs/design.md#no-such-section (no such section)",
            f"workflow/config/a.yaml:1: {missing_design}",
            "workflow/rules/r.smk:1: gone.smk",
            f"README.md:1: {missing_doc}",
        ]
    )


def test_scanner_passes_a_tree_without_dangling_names(tmp_path):
    files = _tree(
        tmp_path,
        {
            "docs/design.md": "## Evaluation protocol\n",
            "gc/mod.py": "# docs/design.md#evaluation-protocol and mod.py\n",
        },
    )
    assert dangling_references(tmp_path, files) == []
    (tmp_path / "gc/mod.py").write_text("# docs/design.md and docs/ect.md\n")
    assert dangling_references(tmp_path, files) == ["gc/mod.py:1: docs/ect.md"]
