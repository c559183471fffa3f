"""The README and docs/*.md are executable: every ```python block runs, in order, per file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "README.zh-CN.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_examples_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = BLOCK.findall(doc.read_text("utf-8"))
    if doc.name.startswith("README"):
        assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)  # examples write under build/: keep them out of the repo
    namespace: dict[str, object] = {"__name__": f"doc_{doc.stem}"}
    for number, code in enumerate(blocks, 1):
        try:
            exec(compile(code, f"{doc.name}[block {number}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{doc.name} block {number} failed: {exc!r}\n{code}") from exc


def test_readme_opens_with_the_two_commands() -> None:
    text = (REPO / "README.md").read_text("utf-8")
    assert "make demo" in text and "make test" in text
    ci = (REPO / ".ci" / "run").read_text("utf-8")
    assert "make test" in ci.splitlines()[-1]
