"""Run a Python script and write its peak resident memory (MiB) to a file when it exits.

    python bench/peak_rss.py OUT_FILE SCRIPT [ARGS...]

The peak is the script's own VmHWM from /proc: ru_maxrss of a child also counts the memory of the process it
was forked from, which for a benchmark harness holding a large frame is far more than the child ever uses.
"""

from __future__ import annotations

import atexit
import resource
import runpy
import sys
from pathlib import Path


def peak_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: may include the parent's


if __name__ == "__main__":
    out, script, *args = sys.argv[1:]
    atexit.register(lambda: Path(out).write_text(f"{peak_mib():.1f}\n"))
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")
