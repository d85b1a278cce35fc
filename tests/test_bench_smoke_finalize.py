"""scripts/bench_finalize still runs: its --smoke mode times every series on both databases."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_finalize"


def test_bench_finalize_smoke_prints_its_numbers() -> None:
    done = subprocess.run(
        [str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    for kind in ("sqlite", "postgres"):
        line = re.search(rf"^{kind} +3 images .*$", done.stdout, re.MULTILINE)
        assert line, done.stdout
        for series in ("baseline", "finalize", "http"):
            assert re.search(rf"{series} +\d+\.\d ms \(min", line.group(0)), line.group(0)
        assert re.search(r"ratio finalize/baseline \d+\.\d\d", line.group(0)), line.group(0)
        assert re.search(rf"^result: {kind} finalize median 3: \d+\.\d ms", done.stdout, re.M)
