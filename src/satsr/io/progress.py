"""Progress of long runs: a tqdm bar on a terminal, and a line every few percent when stderr is a pipe
or a log file (tiles done, elapsed and remaining time), so batch jobs show where they are too."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Protocol, TextIO

from tqdm import tqdm

#: A progress line is printed each time this share of the work (percent) is done.
LOG_STEP_PERCENT = 5


class Progress(Protocol):
    def update(self, n: int) -> None: ...

    def __enter__(self) -> Progress: ...

    def __exit__(self, *exc: object) -> None: ...


class LineProgress:
    """``satsr: tiles 120/480 (25%), 0:01:02 elapsed, 0:03:06 left`` every ``LOG_STEP_PERCENT``."""

    def __init__(self, total: int, initial: int, desc: str, stream: TextIO) -> None:
        self.total, self.done, self.desc, self.stream = total, initial, desc, stream
        self.start_done, self.start = initial, time.monotonic()
        self.next_percent = (100 * initial // max(total, 1)) // LOG_STEP_PERCENT * LOG_STEP_PERCENT
        self.next_percent += LOG_STEP_PERCENT

    def update(self, n: int) -> None:
        self.done += n
        percent = 100 * self.done // max(self.total, 1)
        if percent < self.next_percent and self.done < self.total:
            return
        self.next_percent = (percent // LOG_STEP_PERCENT + 1) * LOG_STEP_PERCENT
        elapsed = time.monotonic() - self.start
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        print(
            f"satsr: {self.desc} {self.done}/{self.total} ({percent}%), {_clock(elapsed)} elapsed, "
            f"{_clock(left)} left",
            file=self.stream,
            flush=True,
        )

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _Silent:
    def update(self, n: int) -> None:
        return None

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _Bar:
    """tqdm behind the ``Progress`` protocol."""

    def __init__(self, total: int, initial: int, desc: str) -> None:
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="tile")

    def update(self, n: int) -> None:
        self.bar.update(n)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def progress(total: int, initial: int = 0, enabled: bool = True, desc: str = "tiles") -> Progress:
    """A bar on a terminal's stderr, lines when stderr is not a terminal, nothing when not ``enabled``."""
    if not enabled:
        return _Silent()
    if sys.stderr.isatty():
        return _Bar(total, initial, desc)
    return LineProgress(total, initial, desc, sys.stderr)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
