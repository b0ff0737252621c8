"""Every input the fuzzer ever failed on, and every corpus file, through the whole pipeline.

A file in tests/fuzz/regressions/ is a bug that was found once: it must now be refused with a
typed error or come out as a sound image, like any other input (see target.check).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.target import check, corpus_files

REGRESSIONS = Path(__file__).resolve().parent / "regressions"
INPUTS = sorted(REGRESSIONS.glob("*.bin")) + corpus_files()


@pytest.mark.parametrize("path", INPUTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_pipeline_survives(path: Path) -> None:
    check(path.read_bytes())
