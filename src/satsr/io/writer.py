"""Writing SR outputs: georeferenced GeoTIFF/COG on the input's bounds, block by block, atomic and resumable.

Values go back to the input's dtype and DN convention; masked values are written as the output's
nodata value, band by band, and no valid value ever equals it (``_off_nodata``). The file receives whole
internal blocks, so each is compressed once (``BlockAssembler``).
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.shutil import copy as rio_copy
from rasterio.windows import Window

from satsr.io.bands import ReflectanceScaling
from satsr.io.grid import RasterError, RasterMeta


def resumable_temp_path(path: str | Path) -> Path:
    """The temporary file of a resumable output: ``.NAME.part`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.part")


#: Side of the output's internal (compressed) blocks, pixels.
BLOCK_SIDE = 256
#: Complete blocks waiting for the writing thread (``BlockWriter``) at most: 16 x 256 x 256 x bands x dtype
#: (8 MiB for 4 uint16 bands).
WRITE_QUEUE_BLOCKS = 16


class BlockWriter:
    """One thread that writes complete blocks to a dataset while the caller goes on: GDAL compresses
    them there with the GIL released (compressing an 8192 x 8192 x 4 output took 12 of 30 s on the main
    thread alone, on 2 cores). ``GDAL``'s own ``NUM_THREADS`` was not used: its thread pool does not
    survive a ``fork``, and a forked process that wrote next hung. An error in the thread is raised by
    the caller's next ``put`` or ``drain``."""

    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[Any, Window, np.ndarray] | None] = queue.Queue(WRITE_QUEUE_BLOCKS)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="satsr-block-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            try:
                if self.error is None:
                    dst, window, block = item
                    dst.write(block, window=window)
            except BaseException as err:  # raised in the caller's thread
                self.error = err
            finally:
                self.queue.task_done()
        self.queue.task_done()

    def _raise(self) -> None:
        if self.error is not None:
            raise RasterError(f"writing the output failed: {self.error}") from self.error

    def put(self, dst: Any, window: Window, block: np.ndarray) -> None:
        self._raise()
        self.queue.put((dst, window, block))

    def drain(self) -> None:
        """Wait until every block put so far is written."""
        self.queue.join()
        self._raise()

    def stop(self) -> None:
        """Write what is queued, then end the thread (without raising: for the exit path)."""
        self.queue.put(None)
        self.thread.join()


class BlockAssembler:
    """Output blocks being filled, in the output's dtype, so that each goes to the file whole, once.

    GDAL compresses a tiled GeoTIFF block by block; a block written in pieces is compressed (and read
    back and decompressed) again for every piece that lands after it left GDAL's cache, which doubled
    the compression work and the file size. Pieces are copied here, and a block leaves when its
    ``count`` of written pixels reaches its area (every pixel is written once).
    """

    def __init__(
        self, bands: int, height: int, width: int, dtype: np.dtype, fill: float, side: int = BLOCK_SIDE
    ) -> None:
        self.bands, self.height, self.width, self.dtype, self.side = bands, height, width, dtype, side
        self.fill = np.array(fill).astype(dtype)  # what a pixel never written reads as (GDAL: nodata)
        self.counts = np.zeros((-(-height // side), -(-width // side)), np.int64)
        self.pending: dict[tuple[int, int], np.ndarray] = {}

    def window(self, bi: int, bj: int) -> Window:
        top, left = bi * self.side, bj * self.side
        return Window(left, top, min(self.side, self.width - left), min(self.side, self.height - top))

    def put(self, row: int, col: int, data: np.ndarray) -> list[tuple[Window, np.ndarray]]:
        """Copy ``data`` ``(C, h, w)`` at ``(row, col)`` into its blocks; return the blocks it completes."""
        _, h, w = data.shape
        done, side = [], self.side
        for bi in range(row // side, (row + h - 1) // side + 1):
            y0, y1 = max(row, bi * side), min(row + h, (bi + 1) * side)
            for bj in range(col // side, (col + w - 1) // side + 1):
                x0, x1 = max(col, bj * side), min(col + w, (bj + 1) * side)
                window = self.window(bi, bj)
                block = self.pending.get((bi, bj))
                if block is None:
                    shape = (self.bands, window.height, window.width)
                    block = self.pending[(bi, bj)] = np.full(shape, self.fill, self.dtype)
                block[:, y0 - bi * side : y1 - bi * side, x0 - bj * side : x1 - bj * side] = data[
                    :, y0 - row : y1 - row, x0 - col : x1 - col
                ]
                self.counts[bi, bj] += (y1 - y0) * (x1 - x0)
                if self.counts[bi, bj] >= window.height * window.width:
                    done.append((window, self.pending.pop((bi, bj))))
        return done

    def partial(self) -> list[tuple[Window, np.ndarray]]:
        """The blocks still being filled (they stay here, to leave whole once complete)."""
        return [(self.window(bi, bj), block) for (bi, bj), block in self.pending.items()]


def output_nodata(meta: RasterMeta) -> float:
    """The nodata value an output uses: the input's, NaN for floats, 0 (the S2 convention) otherwise."""
    if meta.nodata is not None:
        return meta.nodata
    return float("nan") if np.issubdtype(meta.dtype, np.floating) else 0.0


class RasterWriter:
    """An SR output on the input's bounds with pixel size / ``scale``, written block by block.

    Blocks go to a temporary file beside the destination, which is renamed into place only when
    the context exits without error (after conversion to a Cloud-Optimized GeoTIFF with overviews
    if ``cog``); on error the temporary file is removed, so a failure leaves no partial output.
    Pixels outside ``valid`` get the output nodata value; values are converted back to the input's
    dtype and DN convention.
    """

    def __init__(
        self,
        path: str | Path,
        meta: RasterMeta,
        scale: float,
        height: int,
        width: int,
        tags: Mapping[str, str] | None = None,
        overwrite: bool = False,
        cog: bool = False,
        auto_publish: bool = True,
        resumable: bool = False,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise RasterError(f"{self.path}: output exists (pass overwrite=True / --overwrite to replace it)")
        self.meta, self.cog = meta, cog
        self.nodata = output_nodata(meta)
        self.profile = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": len(meta.band_names),
            "dtype": meta.dtype.name,
            "crs": meta.crs,
            "transform": meta.transform @ Affine.scale(meta.width / width, meta.height / height),
            "nodata": self.nodata,
            "tiled": True,
            "blockxsize": BLOCK_SIDE,
            "blockysize": BLOCK_SIDE,
            "compress": "deflate",
            "predictor": 3 if np.issubdtype(meta.dtype, np.floating) else 2,
            "BIGTIFF": "IF_SAFER",
        }
        self.tags = {"SCALE": str(scale), **dict(tags or {})}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resumable = resumable
        if resumable:  # a fixed name, so that a rerun of the same job finds it
            self.tmp = resumable_temp_path(self.path)
            resume = resume and self.tmp.exists()
        else:
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
            )
            os.close(fd)
            self.tmp, resume = Path(tmp_name), False
        self.auto_publish = auto_publish
        try:
            self.dst = (
                rasterio.open(self.tmp, "r+") if resume else rasterio.open(self.tmp, "w", **self.profile)
            )
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        os.chmod(self.tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file a normal file's mode
        self.blocks = BlockAssembler(len(meta.band_names), height, width, meta.dtype, self.nodata)
        self.writer = BlockWriter()

    def __enter__(self) -> RasterWriter:
        return self

    def write(self, row: int, col: int, reflectance: np.ndarray, valid: np.ndarray) -> None:
        """Write a block ``(C, h, w)`` of reflectance at ``(row, col)`` with its validity: ``(h, w)`` for
        whole pixels or ``(C, h, w)`` per band. Invalid values become nodata; a valid value that would
        read back as nodata is moved next to it (``_off_nodata``: one DN, or a tiny relative step).
        Each pixel is written once; the file receives whole internal blocks (``BlockAssembler``)."""
        data = self.meta.scaling.to_dn(reflectance, self.meta.dtype)
        valid = np.broadcast_to(valid if valid.ndim == data.ndim else valid[None], data.shape)
        nodata = np.array(self.nodata).astype(self.meta.dtype)
        if not np.isnan(nodata):
            _off_nodata(data, valid, nodata)
        data[~valid] = nodata
        for window, block in self.blocks.put(row, col, data):  # complete blocks: written by the thread
            self.writer.put(self.dst, window, block)

    def flush(self) -> None:
        """Put every pixel written so far on disk (the blocks still being filled too, close and reopen),
        e.g. before recording progress; ``block_counts`` then says how much of each block that is."""
        self.writer.drain()
        for window, block in self.blocks.partial():
            self.dst.write(block, window=window)
        self.dst.close()
        self.dst = rasterio.open(self.tmp, "r+")

    def block_counts(self) -> np.ndarray:
        """Pixels written so far in each internal block ``(block rows, block columns)``, for a rerun."""
        return self.blocks.counts.copy()

    def resume_blocks(self, counts: np.ndarray) -> None:
        """Continue a job whose ``block_counts`` (at its last ``flush``) were ``counts``: blocks begun then
        are read back from the file, to be completed."""
        self.blocks.counts = counts.astype(np.int64)
        area = np.array([[self.blocks.window(i, j).height * self.blocks.window(i, j).width
                          for j in range(counts.shape[1])] for i in range(counts.shape[0])])  # fmt: skip
        for bi, bj in zip(*np.nonzero((counts > 0) & (counts < area)), strict=True):
            window = self.blocks.window(int(bi), int(bj))
            self.blocks.pending[(int(bi), int(bj))] = self.dst.read(window=window)

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.writer.stop()  # every block put is in the dataset
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt) and self.resumable:  # for a rerun
            self.dst.close()
            return
        try:
            if exc_type is None:
                self.writer.drain()  # raises what the thread could not write
                for window, block in self.blocks.partial():  # pixels never written stay as they are
                    self.dst.write(block, window=window)
                for i, name in enumerate(self.meta.band_names, start=1):
                    self.dst.set_band_description(i, name)
                self.dst.update_tags(**self.tags)
                scaling = self.meta.scaling
                if np.issubdtype(self.meta.dtype, np.integer) and scaling != ReflectanceScaling.identity():
                    # GDAL's band scale/offset: reflectance = DN * scale + offset, for any reader.
                    count = len(self.meta.band_names)
                    self.dst.scales = [1 / scaling.quantification] * count
                    self.dst.offsets = [scaling.offset / scaling.quantification] * count
            self.dst.close()
            if exc_type is None and self.cog:
                self._to_cog()
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
        elif self.auto_publish:
            self.publish()

    def publish(self) -> None:
        """Move the finished file into place (atomic rename); ``auto_publish`` does it on exit.

        Writers of files that belong together (an SR image and its uncertainty) publish only after
        all of them finished, so an error in one leaves none of them behind.
        """
        os.replace(self.tmp, self.path)

    def _to_cog(self) -> None:
        """Rewrite the temporary GeoTIFF as a COG (internal overviews, 256 px blocks)."""
        cog_tmp = self.tmp.with_suffix(".cog.part")
        try:
            rio_copy(
                self.tmp, cog_tmp, driver="COG", COMPRESS="DEFLATE",
                PREDICTOR="YES", BLOCKSIZE=256, OVERVIEWS="AUTO", RESAMPLING="AVERAGE", BIGTIFF="IF_SAFER",
            )  # fmt: skip
            os.replace(cog_tmp, self.tmp)
        finally:
            cog_tmp.unlink(missing_ok=True)


def write_raster(
    path: str | Path,
    reflectance: np.ndarray,
    valid: np.ndarray,
    meta: RasterMeta,
    scale: float,
    tags: Mapping[str, str] | None = None,
    overwrite: bool = False,
    cog: bool = False,
) -> Path:
    """Write a whole in-memory SR result with ``RasterWriter``; returns the path."""
    _, height, width = reflectance.shape
    if len(meta.band_names) != reflectance.shape[0]:
        raise ValueError(f"{len(meta.band_names)} band names for {reflectance.shape[0]} bands")
    with RasterWriter(path, meta, scale, height, width, tags, overwrite, cog) as writer:
        writer.write(0, 0, reflectance, valid)
    return writer.path


#: Relative distance below which GDAL takes a float for the nodata value: about 4.8e-7 for float32
#: (``ARE_REAL_EQUAL``), so a valid value there must move; 2**-19 (1.9e-6) is four times that.
FLOAT_NODATA_STEP = 2.0**-19


def _off_nodata(data: np.ndarray, valid: np.ndarray, nodata: np.ndarray) -> None:
    """Move, in place, valid values that a reader would take for ``nodata``: integers equal to it by one
    DN (down at the top of the range), floats within ``FLOAT_NODATA_STEP`` (relative; the smallest
    normal float at 0) of it to that distance, on their side of it."""
    dtype = data.dtype
    if np.issubdtype(dtype, np.integer):
        dn_step = 1 if nodata < np.iinfo(dtype).max else -1
        data[(data == nodata) & valid] = np.array(int(nodata) + dn_step).astype(dtype)
        return
    step = max(abs(float(nodata)) * FLOAT_NODATA_STEP, float(np.finfo(dtype).tiny))
    near = valid & (np.abs(data.astype(np.float64) - float(nodata)) < step)
    up, down = (np.array(float(nodata) + sign * step).astype(dtype) for sign in (1, -1))
    above = (data >= nodata) & np.isfinite(up) | ~np.isfinite(down)
    data[near & above], data[near & ~above] = up, down


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
