"""The licence satsr declares is shipped, and so are the notices of the third-party work it ships."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTICES = {
    "LPIPS-BSD-2-Clause.txt": "Copyright (c) 2018, Richard Zhang, Phillip Isola, Alexei A. Efros",
    "scikit-image-BSD-3-Clause.txt": "Copyright (C) 2019, the scikit-image team",
    "torchvision-BSD-3-Clause.txt": "Copyright (c) Soumith Chintala 2016",
}


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_declared_licence_is_the_licence_file() -> None:
    assert project()["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "END OF TERMS AND CONDITIONS" in text


def test_third_party_notices_ship_inside_the_package() -> None:
    shipped = resources.files("satsr").joinpath("licenses")
    for name, copyright_line in NOTICES.items():
        text = shipped.joinpath(name).read_text()
        assert copyright_line in text and "Redistributions in binary form must reproduce" in text
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "licenses/*.txt" in config["tool"]["setuptools"]["package-data"]["satsr"]
    assert {"LICENSE", "NOTICE", "src/satsr/licenses/*.txt"} <= set(project()["license-files"])
    notice = (ROOT / "NOTICE").read_text()
    assert all(name in notice for name in NOTICES)
