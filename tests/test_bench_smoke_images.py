"""scripts/bench_images still runs: its --quick mode does every step on a tiny photo."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_images"


def test_bench_images_quick_prints_its_numbers() -> None:
    done = subprocess.run(
        [str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = re.search(r"^result: (\d+(?:\.\d+)?) ms/photo", done.stdout, re.MULTILINE)
    assert result and float(result.group(1)) > 0, done.stdout
    assert re.search(r"ratio process_image / full decode: \d+\.\d+", done.stdout), done.stdout
    assert re.search(r"= \d+(?:\.\d+)? photos/s", done.stdout), done.stdout
