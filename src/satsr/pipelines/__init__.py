"""Where the pieces meet: entry points that take rasters, folders, revisit stacks or DataArrays through
one path (``scene.run_scene``: read, fill masked values by one policy, tile, run the model, blend, write
with validity) and write outputs with their provenance (``outputs``).

* ``upscale_file`` / ``upscale_folder`` (``files``): ``satsr upscale``, resumable, optionally on Dask;
* ``fuse_files`` (``revisits``): ``satsr fuse``, N revisits of one place into one image;
* ``upscale_dataarray`` (``dataarray``): (rio)xarray arrays, lazily for dask-backed ones.
"""

from satsr.pipelines.dataarray import upscale_dataarray
from satsr.pipelines.files import upscale_file, upscale_folder
from satsr.pipelines.outputs import uncertainty_path
from satsr.pipelines.revisits import fuse_files

__all__ = ["fuse_files", "uncertainty_path", "upscale_dataarray", "upscale_file", "upscale_folder"]
