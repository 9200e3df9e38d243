"""Start-up cost of the command line: ``digest --version`` (and ``--help``) against
``python -c "import click"``, side by side, in CPU seconds of the child process (user +
system, so a busy machine slows the wall clock but hardly these figures).

The target (issue 12 §5): ``digest --version`` within 3× bare click's start-up.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

#: ``digest --version`` may cost at most this many times ``python -c "import click"``.
VERSION_FACTOR = 3.0


def _digest_command() -> list[str]:
    """The installed ``digest`` script next to this Python, else ``python -m digest.cli``."""
    script = Path(sys.executable).with_name("digest")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "digest.cli"]


def cpu_seconds(argv: list[str]) -> float:
    """User + system CPU seconds of one run of ``argv`` (which must exit 0)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}")
    return usage.ru_utime + usage.ru_stime


def median_cpu(argv: list[str], runs: int) -> float:
    cpu_seconds(argv)  # warm the file cache (and .pyc files) first
    return statistics.median(cpu_seconds(argv) for _ in range(runs))


def measure(runs: int = 7) -> dict[str, Any]:
    digest = _digest_command()
    click_s = median_cpu([sys.executable, "-c", "import click"], runs)
    version_s = median_cpu([*digest, "--version"], runs)
    help_s = median_cpu([*digest, "--help"], max(1, runs // 2))
    return {
        "runs": runs,
        "click_s": round(click_s, 3),
        "version_s": round(version_s, 3),
        "help_s": round(help_s, 3),
        "version_ratio": round(version_s / click_s, 2) if click_s else None,
        "help_ratio": round(help_s / click_s, 2) if click_s else None,
    }


__all__ = ["VERSION_FACTOR", "measure"]
