import numpy as np
import pytest

from satsr.io.bands import ReflectanceScaling, canonical_band_name, processing_baseline_offset


@pytest.mark.parametrize(
    ("name", "expected"), [("b4", "B04"), ("B04", "B04"), ("nir", "B08"), ("B8A", "B8A")]
)
def test_canonical_band_name(name: str, expected: str) -> None:
    assert canonical_band_name(name) == expected


def test_unknown_band_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown Sentinel-2 band 'B99'"):
        canonical_band_name("B99")


@pytest.mark.parametrize(
    ("baseline", "offset"), [("04.00", -1000.0), ("N0509", -1000.0), ("03.01", 0.0), (None, 0.0)]
)
def test_processing_baseline_offset(baseline: str | None, offset: float) -> None:
    assert processing_baseline_offset(baseline) == offset


def test_reflectance_round_trip_keeps_uint16_dn() -> None:
    scaling = ReflectanceScaling(offset=-1000.0)
    dn = np.array([0, 1000, 1234, 65535], dtype=np.uint16)
    reflectance = scaling.to_reflectance(dn)
    np.testing.assert_allclose(reflectance, [-0.1, 0.0, 0.0234, 6.4535], rtol=1e-5)
    np.testing.assert_array_equal(scaling.to_dn(reflectance, np.dtype(np.uint16)), dn)


def test_to_dn_clips_to_dtype_range() -> None:
    out = ReflectanceScaling().to_dn(np.array([-0.5, 7.0], dtype=np.float32), np.dtype(np.uint16))
    np.testing.assert_array_equal(out, [0, 65535])
