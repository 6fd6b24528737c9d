"""Resumable jobs: the progress file of an interrupted ``upscale_file`` and what Ctrl-C tells the user."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from satsr.io.blending import Pending
from satsr.io.writer import RasterWriter, resumable_temp_path

log = logging.getLogger(__name__)

#: Version of the progress file: 2 records how much of each output block is on disk (``RasterWriter``).
STATE_FORMAT = 2
#: Progress is recorded after the first row of windows, then at most this often: each record writes the
#: blocks still being filled (compressed again when they are complete) and reopens the outputs, which at
#: every row took 2.2 of 30 s of a 2048 x 2048 run with the fast model; a rerun redoes at most this much.
CHECKPOINT_SECONDS = 30.0


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a job; the message says what was kept and whether the same command resumes it."""


def _differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """``name old -> new`` for every option that differs between two job fingerprints (tags flattened,
    ``SATSR_SEED`` named ``seed``)."""
    changes = []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += _differences(old, new)
        elif old != new:
            changes.append(f"{key.removeprefix('SATSR_').lower()} {old} -> {new}")
    return changes


class JobState:
    """Progress of one resumable ``upscale_file`` call (a ``satsr.io.stream.Checkpoint``).

    ``.OUTPUT.state.npz`` holds the next tile row, the pending blended sums and a fingerprint of the
    job (input, model weights, options); a rerun resumes only when the fingerprint and the temporary
    outputs match, otherwise it starts afresh.
    """

    def __init__(self, output: Path, outputs: list[Path], fingerprint: str) -> None:
        self.path = output.with_name(f".{output.name}.state.npz")
        self.outputs, self.fingerprint = outputs, fingerprint
        self.writers: list[RasterWriter] = []
        self.resuming = False
        self.saved_at: float | None = None  # time.monotonic() of the last record, None before the first
        if self.path.exists():
            try:
                with np.load(self.path) as state:
                    same = str(state["fingerprint"]) == fingerprint and int(state["format"]) == STATE_FORMAT
            except (OSError, ValueError, KeyError):
                same = False
            self.resuming = same and all(resumable_temp_path(p).exists() for p in outputs)
            if self.resuming:
                log.info("%s: resuming an interrupted run", output)
            else:
                log.warning(
                    "%s: %s; starting afresh, its progress is discarded", output, self._why_afresh(same)
                )
                # Discarded now, not when this run saves its first row: if it stops before then, the
                # old progress must not later be resumed onto this run's new temporary files.
                self.path.unlink()
                self.path.with_name(self.path.name + ".part").unlink(missing_ok=True)

    def _why_afresh(self, same: bool) -> str:
        """Why an earlier run's progress cannot be used: which options differ, or what is missing."""
        if same:
            return "the interrupted run's temporary files are gone"
        try:
            with np.load(self.path) as state:
                before = json.loads(str(state["fingerprint"]))
                if "format" not in state.files or int(state["format"]) != STATE_FORMAT:
                    return "the interrupted run's progress file is from another satsr version"
        except (OSError, ValueError, KeyError):
            return "the interrupted run's progress file is unreadable"
        changes = _differences(before, json.loads(self.fingerprint))
        return f"an interrupted run of it used other options ({'; '.join(changes) or 'unknown'})"

    def interrupted(self) -> str:
        """After Ctrl-C: keep the progress for a rerun (or, with none recorded yet, remove the temporary
        files); the message says what was kept and how to go on."""
        if not self.path.exists():
            self.discard()
            return (
                f"interrupted: {self.outputs[0]} was not written (no row of tiles had finished; nothing kept)"
            )
        kept = [resumable_temp_path(p).name for p in self.outputs] + [self.path.name]
        return (
            f"interrupted: {self.outputs[0]} is not finished; its progress is kept in {', '.join(kept)} "
            f"beside it: run the same command again to resume (delete them to start afresh)"
        )

    def load(self) -> tuple[int, Pending] | None:
        if not self.resuming:
            return None
        with np.load(self.path) as state:
            pending = {
                tuple(int(v) for v in key.split("_")[1:]): state[key]
                for key in state.files
                if key.startswith("c_")
            }
            for k, writer in enumerate(self.writers):
                writer.resume_blocks(state[f"blocks_{k}"])
            return int(state["next_row"]), pending  # type: ignore[return-value]

    def save(self, next_row: int, rows: int, pending: Pending) -> None:
        """Record the progress after a row of windows: the first time, then once ``CHECKPOINT_SECONDS``
        have passed since the last record (the last row needs none: the job ends)."""
        now = time.monotonic()
        if next_row >= rows or (self.saved_at is not None and now - self.saved_at < CHECKPOINT_SECONDS):
            return
        self.saved_at = now
        for writer in self.writers:
            writer.flush()
        tmp = self.path.with_name(self.path.name + ".part")
        with open(tmp, "wb") as f:
            arrays: dict[str, Any] = {f"c_{a}_{b}": v for (a, b), v in pending.items()}
            arrays |= {f"blocks_{k}": writer.block_counts() for k, writer in enumerate(self.writers)}
            arrays |= {
                "next_row": next_row,
                "rows": rows,
                "fingerprint": self.fingerprint,
                "format": STATE_FORMAT,
            }
            np.savez(f, **arrays)
        os.replace(tmp, self.path)

    def discard(self) -> None:
        """Forget the job (after it finished, or failed for a reason a rerun would not fix)."""
        self.path.unlink(missing_ok=True)
        self.path.with_name(self.path.name + ".part").unlink(missing_ok=True)
        for p in self.outputs:
            resumable_temp_path(p).unlink(missing_ok=True)
