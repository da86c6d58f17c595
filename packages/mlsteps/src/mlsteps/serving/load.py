"""What one worker of ``serve`` holds and how far each request's scoring got: the load that /ping and /stats
report and that bounds work in flight (``mlsteps.serving.app`` admits, refuses and releases by it)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlsteps.serving.app import Scoring


class Expired(Exception):
    """Scoring stopped between two stages: its request's deadline had passed."""


@dataclass
class Progress:
    """How far one request's scoring got (written by its thread): a request whose deadline passes before its
    thread started the work is refused as saturated (503), one whose rows were being scored gets 504."""

    deadline: float  # time.perf_counter()
    stage: str = "waiting"  # then "parsing", "predicting", "done"

    def next(self, stage: str) -> None:
        if time.perf_counter() > self.deadline:
            raise Expired(self.stage)
        self.stage = stage


@dataclass
class Load:
    """What one worker holds right now, and what it refused; /ping and /stats report it."""

    requests: int = 0  # being read, waiting for a scoring thread, or scored
    body_bytes: int = 0  # request bodies held (declared by Content-Length, or read so far)
    scoring: int = 0  # scoring threads in use, abandoned ones (their request already answered) included
    abandoned: int = 0  # of those, scoring whose request was answered when its deadline passed (504, or 503)
    refused_requests: int = 0  # 503: serving.max_inflight_requests reached
    refused_bytes: int = 0  # 503: serving.max_inflight_mb reached
    refused_busy: int = 0  # 503: no scoring thread was free within the timeout
    refused_late: int = 0  # 503: the timeout passed before scoring could start (body still coming, loop busy)
    stopped: int = 0  # abandoned scoring that stopped before its next stage

    def report(self, scoring: Scoring) -> dict[str, Any]:
        saturated = (
            self.requests >= scoring.max_inflight_requests
            or self.body_bytes >= scoring.max_inflight_bytes
            or self.scoring >= scoring.scoring_threads
        )
        return {
            "worker": os.getpid(),  # which worker process answered: each has its own load and limits
            "saturated": saturated,
            "inflight_requests": self.requests,
            "max_inflight_requests": scoring.max_inflight_requests,
            "inflight_mb": round(self.body_bytes / 1e6, 3),
            "max_inflight_mb": scoring.max_inflight_bytes / 1e6,
            "scoring_threads_busy": self.scoring,
            "scoring_threads": scoring.scoring_threads,
            "scoring_abandoned": self.abandoned,
            "refused_503": {
                "max_inflight_requests": self.refused_requests,
                "max_inflight_mb": self.refused_bytes,
                "no_scoring_thread": self.refused_busy,
                "timeout_before_scoring": self.refused_late,
            },
            "scoring_stopped_after_timeout": self.stopped,
        }


class Held:
    """One request's share of the worker's load, given back once (when its scoring thread, if any, is done)."""

    def __init__(self, load: Load) -> None:
        self.load, self.bytes, self.open = load, 0, True
        self.handed = False  # to a scoring thread that outlives the request: it releases the share when done
        load.requests += 1

    def take_bytes(self, n: int) -> None:
        self.bytes += n
        self.load.body_bytes += n

    def release(self) -> None:
        if self.open:
            self.open = False
            self.load.requests -= 1
            self.load.body_bytes -= self.bytes
