"""The engine a run's data steps use: pandas in this process (the default), or Dask on a cluster.

``engine_session(settings)`` is entered once per pipeline run. For ``engine.kind: dask`` it connects a Dask client
to ``engine.address`` or, without one, starts a LocalCluster of ``engine.workers`` worker processes (each with
``engine.memory_limit``, spilling to ``engine.spill_dir``) and closes it when the run ends, failed or not. While
the session lasts, Dask's default client is that one: the catalog reads the datasets as Dask frames and every
``compute()`` runs on its workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsteps.errors import ConfigError, PipelineError

if TYPE_CHECKING:
    from mlsteps.config import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineInfo:
    """What a run's engine is: recorded on the parent run (``engine``, ``engine_address``, ``engine_workers``)."""

    kind: str
    address: str = ""
    workers: int = 0
    dashboard: str = ""
    client: Any = field(default=None, repr=False, compare=False)

    def params(self) -> dict[str, Any]:
        if not self.address:  # pandas, or dask with every step reused (no cluster was needed)
            return {"engine": self.kind}
        return {"engine": self.kind, "engine_address": self.address, "engine_workers": self.workers}


def is_dask(frame: Any) -> bool:
    """Whether ``frame`` is a Dask collection (a step's input on the dask engine) rather than a pandas frame."""
    return type(frame).__module__.split(".")[0] == "dask"


def spill_folder(settings: Settings) -> Path:
    """Where a LocalCluster's workers spill: ``engine.spill_dir`` (relative: to the project), else
    ``.pipeline/dask-spill`` (the state folder)."""
    from mlsteps.project import ROOT
    from mlsteps.reuse.local import state_dir

    configured = settings.engine.spill_dir
    if configured is None:
        return state_dir() / "dask-spill"
    path = Path(configured)
    return path if path.is_absolute() else ROOT / path


@contextlib.contextmanager
def engine_session(settings: Settings, needed: bool = True) -> Iterator[EngineInfo]:
    """The engine of one pipeline run, open for as long as the block runs (a LocalCluster is closed after it).
    ``needed=False`` (every step will be reused): no cluster is started or reached."""
    engine = settings.engine
    if engine.kind == "pandas" or not needed:
        yield EngineInfo(engine.kind)
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover (a default dependency of mlsteps)
        raise ConfigError(
            f"engine.kind is dask but {exc.name} is not installed: add dask[dataframe] and distributed to the "
            "project's dependencies (make lock, make install)"
        ) from exc
    with contextlib.ExitStack() as stack:
        if engine.address:
            try:
                client = stack.enter_context(Client(engine.address, timeout="20s", set_as_default=True))
            except (OSError, TimeoutError) as exc:
                raise PipelineError(
                    f"cannot reach the Dask scheduler at engine.address '{engine.address}' ({exc}): start it, check "
                    "the address (tcp://host:8786), or unset engine.address to run on a LocalCluster"
                ) from exc
        else:
            spill = spill_folder(settings)
            spill.mkdir(parents=True, exist_ok=True)
            import dask

            # Workers spill to this folder, not the system's temp dir (a small tmpfs on many machines).
            stack.enter_context(dask.config.set({"temporary-directory": str(spill)}))
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=engine.workers,
                    threads_per_worker=engine.threads_per_worker,
                    memory_limit=engine.memory_limit,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=engine.dashboard_address,
                    local_directory=str(spill),
                    # The project's steps (src.<package>) importable on every worker, a restarted one too.
                    env={
                        "PYTHONPATH": os.pathsep.join(
                            filter(None, [str(_project_root()), os.environ.get("PYTHONPATH")])
                        )
                    },
                )
            )
            client = stack.enter_context(Client(cluster, set_as_default=True))
        workers = len(client.nthreads()) if engine.address else engine.workers
        info = EngineInfo("dask", str(client.scheduler.address), workers, str(client.dashboard_link or ""), client)
        yield info


def _project_root() -> Path:
    from mlsteps.project import ROOT

    return ROOT
