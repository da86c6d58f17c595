"""Reuse: one cache, asked in two places.

A step is reused when a FINISHED run of it carries the same **cache key** (``keys``: the step's code, its resolved
parameters, the environment and its inputs' digests), kept on the run as tags, so any machine sharing the
tracking server can reuse it. What is costly to find again is remembered **on this machine by file stat**
(``local``): a file's digest (the input part of a key), and after a run that ended well, the answer "every key
still matches" for the whole command, given before MLflow is imported. A stat that changed sends the question
back to the keys. Standard library only: the up-to-date path imports this package and nothing heavier.
"""

from mlsteps.reuse.keys import RESULT_LIBRARIES, CacheKey, code_digest, import_closure, make_key
from mlsteps.reuse.local import DigestCache, UpToDate, applies, check, fingerprint, record, state_dir

__all__ = [
    "RESULT_LIBRARIES",
    "CacheKey",
    "DigestCache",
    "UpToDate",
    "applies",
    "check",
    "code_digest",
    "fingerprint",
    "import_closure",
    "make_key",
    "record",
    "state_dir",
]
