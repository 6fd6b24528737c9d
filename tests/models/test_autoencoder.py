import math

import pytest
import torch
import torch.nn.functional as F

from satsr.models.autoencoder import DiagonalGaussian, KLAutoencoder, SpaceToDepth, build_first_stage

TINY = {"channels": (8, 16, 16), "num_res_blocks": 1}


def tiny_ae(**kwargs: object) -> KLAutoencoder:
    torch.manual_seed(0)
    return KLAutoencoder(**{**TINY, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(16, 16), (8, 24), (32, 12)])
def test_shapes(size: tuple[int, int]) -> None:
    ae = tiny_ae()
    x = torch.rand(2, 4, *size)
    posterior = ae.encode(x)
    assert posterior.mean.shape == posterior.logvar.shape == (2, 4, size[0] // 4, size[1] // 4)
    assert ae.decode(posterior.mode()).shape == x.shape
    recon, posterior2 = ae(x)
    assert recon.shape == x.shape and posterior2.kl().shape == (2,)


def test_latent_and_band_counts_are_configurable() -> None:
    ae = tiny_ae(in_channels=3, latent_channels=6, channels=(8, 16), downsampling_factor=2)
    x = torch.rand(1, 3, 10, 14)
    z = ae.encode_latent(x)
    assert z.shape == (1, 6, 5, 7)
    assert ae.decode_latent(z).shape == x.shape


def test_downsampling_factor_must_match_levels() -> None:
    with pytest.raises(ValueError, match="downsampling_factor 8"):
        KLAutoencoder(channels=(8, 16, 16), downsampling_factor=8)
    with pytest.raises(ValueError, match="downsampling_factor 4"):
        KLAutoencoder(channels=(8, 16), downsampling_factor=4)
    assert KLAutoencoder(channels=(8, 16, 16, 16), downsampling_factor=8).downsampling_factor == 8


@pytest.mark.parametrize("size", [(18, 16), (16, 6)])
def test_size_not_multiple_of_factor_is_rejected(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="multiples of the downsampling factor 4"):
        tiny_ae().encode(torch.rand(1, 4, *size))


def test_wrong_band_count_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\) image"):
        tiny_ae().encode(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\) latent"):
        tiny_ae().decode(torch.rand(1, 8, 4, 4))


def test_kl_is_zero_for_standard_normal_and_positive_otherwise() -> None:
    zeros = torch.zeros(2, 4, 3, 5)
    assert torch.equal(DiagonalGaussian(zeros, zeros).kl(), torch.zeros(2))
    gen = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(2, 4, 3, 5, generator=gen), torch.randn(2, 4, 3, 5, generator=gen)
    kl = DiagonalGaussian(mean, logvar).kl()
    assert (kl > 0).all()
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)
    )
    torch.testing.assert_close(kl, reference.flatten(1).sum(1))


def test_mode_is_deterministic_and_sample_reproducible() -> None:
    ae = tiny_ae()
    x = torch.rand(2, 4, 16, 16)
    torch.testing.assert_close(ae.encode(x).mode(), ae.encode(x).mode(), rtol=0, atol=0)
    posterior = ae.encode(x)
    a = posterior.sample(torch.Generator().manual_seed(1))
    b = posterior.sample(torch.Generator().manual_seed(1))
    c = posterior.sample(torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    noise = torch.randn_like(posterior.mean)
    torch.testing.assert_close(posterior.sample(noise=noise), posterior.mean + posterior.std * noise)
    with pytest.raises(ValueError, match="noise shape"):
        posterior.sample(noise=noise[:1])


def test_forward_sample_flag() -> None:
    ae = tiny_ae()
    x = torch.rand(1, 4, 16, 16)
    recon_mode, posterior = ae(x, sample=False)
    torch.testing.assert_close(recon_mode, ae.decode(posterior.mean))
    r1, _ = ae(x, generator=torch.Generator().manual_seed(3))
    r2, _ = ae(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(r1, r2) and not torch.equal(r1, recon_mode)


def test_scaling_factor_round_trip() -> None:
    ae = tiny_ae(scaling_factor=2.5)
    x = torch.rand(1, 4, 16, 16)
    z = ae.encode(x).mode()
    torch.testing.assert_close(ae.encode_latent(x), 2.5 * z)
    torch.testing.assert_close(ae.decode_latent(2.5 * z), ae.decode(z))
    with pytest.raises(ValueError, match="scaling_factor"):
        KLAutoencoder(scaling_factor=0.0)


def test_band_normalisation_wraps_the_network() -> None:
    """With band statistics the model is the unnormalised network applied in standardised units."""
    mean, std = [0.1, 0.2, 0.3, 0.4], [0.05, 0.1, 0.2, 0.5]
    plain, normed = tiny_ae(), tiny_ae(band_mean=mean, band_std=std)
    x = torch.rand(1, 4, 16, 16)
    x_std = (x - torch.tensor(mean).view(1, 4, 1, 1)) / torch.tensor(std).view(1, 4, 1, 1)
    torch.testing.assert_close(normed.encode(x).mean, plain.encode(x_std).mean)
    torch.testing.assert_close(normed.denormalize(normed.normalize(x)), x)
    z = torch.randn(1, 4, 4, 4)
    torch.testing.assert_close(normed.normalize(normed.decode(z)), plain.decode(z), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="one value per input channel"):
        KLAutoencoder(band_mean=[0.0])
    assert "band_mean" not in normed.state_dict()


def test_gradient_reaches_every_parameter() -> None:
    ae = tiny_ae(mid_attention=True)
    recon, posterior = ae(torch.rand(2, 4, 16, 16), generator=torch.Generator().manual_seed(0))
    (recon.square().mean() + posterior.kl().mean()).backward()
    for name, param in ae.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_channels_last_matches_contiguous() -> None:
    ae = tiny_ae(mid_attention=True).eval()
    x = torch.rand(2, 4, 16, 24)
    ref = ae(x, sample=False)[0]
    fast_ae = ae.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    out = fast_ae(x.to(memory_format=torch.channels_last), sample=False)[0]
    torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-4)


def smooth_batch() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    gen = torch.Generator().manual_seed(0)
    phase = 2 * math.pi * torch.rand(4, 4, 1, 1, generator=gen)
    return 0.25 + 0.2 * torch.sin(3 * xx + phase) * torch.cos(2 * yy + phase.transpose(0, 1))


def test_tiny_autoencoder_overfits_a_smooth_batch() -> None:
    torch.manual_seed(0)
    ae = KLAutoencoder(channels=(16, 32, 32), num_res_blocks=1)
    x = smooth_batch()
    optimiser = torch.optim.Adam(ae.parameters(), lr=2e-3)
    with torch.no_grad():
        initial = F.l1_loss(ae(x, sample=False)[0], x).item()
    for _ in range(40):
        recon, posterior = ae(x, generator=torch.Generator().manual_seed(0))
        loss = F.l1_loss(recon, x) + 1e-6 * posterior.kl().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        final = F.l1_loss(ae(x, sample=False)[0], x).item()
    assert final < 0.3 * initial, (initial, final)


def test_shortcut_autoencoder_starts_as_a_block_average_codec() -> None:
    ae = KLAutoencoder(4, 4, (8, 8, 8), 1, 4, band_mean=[0.1] * 4, band_std=[0.05] * 4, shortcut=True)
    x = torch.rand(2, 4, 16, 24) * 0.3
    posterior = ae.encode(x)
    torch.testing.assert_close(posterior.mean, ae.normalize(F.avg_pool2d(x, 4)))
    blocks = F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="nearest")
    torch.testing.assert_close(ae.decode(posterior.mean), blocks)
    assert posterior.std.max() < 0.05  # small start noise: samples stay near the shortcut


def test_shortcut_needs_channel_groups_that_divide() -> None:
    with pytest.raises(ValueError, match="multiple of latent_channels"):
        KLAutoencoder(3, 5, (8, 8, 8), 1, 4, shortcut=True)


def test_space_to_depth_is_lossless_and_keeps_the_latent_at_the_lr_grid() -> None:
    codec = build_first_stage(
        {"architecture": "SpaceToDepth", "in_channels": 4, "band_mean": [0.1] * 4, "band_std": [0.05] * 4}
    )
    assert isinstance(codec, SpaceToDepth)
    x = torch.rand(2, 4, 32, 48, generator=torch.Generator().manual_seed(0)) * 0.4
    z = codec.encode_latent(x)
    assert z.shape == (2, 64, 8, 12)
    torch.testing.assert_close(codec.decode_latent(z), x)
    # Channel group k of latent pixel (i, j) is HR pixel (4 i + k // 4, 4 j + k % 4) of band 0, standardised.
    torch.testing.assert_close(z[:, 5, 2, 3], (x[:, 0, 9, 13] - 0.1) / 0.05)
    with pytest.raises(ValueError, match="multiples"):
        codec.encode_latent(x[..., :30])
    with pytest.raises(ValueError, match="unknown first stage"):
        build_first_stage({"architecture": "VQGAN"})
