"""Memory freed by a step goes back to the operating system (glibc and pyarrow allocators configured)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest
from mlsteps.config import REPO_ROOT

PROBE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    if sys.argv[1] == "configured":
        from mlsteps.memory import return_freed_memory
        return_freed_memory()
    import numpy as np
    import pyarrow as pa

    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

    big = np.ones(1 << 20)  # 8 MiB freed: glibc's mmap threshold grows past the arrays below
    del big
    before = rss()
    arrays, kept = [], []
    # 200 MiB of 4 MiB arrays, each followed by a 256 KiB array that stays (12.5 MiB in all): too large for a
    # hole the imports left in the heap, so it lands between them and the heap's top cannot be trimmed.
    for _ in range(50):
        arrays.append(np.ones(1 << 19))
        kept.append(np.ones(1 << 15))
    del arrays
    print(pa.default_memory_pool().backend_name, round(rss() - before))
    """
)


def _probe(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(root=str(REPO_ROOT)), mode],
        capture_output=True,
        text=True,
        check=True,
        # glibc's defaults, whatever ran before in this process: starting a Dask LocalCluster sets
        # MALLOC_TRIM_THRESHOLD_ in os.environ, and a child inheriting it trims its heap as configured.
        env={k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL" and not k.startswith("MALLOC_")},
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc is the one configured")
def test_freed_arrays_go_back_to_the_system_once_configured() -> None:
    pool, kept_mib = _probe("configured")
    default_pool, default_kept_mib = _probe("default")

    assert pool == "system"
    assert kept_mib < 30
    # Without it, the 200 MiB stay in the process: what the configuration is for.
    assert default_pool != "system"
    assert default_kept_mib > 150


def test_a_pool_the_user_chose_is_kept(monkeypatch) -> None:
    import os

    from mlsteps.memory import return_freed_memory

    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    monkeypatch.setattr(sys, "platform", "darwin")  # leaves this process's malloc as it is

    assert return_freed_memory() is False
    assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "jemalloc"
