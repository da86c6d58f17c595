"""Memory a step frees goes back to the operating system, so that a process's peak RSS is the data it holds.

Two allocators keep what a process frees, and a pipeline step that reads a large table frees a lot:
- pyarrow's default pool (mimalloc or jemalloc) keeps freed pages for later allocations: reading 150 MiB of
  Parquet into pandas left the process about 380 MiB larger;
- glibc's malloc serves large arrays with mmap (returned on free) only until one is freed; its threshold then
  grows to the size of the freed array (up to 32 MiB), and arrays below it come from the heap, whose free pages
  stay in the process.

``return_freed_memory`` gives pyarrow its system pool (malloc) and fixes glibc's mmap threshold at 1 MiB (every
column of a large frame is an mmap of its own, unmapped when freed). Measured on the 1M-row synthetic data:
reading its train and test splits (153 MiB in pandas) left the process 383 MiB larger before, 169 MiB after.
Call it first thing in a process that owns its memory (``src/main.py`` does); it changes nothing for a pyarrow
pool already in use, nor on a C library other than glibc. ``ARROW_DEFAULT_MEMORY_POOL`` set by the user is kept.
"""

from __future__ import annotations

import os
import sys

# Arrays of at least this many bytes are mapped on their own and unmapped when freed (glibc's M_MMAP_THRESHOLD).
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3


def return_freed_memory() -> bool:
    """Configure both allocators (see the module's doc). True when glibc's threshold was set."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
