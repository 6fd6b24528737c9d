"""Windows on a Dask distributed cluster: ``satsr upscale ... --scheduler ADDRESS`` or ``--workers N``.

The process that runs ``upscale_file`` reads the windows, blends and writes (so the output, its
checkpoints and its bounded memory are as in a single process); the model calls go to the
cluster's workers, each of which loads the model once. Results are taken in submission order and
every window's noise depends only on the seed and its place, so the pixels are those of a
single-process run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from satsr.io.stream import BatchFuture, TileFn
from satsr.io.tiling import SceneGrid, Tile
from satsr.models.registry import Upscaler, load
from satsr.models.sampling import sampling_tile_fn

#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT_S = 10
_MODELS: dict[tuple[str, str], Upscaler] = {}  # per worker process: models loaded so far


@dataclass(frozen=True)
class RemoteTileFn:
    """A picklable ``TileFn``: the model travels as its name or folder (or, for models that were not
    loaded from one, as the object itself) and is loaded once per worker."""

    model: str | Upscaler
    samples: int
    steps: int | None
    seed: int
    device: str = "cpu"
    grid: SceneGrid | None = None  # the scene's output grid, for continuous-scale models
    scale: int | None = None  # the fixed scale asked of a model that serves several (``Upscaler.at_scale``)
    outputs: tuple[str, ...] = ()  # the output bands asked (``Upscaler.select_outputs``)

    def upscaler(self) -> Upscaler:
        if isinstance(self.model, Upscaler):
            return self.model
        key = (self.model, self.device)
        if key not in _MODELS:
            _MODELS[key] = load(self.model, device=self.device)
        upscaler = _MODELS[key]
        upscaler = upscaler.at_scale(self.scale) if self.scale is not None else upscaler
        return upscaler.select_outputs(self.outputs) if self.outputs else upscaler

    def __call__(self, batch: np.ndarray, tiles: Sequence[Tile]) -> np.ndarray:
        tile_fn: TileFn = sampling_tile_fn(self.upscaler(), self.samples, self.steps, self.seed, self.grid)
        return tile_fn(batch, tiles)


class DaskExecutor:
    """``satsr.io.stream.Executor`` over a ``distributed.Client`` (tasks are not deduplicated)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.workers = max(1, len(client.scheduler_info().get("workers", {})))

    def submit(self, fn: TileFn, batch: np.ndarray, tiles: list[Tile]) -> BatchFuture:
        future: BatchFuture = self.client.submit(fn, batch, tiles, pure=False)
        return future


@contextmanager
def dask_executor(scheduler: str | None = None, workers: int | None = None) -> Iterator[DaskExecutor]:
    """Connect to the scheduler at ``scheduler``, or start a local cluster of ``workers`` processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - the dev and dask extras install it
        raise RuntimeError("Dask distributed is not installed: pip install 'satsr[dask]'") from err
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as err:
            raise ConnectionError(
                f"the Dask scheduler at {scheduler} did not answer within {CONNECT_TIMEOUT_S} s ({err})"
            ) from err
        with client:
            yield DaskExecutor(client)
        return
    if workers is None or workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield DaskExecutor(client)
