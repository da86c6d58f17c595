"""Run ``src/main.py`` and write the process's resident memory (MiB) at the moment a step starts reading its
inputs: the memory of the interpreter and its libraries, before any data.

    python bench/start_rss.py OUT_FILE src/main.py [ARGS...]

Run through bench/peak_rss.py, the peak less this is the memory the step's data work took.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    out, script, *args = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent.parent))
    import mlsteps.pipeline

    original = mlsteps.pipeline.load_inputs

    def load_inputs(*a: Any, **kw: Any) -> Any:
        if not Path(out).exists():  # the first step's start
            Path(out).write_text(f"{rss_mib():.1f}\n")
        return original(*a, **kw)

    mlsteps.pipeline.load_inputs = load_inputs  # type: ignore[assignment]
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
