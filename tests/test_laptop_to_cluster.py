"""docs/laptop-to-cluster.md, executed: its ```py blocks run in order as one script,
with a real local Ray cluster and a real PostgreSQL + pgvector server, inside a
loopback-only network namespace (tests/netns.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REVIEWS_CSV
from netns import isolated_env, run_isolated

PAGE = Path(__file__).resolve().parents[1] / "docs" / "laptop-to-cluster.md"
BLOCK = re.compile(r"^```py\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.mark.slow
def test_the_page_runs_from_a_laptop_to_a_cluster(tmp_path: Path) -> None:
    blocks = BLOCK.findall(PAGE.read_text("utf-8"))
    assert len(blocks) == 4
    script = tmp_path / "page.py"
    script.write_text("\n".join(blocks), "utf-8")
    done = run_isolated(
        script,
        env=isolated_env({"EMBEDKIT_REVIEWS_CSV": str(REVIEWS_CSV)}),
        cwd=tmp_path,
        timeout=480,
    )
    out = done.stdout
    assert "1000 hashing?dim=256" in out
    assert "'count()': 1000" in out
    assert "ModelMismatchError" in out
    assert len(list((tmp_path / "build" / "embedded").glob("*.parquet"))) >= 1
