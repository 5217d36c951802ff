"""The world model of every table row learns on structured toy sequences: its losses fall on a
held-out batch, its heads have the right shapes, and the contrastive embedding does not collapse."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from torch.nn import functional as F

from training.methods.recore import Agent
from training.config import load_config
from training.methods.networks import ConvEncoder, SubPixelConvTranspose
from toy_sequences import toy_batch
from training.methods.world_model import RSSM

ROWS = ["dreamer", "recore_depth", "recore_seg", "recore_denoise", "recore_no_cl", "recore_no_cl_da",
        "recore_no_aux", "recore_no_aux_rgb"]
# The recipe's representation settings on the smoke sizes, with a faster learning rate so that
# seconds of training show the trend.
TRAIN_STEPS = 60

# Tiny models: one thread is faster, and immune to OpenMP stalls when other processes share the cores.
torch.set_num_threads(1)


def row_config(row: str, *extra: str):
    recipe = yaml.safe_load(open(f"config/train/{row}.yaml"))
    overrides = [f"agent.representation.{k}={yaml.safe_dump(v).splitlines()[0]}"
                 for k, v in recipe["agent"]["representation"].items()]
    overrides += ["agent.world_model.lr=1e-3", "agent.world_model.cnn_depth=8", *extra]
    return load_config("config/train/smoke.yaml", overrides)


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return toy_batch(32, 8, seed=1), toy_batch(8, 8, seed=2)


def held_out_info(agent: Agent, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    torch.manual_seed(123)  # the same augmentation and noise draws before and after training
    with torch.no_grad():
        _, info, _ = agent.world_model.loss(batch)
    return {k: float(v) for k, v in info.items()}


@pytest.mark.parametrize("row", ROWS)
def test_losses_fall_for_every_row(row: str, data) -> None:
    pool, held = data
    torch.manual_seed(0)
    cfg = row_config(row)
    agent = Agent(cfg.agent, cfg.env.image_size)
    before = held_out_info(agent, held)
    sampler = torch.Generator().manual_seed(0)
    for _ in range(TRAIN_STEPS):
        index = torch.randint(0, len(pool["rgb"]), (cfg.agent.batch_size,), generator=sampler)
        info = agent.update({k: v[index] for k, v in pool.items()})
        assert all(math.isfinite(v) for v in info.values()), info
    after = held_out_info(agent, held)

    assert after["model/loss"] < 0.9 * before["model/loss"]
    assert after["model/goal_loss"] < before["model/goal_loss"]
    assert after["model/cont_loss"] < before["model/cont_loss"]
    rep = cfg.agent.representation
    for head in ("depth", "seg", "denoise", "rgb"):
        if head == rep.aux_target or (head == "rgb" and rep.reconstruct_rgb):
            assert after[f"model/{head}_loss"] < 0.9 * before[f"model/{head}_loss"], (head, before, after)
        else:
            assert f"{head}_loss" not in after
    if rep.contrastive:
        assert math.isfinite(after["model/contrastive_loss"])
        if rep.aux_target == "none" and not rep.reconstruct_rgb:
            # Alone, the contrastive loss is the representation objective and must fall; beside
            # a pixel-summed decoder loss it moves more slowly than seconds of training show.
            assert after["model/contrastive_embed_loss"] < before["model/contrastive_embed_loss"]
        # Collapse floor: 1 is an isotropic spread of the normalised keys, 0 a single point.
        assert after["model/embed_std"] > 0.2
    else:
        assert "contrastive_loss" not in after


@pytest.mark.parametrize("aux, channels", [("depth", 1), ("seg", 4), ("denoise", 3)])
def test_aux_head_shapes_and_summaries(aux: str, channels: int, data) -> None:
    cfg = row_config(f"recore_{aux}")
    agent = Agent(cfg.agent, 64)
    feat = torch.zeros(5, agent.world_model.feat_size)
    assert agent.world_model.heads[aux](feat).shape == (5, channels, 64, 64)
    images = agent.aux_prediction(data[1])
    assert list(images) == [f"aux/{aux}"]
    assert images[f"aux/{aux}"].dtype == torch.uint8 and images[f"aux/{aux}"].shape == (8, 64, 128, 3)


def test_decoder_resizes_to_other_image_sizes() -> None:
    cfg = row_config("recore_seg", "env.image_size=96")
    agent = Agent(cfg.agent, 96)
    batch = toy_batch(2, 4, size=96)
    info = agent.update(batch)
    assert math.isfinite(info["model/seg_loss"])
    assert agent.world_model.heads["seg"](torch.zeros(1, agent.world_model.feat_size)).shape == (1, 4, 96, 96)


@pytest.mark.parametrize("size", [64, 96])
def test_encoder_computes_the_convolutions_it_holds(size: int) -> None:
    """The last layer runs as a matrix product of patches; it must be the convolution it stores."""
    encoder = ConvEncoder(8, size)
    image = torch.randn(3, 3, size, size).to(memory_format=torch.channels_last)
    assert torch.allclose(encoder(image), encoder.net(image).flatten(1), atol=1e-5)
    assert encoder(image).shape == (3, encoder.out_dim)


@pytest.mark.parametrize("out_channels, kernel, stride", [(1, 6, 2), (3, 4, 2), (2, 6, 3)])
def test_sub_pixel_transposed_convolution_equals_the_transposed_convolution(out_channels: int, kernel: int, stride: int) -> None:
    x = torch.randn(2, 5, 6, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, out_channels, kernel, kernel, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(SubPixelConvTranspose.apply(x, weight, stride), F.conv_transpose2d(x, weight, None, stride))
    assert torch.autograd.gradcheck(lambda a, b: SubPixelConvTranspose.apply(a, b, stride), (x, weight))


def test_collapse_detector_reads_zero_for_identical_embeddings() -> None:
    """The collapse floor above can fail: identical embeddings give zero spread, random ones do not."""
    cfg = row_config("recore_no_aux")
    wm = Agent(cfg.agent, 64).world_model
    feat = torch.randn(32, wm.feat_size)
    with torch.no_grad():
        _, collapsed = wm.contrastive_loss(feat, torch.randn(32, wm.encoder.out_dim), torch.ones(1, wm.encoder.out_dim).expand(32, -1))
        _, spread = wm.contrastive_loss(feat, torch.randn(32, wm.encoder.out_dim), torch.randn(32, wm.encoder.out_dim))
    assert float(collapsed["embed_std"]) < 1e-3
    assert float(spread["embed_std"]) > 0.2


@pytest.mark.parametrize("classes", [4, 0])
def test_rssm_kl_is_zero_for_equal_and_positive_for_different_stats(classes: int) -> None:
    cfg = load_config("config/train/smoke.yaml", [f"agent.world_model.classes={classes}"]).agent.world_model
    rssm = RSSM(cfg, embed_dim=16)
    stats = torch.randn(6, 16 if classes else 8)
    assert torch.allclose(rssm.kl(stats, stats), torch.zeros(6), atol=1e-5)
    assert (rssm.kl(stats, torch.randn_like(stats)) > 0).all()
    sample = rssm.sample(stats)
    assert sample.shape == (6, rssm.stoch_flat)
    if classes:
        assert torch.allclose(sample.view(6, 4, 4).sum(-1), torch.ones(6, 4))


def test_discrete_samples_follow_the_softmax_with_straight_through_gradients() -> None:
    cfg = load_config("config/train/smoke.yaml", ["agent.world_model.classes=4", "agent.world_model.stoch=3"]).agent.world_model
    rssm = RSSM(cfg, embed_dim=16)
    torch.manual_seed(0)
    stats = torch.tensor([[4.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, -30.0, 0.0, 0.0, -30.0]], requires_grad=True)
    samples = rssm.sample(stats.expand(20000, -1)).view(20000, 3, 4)
    assert set(samples.detach().unique().round(decimals=4).tolist()) <= {0.0, 1.0}
    assert torch.equal(samples.detach().sum(-1).round(), torch.ones(20000, 3))
    frequency = samples.detach().mean(0)
    probs = torch.softmax(stats.detach().view(3, 4), -1)
    assert torch.allclose(frequency, probs, atol=0.015), (frequency, probs)
    assert frequency[2, 0] == 0 and frequency[2, 3] == 0       # never a class of probability ~1e-13
    (grad,) = torch.autograd.grad((samples[:, 1, 3]).sum(), stats)
    assert torch.allclose(grad, torch.autograd.grad(20000 * torch.softmax(stats.view(3, 4), -1)[1, 3], stats)[0])


def test_gaussian_stochastic_state_trains(data) -> None:
    cfg = row_config("recore_depth", "agent.world_model.classes=0", "agent.world_model.stoch=6")
    agent = Agent(cfg.agent, 64)
    assert agent.state_size == 32 + 6
    info = agent.update({k: v[:4] for k, v in data[0].items()})
    assert math.isfinite(info["model/kl"]) and math.isfinite(info["actor/loss"])


def test_bf16_mixed_precision_trains(data) -> None:
    pool, held = data
    torch.manual_seed(0)
    cfg = row_config("recore_depth", "agent.precision=bf16")
    agent = Agent(cfg.agent, 64)
    before = held_out_info(agent, held)
    for step in range(TRAIN_STEPS):
        info = agent.update({k: v[4 * (step % 8):4 * (step % 8) + 4] for k, v in pool.items()})
        assert all(math.isfinite(v) for v in info.values()), info
    after = held_out_info(agent, held)
    assert after["model/depth_loss"] < 0.9 * before["model/depth_loss"]
    assert after["model/embed_std"] > 0.2
