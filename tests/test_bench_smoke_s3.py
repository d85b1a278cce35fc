"""scripts/bench_s3 still runs: its --smoke mode does every step with tiny sizes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_s3"


def test_bench_s3_smoke_prints_its_numbers() -> None:
    done = subprocess.run(
        [str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"^ratio tus/boto3: \d+\.\d+ .*; parts gathered first: \d+\.\d+$", done.stdout, re.MULTILINE
    ), done.stdout
    assert re.search(r"^server RSS during \d+ MiB upload: .* peak \d+ MiB", done.stdout,
                     re.MULTILINE), done.stdout
