"""Perceptual and adversarial terms of the continuous-scale reconstruction losses.

E2DiffSR's stage 1 (Wu et al., Eq. 12) adds a hinge PatchGAN term to L1 "following" Rombach et al.'s
autoencoder, whose loss also has an LPIPS term (Rombach et al. 2022, App. G; Esser et al. 2021).
``ReconstructionTerms`` holds both beyond L1 so that stage 1 and its regression baseline (the paper's
Model-I-Retrained, "the same training setup") are trained under one loss. ``artifact_map`` is the
locally discriminative term of Liang et al. (2022, "Details or Artifacts", LDL) that tells a
perceptual model's artifacts from its details by comparing it with a steadier reference model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satsr.nn.lpips import LPIPS, LPIPS_MIN_SIDE


class PatchDiscriminator(nn.Sequential):
    """PatchGAN (Isola et al. 2017) as in Rombach et al.'s autoencoder, GroupNorm instead of BatchNorm:
    4x4 convs, stride 2 for all but the last two, one logit per ~(2**layers * 3) px patch."""

    def __init__(self, in_channels: int = 3, channels: int = 32, layers: int = 3) -> None:
        modules: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = channels
        for i in range(1, layers + 1):
            out = channels * min(2**i, 8)
            modules += [
                nn.Conv2d(width, out, 4, 2 if i < layers else 1, 1),
                nn.GroupNorm(min(32, out // 4), out),
                nn.LeakyReLU(0.2),
            ]
            width = out
        modules.append(nn.Conv2d(width, 1, 4, 1, 1))
        super().__init__(*modules)


class ReconstructionTerms(nn.Module):
    """``perceptual_weight * LPIPS(sr, hr) + adv_weight * (-D(sr))`` for RGB images in [0, 1], and the
    discriminator's hinge loss. LPIPS (frozen AlexNet, Zhang et al. 2018) computes in float32, also
    under bf16 autocast."""

    def __init__(
        self,
        in_channels: int = 3,  # bands of the images (LPIPS needs 3: RGB)
        perceptual_weight: float = 0.0,  # weight of LPIPS (0: none)
        adv_weight: float = 0.0,  # weight of the hinge generator loss (0: no discriminator steps)
        disc_channels: int = 32,  # width of the patch discriminator's first layer
    ) -> None:
        super().__init__()
        if perceptual_weight < 0 or adv_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got {perceptual_weight}, {adv_weight}")
        if perceptual_weight > 0 and in_channels != 3:
            raise ValueError(f"the LPIPS term needs RGB images, got {in_channels} bands")
        self.perceptual_weight, self.adv_weight = perceptual_weight, adv_weight
        self.discriminator = PatchDiscriminator(in_channels, disc_channels)
        self.lpips = LPIPS() if perceptual_weight > 0 else None  # frozen

    def train(self, mode: bool = True) -> ReconstructionTerms:
        super().train(mode)
        if self.lpips is not None:
            self.lpips.eval()  # a fixed metric, whatever the trainer sets
        return self

    def generator(self, sr: Tensor, hr: Tensor, adversarial: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """The weighted sum of the terms, to add to the generator's loss, and each term unweighted
        (``lpips``, and ``g_adv`` when ``adversarial``) for logging."""
        total, terms = sr.new_zeros((), dtype=torch.float32), {}
        if self.lpips is not None:
            if min(sr.shape[-2:]) < LPIPS_MIN_SIDE:
                raise ValueError(
                    f"the LPIPS term needs images of at least {LPIPS_MIN_SIDE} px, got {tuple(sr.shape)}"
                )
            terms["lpips"] = self.lpips(sr, hr, normalize=True).mean()
            total = total + self.perceptual_weight * terms["lpips"]
        if adversarial and self.adv_weight > 0:
            terms["g_adv"] = -self.discriminator(sr * 2 - 1).float().mean()
            total = total + self.adv_weight * terms["g_adv"]
        return total, {k: v.detach() for k, v in terms.items()}

    def discriminator_loss(self, sr: Tensor, hr: Tensor) -> Tensor:
        """Hinge loss of the discriminator on real ``hr`` and (detached) ``sr``."""
        real = self.discriminator(hr * 2 - 1).float()
        fake = self.discriminator(sr.detach() * 2 - 1).float()
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


@torch.no_grad()
def artifact_map(sr: Tensor, hr: Tensor, reference: Tensor, window: int = 7) -> Tensor:
    """LDL's refined artifact map (Liang et al. 2022, Eqs. 4-7), (B, 1, H, W), no gradient.

    The residual ``|hr - sr|`` summed over bands has a local variance (``window`` px) that is high where
    the output is noisy against the target (artifacts) and low where its error is smooth; it is scaled
    by the patch's residual variance to the power 1/5 (a patch with wrong texture everywhere weighs
    more), and zeroed where ``sr`` is closer to ``hr`` than the ``reference`` output is (details the
    perceptual model got right). ``L1(map * sr, map * hr)`` then penalises the artifacts alone."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of pixels, got {window}")
    residual = (hr - sr).abs().float().sum(1, keepdim=True)
    reference_residual = (hr - reference).abs().float().sum(1, keepdim=True)
    padded = F.pad(residual, [window // 2] * 4, mode="reflect")
    mean = F.avg_pool2d(padded, window, stride=1)
    local = (F.avg_pool2d(padded**2, window, stride=1) - mean**2).clamp_min(0) * window**2 / (window**2 - 1)
    patch = residual.var(dim=(1, 2, 3), keepdim=True) ** 0.2
    return torch.where(residual < reference_residual, 0.0, patch * local)
