"""LPIPS v0.1 with an AlexNet trunk, re-implemented without torchvision.

Learned Perceptual Image Patch Similarity, Zhang et al. 2018, "The Unreasonable Effectiveness of
Deep Features as a Perceptual Metric" (CVPR), in the configuration of the reference code
``richzhang/PerceptualSimilarity`` with ``net='alex', version='0.1'``: ImageNet AlexNet features
(torchvision layout) tapped after each of the five ReLUs, channel-wise unit normalisation, squared
difference, learned non-negative 1x1 weights per layer, spatial average, sum over layers.

The weights (AlexNet convolutions + the five linear heads + the scaling layer) ship with satsr as
``satsr/weights/lpips_alex_v0.1.safetensors``. The module keeps the reference implementation's
parameter names (``net.sliceK.<torchvision index>``, ``linK.model.1``) so that file loads strictly.
LPIPS is BSD 2-Clause and the AlexNet weights BSD 3-Clause (torchvision): their notices ship as
``satsr/licenses/LPIPS-BSD-2-Clause.txt`` and ``satsr/licenses/torchvision-BSD-3-Clause.txt``.

Inputs are RGB. satsr's 4-band Sentinel-2 tensors are in band order B02, B03, B04, B08 (blue,
green, red, NIR); ``satsr.io.bands.rgb_channels`` finds the (R, G, B) channels of any band names.
A network building block: models (fusion's perceptual distance), training losses and evaluation use it.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

#: The LPIPS v0.1 AlexNet weights shipped in the package.
LPIPS_ALEX_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "lpips_alex_v0.1.safetensors"

#: Smallest image side AlexNet's strides and poolings take (at 30 px the second pooling has no pixel left).
LPIPS_MIN_SIDE = 31
#: Channels of the five tapped AlexNet feature maps (after relu1..relu5).
ALEX_CHANNELS = (64, 192, 384, 256, 256)

#: ImageNet normalisation expressed for [-1, 1] inputs (``ScalingLayer`` of the reference code).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

#: Added to the channel norm before dividing (``normalize_tensor`` of the reference code).
_NORM_EPS = 1e-10


class ScalingLayer(nn.Module):
    """Maps [-1, 1] RGB to the ImageNet-normalised input AlexNet was trained on."""

    shift: Tensor
    scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.shift) / self.scale


def _indexed_sequential(first_index: int, layers: list[nn.Module]) -> nn.Sequential:
    """An ``nn.Sequential`` whose children are named by their torchvision ``features`` index."""
    return nn.Sequential(OrderedDict((str(first_index + i), layer) for i, layer in enumerate(layers)))


class AlexNetFeatures(nn.Module):
    """The convolutional trunk of torchvision's AlexNet, split after each ReLU.

    Krizhevsky et al. 2012, in the single-tower form of torchvision ``alexnet().features``
    (indices 0-11). ``forward`` returns the five ReLU outputs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.slice1 = _indexed_sequential(
            0, [nn.Conv2d(3, ALEX_CHANNELS[0], 11, stride=4, padding=2), nn.ReLU()]
        )
        self.slice2 = _indexed_sequential(
            2,
            [
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(ALEX_CHANNELS[0], ALEX_CHANNELS[1], 5, padding=2),
                nn.ReLU(),
            ],
        )
        self.slice3 = _indexed_sequential(
            5,
            [
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(ALEX_CHANNELS[1], ALEX_CHANNELS[2], 3, padding=1),
                nn.ReLU(),
            ],
        )
        self.slice4 = _indexed_sequential(
            8, [nn.Conv2d(ALEX_CHANNELS[2], ALEX_CHANNELS[3], 3, padding=1), nn.ReLU()]
        )
        self.slice5 = _indexed_sequential(
            10, [nn.Conv2d(ALEX_CHANNELS[3], ALEX_CHANNELS[4], 3, padding=1), nn.ReLU()]
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        taps = []
        for block in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            x = block(x)
            taps.append(x)
        return taps


class LinearHead(nn.Module):
    """A bias-free 1x1 convolution to one channel (``NetLinLayer``; dropout is off at eval)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        # index 0 is the (inactive) dropout of the reference code, kept for the parameter names
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(in_channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _unit_normalize(features: Tensor) -> Tensor:
    """Divide each feature vector by its L2 norm over channels (Eq. 1 of Zhang et al. 2018)."""
    norm = torch.sqrt(torch.sum(features**2, dim=1, keepdim=True))
    return features / (norm + _NORM_EPS)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance with an AlexNet trunk; lower means more similar.

    ``forward(x, y)`` takes two RGB batches (B, 3, H, W) in [-1, 1] (or [0, 1] with
    ``normalize=True``) and returns the per-image distance, shape (B,).
    """

    def __init__(self, weights: Path | None = LPIPS_ALEX_WEIGHTS) -> None:
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.net = AlexNetFeatures()
        self.lins = nn.ModuleList([LinearHead(channels) for channels in ALEX_CHANNELS])
        if weights is not None:
            self.load_weights(weights)
        self.eval()
        self.requires_grad_(False)

    def load_weights(self, path: Path) -> None:
        """Load the reference-code state dict (``linK.model.1.weight`` -> ``lins.K.model.1.weight``)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"LPIPS weights not found: {path}")
        state = {}
        for key, value in load_file(str(path)).items():
            if key.startswith("lin"):
                index, rest = key[len("lin") :].split(".", 1)
                key = f"lins.{index}.{rest}"
            state[key] = value
        self.load_state_dict(state, strict=True)

    def forward(self, x: Tensor, y: Tensor, normalize: bool = False) -> Tensor:
        _check_rgb_pair(x, y)
        return self.compare(self.features(x, normalize), self.features(y, normalize))

    def features(self, x: Tensor, normalize: bool = False) -> list[Tensor]:
        """Unit-normalised AlexNet features of an RGB batch, to ``compare`` (reusable across calls).

        Always float32, also under autocast: the unit-normalised feature differences that LPIPS sums
        lose too much in bfloat16's 8 mantissa bits."""
        _check_rgb(x)
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            if normalize:
                x = 2 * x - 1
            return [_unit_normalize(f) for f in self.net(self.scaling_layer(x))]

    def compare(self, feats_x: Sequence[Tensor], feats_y: Sequence[Tensor]) -> Tensor:
        """LPIPS from ``features`` of two batches (equal sizes, or one of them a single image): (B,)."""
        distance: Tensor | float = 0.0
        with torch.autocast(feats_x[0].device.type, enabled=False):  # float32, as ``features``
            for lin, fx, fy in zip(self.lins, feats_x, feats_y, strict=True):
                distance = distance + lin((fx.float() - fy.float()) ** 2).mean(dim=(1, 2, 3))
        assert isinstance(distance, Tensor)
        return distance


def _check_rgb(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"LPIPS expects RGB batches shaped (B, 3, H, W), got {tuple(x.shape)}")


def _check_rgb_pair(x: Tensor, y: Tensor) -> None:
    _check_rgb(x)
    if x.shape != y.shape:
        raise ValueError(f"LPIPS inputs differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")


@functools.cache
def _cached_lpips(device: str) -> LPIPS:
    # Never built as inference tensors (as it would be inside ``torch.inference_mode``): a gradient flows
    # through it in fusion's center search.
    with torch.inference_mode(False):
        return LPIPS().to(device)


def shared_lpips(device: torch.device | str) -> LPIPS:
    """The LPIPS network of ``device``, built once per process (frozen: it keeps no gradients)."""
    return _cached_lpips(str(device))


@torch.no_grad()
def lpips(x: Tensor, y: Tensor, normalize: bool = False) -> Tensor:
    """LPIPS (AlexNet, v0.1) per image, shape (B,); the network is built once per process and device.

    ``x`` and ``y`` are RGB (B, 3, H, W) in [-1, 1], or in [0, 1] when ``normalize`` is True.
    """
    net = _cached_lpips(str(x.device))
    return net(x.float(), y.float(), normalize=normalize)
