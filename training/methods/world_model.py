"""ReCoRe world model: a DreamerV2 RSSM whose representation is learned without pixel
reconstruction, by a contrastive loss under a style intervention, regularised by an
intervention-invariant auxiliary head (depth, segmentation or denoising).

The same class is every row of the paper's table: `RepresentationConfig` switches the
contrastive loss, the auxiliary target, DreamerV2's RGB decoder and input augmentation on or off.
The goal (distance, cos, sin in the robot frame) enters the posterior beside the image embedding
and is predicted by a head, so imagined states carry a goal.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from recore_nav.task import ACTION_DIM, DEPTH_MAX, GOAL_DIM
from training.kernels.fast_ops import ELU, elu
from training.methods.networks import ConvDecoder, ConvEncoder, LayerNormGRUCell, StyleIntervention, image_to_float, mlp


AUX_TARGETS = ("none", "depth", "seg", "denoise")


@dataclass
class WorldModelConfig:
    deter: int = 200                # GRU state
    stoch: int = 32                 # stochastic variables
    classes: int = 32               # categories per variable; 0 selects a Gaussian of `stoch` dims
    hidden: int = 200               # RSSM hidden layers
    cnn_depth: int = 32
    mlp_units: int = 400
    mlp_layers: int = 4             # reward and continuation heads
    min_std: float = 0.1            # Gaussian stochastic state only
    kl_balance: float = 0.8
    kl_free: float = 1.0            # free nats, on the batch mean (DreamerV2 free_avg)
    kl_scale: float = 1.0
    reward_scale: float = 1.0
    cont_scale: float = 1.0
    goal_scale: float = 1.0
    lr: float = 3e-4
    eps: float = 1e-5
    weight_decay: float = 1e-6
    grad_clip: float = 100.0


@dataclass
class RepresentationConfig:
    """What replaces (or is) pixel reconstruction: the rows of the paper's table."""
    contrastive: bool = True        # InfoNCE: posterior feature vs. embedding of an intervened view
    contrastive_scale: float = 1.0
    temperature: float = 0.1
    embed_pair: bool = True         # also contrast the clean embedding with the intervened one
    projection_dim: int = 256
    aux_target: str = "depth"       # intervention-invariant head: none | depth | seg | denoise
    aux_scale: float = 1.0
    seg_classes: int = 4
    denoise_std: float = 0.2        # Gaussian pixel noise on the encoder input, in [0,1] units
    reconstruct_rgb: bool = False   # DreamerV2 pixel decoder (dreamer and no-aux+rgb rows)
    rgb_scale: float = 1.0
    augment_inputs: bool = False    # the world model sees intervened images (the +da row)
    # The style intervention: colour jitter per sequence, random shift per frame.
    shift_pad: int = 4
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.1                # fraction of a full turn



def info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE of unit vectors [N, P] whose positives share a row; (loss, top-1 accuracy)."""
    logits = query.float() @ key.float().t() / temperature
    labels = torch.arange(len(logits), device=logits.device)
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    with torch.no_grad():
        accuracy = (logits.argmax(-1) == labels).float().mean()
    return loss, accuracy


def sample_one_hot(probs: torch.Tensor) -> torch.Tensor:
    """One-hot draws from categorical distributions [..., C] by inverse CDF: one uniform per
    variable instead of a Gumbel per class (32x fewer random numbers and no logs; 4-7 -> 1.2-2 ms a
    step for 800 states). The one-hot is where the CDF first reaches u: the step of the monotone
    indicator cdf >= u."""
    cdf = probs.cumsum(-1)
    cdf[..., -1] = 1.0                   # rounding must not leave u above the last class
    u = torch.rand(cdf.shape[:-1] + (1,), dtype=cdf.dtype, device=cdf.device)
    reached = (cdf >= u).to(probs.dtype)
    return reached - F.pad(reached[..., :-1], (1, 0))


class StraightThroughCategorical(torch.autograd.Function):
    """logits [..., C] -> a one-hot sample whose gradient is the softmax's (DreamerV2's
    straight-through estimator, `one_hot + probs - stop_gradient(probs)`, as one autograd node:
    the value is the sample exactly and the backward is the softmax's)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits, -1)
        ctx.save_for_backward(probs)
        return sample_one_hot(probs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (probs,) = ctx.saved_tensors
        return probs * (grad - (grad * probs).sum(-1, keepdim=True))


class RSSM(nn.Module):
    """Recurrent state-space model. State = (deter [.., D], stoch [.., Z]) with Z = stoch * classes
    (one-hot categoricals, straight-through) or stoch (Gaussian). `stats` are the logits
    [.., stoch, classes] or the (mean, std) pair [.., 2 * stoch]."""

    def __init__(self, cfg: WorldModelConfig, embed_dim: int, action_dim: int = ACTION_DIM):
        super().__init__()
        self.discrete = cfg.classes > 0
        self.stoch, self.classes, self.deter = cfg.stoch, cfg.classes, cfg.deter
        self.stoch_flat = cfg.stoch * cfg.classes if self.discrete else cfg.stoch
        stats_dim = self.stoch_flat if self.discrete else 2 * cfg.stoch
        self.min_std = cfg.min_std
        # img_in = ELU(W [stoch, action]); the two halves are separate so the action half runs
        # once for the whole sequence instead of once a step.
        self.img_in_stoch = nn.Linear(self.stoch_flat, cfg.hidden)
        self.img_in_action = nn.Linear(action_dim, cfg.hidden, bias=False)
        self.gru = LayerNormGRUCell(cfg.hidden, cfg.deter)
        self.img_out = nn.Sequential(nn.Linear(cfg.deter, cfg.hidden), ELU(), nn.Linear(cfg.hidden, stats_dim))
        # obs_out = ELU(W [deter, embed, goal]); the embed half is precomputed for all steps.
        self.obs_in_deter = nn.Linear(cfg.deter, cfg.hidden, bias=False)
        self.obs_in_embed = nn.Linear(embed_dim + GOAL_DIM, cfg.hidden)
        self.obs_out = nn.Linear(cfg.hidden, stats_dim)

    @property
    def state_size(self) -> int:
        return self.deter + self.stoch_flat

    def split(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return state[..., :self.deter], state[..., self.deter:]

    # -- distributions --------------------------------------------------------------------
    def sample(self, stats: torch.Tensor) -> torch.Tensor:
        stats = stats.float()
        if self.discrete:
            logits = stats.view(*stats.shape[:-1], self.stoch, self.classes)
            return StraightThroughCategorical.apply(logits).flatten(-2)
        mean, std = self._mean_std(stats)
        return mean + std * torch.randn_like(mean)

    def mode(self, stats: torch.Tensor) -> torch.Tensor:
        """Deterministic stoch (export-friendly: a comparison, not argmax + one_hot)."""
        if self.discrete:
            logits = stats.view(*stats.shape[:-1], self.stoch, self.classes)
            return (logits >= logits.amax(-1, keepdim=True)).to(stats.dtype).flatten(-2)
        return self._mean_std(stats)[0]

    def _mean_std(self, stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = stats.chunk(2, -1)
        return mean, F.softplus(std) + self.min_std

    def kl(self, lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """KL(lhs || rhs) per state, summed over stochastic variables."""
        if self.discrete:
            shape = (*lhs.shape[:-1], self.stoch, self.classes)
            log_p, log_q = F.log_softmax(lhs.view(shape), -1), F.log_softmax(rhs.view(shape), -1)
            return (log_p.exp() * (log_p - log_q)).sum((-2, -1))
        (m1, s1), (m2, s2) = self._mean_std(lhs), self._mean_std(rhs)
        return (torch.log(s2 / s1) + (s1.square() + (m1 - m2).square()) / (2 * s2.square()) - 0.5).sum(-1)

    # -- steps ----------------------------------------------------------------------------
    def img_step(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor,
                 sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Prior step: (deter, stoch, action) -> (next deter, next stoch)."""
        x = elu(self.img_in_stoch(stoch) + self.img_in_action(action))
        deter = self.gru(x, deter)
        stats = self.img_out(deter)
        return deter, self.sample(stats) if sample else self.mode(stats)

    def obs_step(self, deter: torch.Tensor, stoch: torch.Tensor, action: torch.Tensor, embed_goal: torch.Tensor,
                 sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (filtering) step for one observation; used by the policy."""
        x = elu(self.img_in_stoch(stoch) + self.img_in_action(action))
        deter = self.gru(x, deter)
        stats = self.obs_out(elu(self.obs_in_deter(deter) + self.obs_in_embed(embed_goal)))
        return deter, self.sample(stats) if sample else self.mode(stats)

    def observe(self, embed_goal: torch.Tensor, prev_action: torch.Tensor, is_first: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Filter a batch of sequences from a zero state.

        embed_goal [B, T, E+3], prev_action [B, T, A], is_first [B, T] ->
        deter [B, T, D], stoch [B, T, Z], posterior stats, prior stats (both [B, T, *]).
        """
        batch, time = is_first.shape
        keep = (~is_first).to(embed_goal.dtype).unsqueeze(-1)                   # [B, T, 1]
        # Everything that does not depend on the recurrence runs once over all T.
        action_in = self.img_in_action(prev_action * keep) + self.img_in_stoch.bias
        embed_in = self.obs_in_embed(embed_goal)
        w_stoch = self.img_in_stoch.weight
        deter = embed_goal.new_zeros(batch, self.deter)
        stoch = embed_goal.new_zeros(batch, self.stoch_flat)
        deters, stochs, post_stats = [], [], []
        for t in range(time):
            k = keep[:, t]
            deter, stoch = deter * k, stoch * k
            x = elu(torch.addmm(action_in[:, t], stoch, w_stoch.t()))
            deter = self.gru(x, deter)
            stats = self.obs_out(elu(self.obs_in_deter(deter) + embed_in[:, t]))
            stoch = self.sample(stats)
            deters.append(deter)
            stochs.append(stoch)
            post_stats.append(stats)
        deters_t = torch.stack(deters, 1)
        prior_stats = self.img_out(deters_t)   # the prior depends only on deter: one big matmul
        return deters_t, torch.stack(stochs, 1), torch.stack(post_stats, 1).float(), prior_stats.float()


class WorldModel(nn.Module):
    """Encoder + RSSM + heads (reward, continuation, goal, and the representation heads).

    `loss(batch)` returns (loss, info, posterior) where posterior holds the detached states the
    actor-critic starts imagining from."""

    def __init__(self, cfg: WorldModelConfig, rep: RepresentationConfig, image_size: int):
        super().__init__()
        self.cfg, self.rep, self.image_size = cfg, rep, image_size
        self.encoder = ConvEncoder(cfg.cnn_depth, image_size)
        # The raw CNN embedding starts with a spread of ~0.02; normalising it lets the posterior
        # depend on the image from the first update (without it the posterior ignores the image,
        # the contrastive query carries no information and InfoNCE collapses to log N).
        self.embed_norm = nn.LayerNorm(self.encoder.out_dim)
        self.rssm = RSSM(cfg, self.encoder.out_dim)
        feat = self.rssm.state_size
        heads: dict[str, nn.Module] = {
            "reward": mlp(feat, cfg.mlp_units, cfg.mlp_layers, 1),
            "cont": mlp(feat, cfg.mlp_units, cfg.mlp_layers, 1),
            "goal": mlp(feat, cfg.mlp_units, 2, GOAL_DIM),
        }
        aux_channels = {"depth": 1, "seg": rep.seg_classes, "denoise": 3}
        if rep.aux_target != "none":
            heads[rep.aux_target] = ConvDecoder(feat, cfg.cnn_depth, aux_channels[rep.aux_target], image_size)
        if rep.reconstruct_rgb:
            heads["rgb"] = ConvDecoder(feat, cfg.cnn_depth, 3, image_size)
        if rep.contrastive:
            # LayerNorm first: the raw CNN embedding starts tiny, and a projection dominated by
            # its bias maps every frame to one direction (InfoNCE stuck at log N from the start).
            heads["proj_feat"] = nn.Sequential(nn.LayerNorm(feat), mlp(feat, rep.projection_dim, 1, rep.projection_dim))
            heads["proj_embed"] = nn.Sequential(nn.LayerNorm(self.encoder.out_dim),
                                                mlp(self.encoder.out_dim, rep.projection_dim, 1, rep.projection_dim))
        self.heads = nn.ModuleDict(heads)
        self.intervention = StyleIntervention(shift_pad=rep.shift_pad, brightness=rep.brightness, contrast=rep.contrast,
                                              saturation=rep.saturation, hue=rep.hue)

    @property
    def feat_size(self) -> int:
        return self.rssm.state_size

    # -- pieces ---------------------------------------------------------------------------
    def encoder_input(self, rgb: torch.Tensor, clean: torch.Tensor, batch: int) -> torch.Tensor:
        """What the posterior sees: the clean image, an intervened one (+da), noisy ones (denoising)."""
        x = self.intervention(rgb, batch) if self.rep.augment_inputs else clean
        if self.rep.aux_target == "denoise":
            x = (x + self.rep.denoise_std * torch.randn_like(x)).clamp(-0.5, 0.5)
        return x

    def embed(self, rgb: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, 3], goal [N, 3] -> posterior input [N, E+3] (no augmentation)."""
        return torch.cat([self.embed_norm(self.encoder(image_to_float(rgb))), goal], -1)

    def contrastive_loss(self, feat: torch.Tensor, embed: torch.Tensor, embed_aug: torch.Tensor
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """InfoNCE with the embedding of each frame's intervened view as the key: the query is the
        posterior feature of the frame (the latent must be invariant to the intervention) and, with
        `embed_pair`, also the frame's own embedding (a SimCLR pair through one projection, which
        keeps the encoder from settling on the collapsed, uniform solution while the posterior
        still carries little of the image). The other B*T - 1 frames are the negatives."""
        key = F.normalize(self.heads["proj_embed"](embed_aug), dim=-1)
        query = F.normalize(self.heads["proj_feat"](feat), dim=-1)
        feat_loss, feat_acc = info_nce(query, key, self.rep.temperature)
        loss = feat_loss
        info = {"contrastive_feat_loss": feat_loss.detach(), "contrastive_accuracy": feat_acc}
        if self.rep.embed_pair:
            anchor = F.normalize(self.heads["proj_embed"](embed), dim=-1)
            embed_loss, embed_acc = info_nce(anchor, key, self.rep.temperature)
            loss = 0.5 * (feat_loss + embed_loss)
            info.update(contrastive_embed_loss=embed_loss.detach(), contrastive_embed_accuracy=embed_acc)
        with torch.no_grad():
            dim = key.shape[-1]
            info["contrastive_loss"] = loss.detach()
            # Collapse detectors: 1 for an isotropic spread on the sphere, 0 when collapsed.
            info["embed_std"] = key.std(0).mean() * dim ** 0.5
            info["feat_proj_std"] = query.std(0).mean() * dim ** 0.5
        return loss, info

    def aux_loss(self, feat: torch.Tensor, batch: dict[str, torch.Tensor], clean: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """The intervention-invariant head (and DreamerV2's RGB decoder where configured);
        per-image sums over pixels, as DreamerV2's image log-likelihood."""
        total = feat.new_zeros(())
        info: dict[str, float] = {}
        for name in ("depth", "seg", "denoise", "rgb"):
            if name not in self.heads:
                continue
            pred = self.heads[name](feat).float()
            target = self.aux_target(name, batch, clean)
            if name == "seg":
                loss = F.cross_entropy(pred, target, reduction="none").sum((-2, -1)).mean()
                with torch.no_grad():
                    info["seg_accuracy"] = (pred.argmax(1) == target).float().mean()
            else:
                loss = 0.5 * (pred - target).square().sum((1, 2, 3)).mean()
            scale = self.rep.rgb_scale if name == "rgb" else self.rep.aux_scale
            info[f"{name}_loss"] = loss.detach()
            total = total + scale * loss
        return total, info

    def aux_target(self, name: str, batch: dict[str, torch.Tensor], clean: torch.Tensor) -> torch.Tensor:
        """Target of a decoder head: depth [N,1,H,W] in [0,1], seg [N,H,W] class ids, rgb [N,3,H,W]."""
        if name == "depth":
            depth = batch["depth"].flatten(0, 1).permute(0, 3, 1, 2).float()
            return torch.nan_to_num(depth, nan=0.0, posinf=DEPTH_MAX).clamp(0.0, DEPTH_MAX) / DEPTH_MAX
        if name == "seg":
            # Ids beyond the head's classes fall into the last class ("other").
            return batch["seg"].flatten(0, 1).long().clamp(0, self.rep.seg_classes - 1)
        return clean

    # -- the loss -------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(loss, info, posterior): info's scalars under `model/`; the posterior's detached states
        start imagination."""
        rgb, goal = batch["rgb"], batch["goal"].float()
        b, t = rgb.shape[:2]
        frames = rgb.flatten(0, 1)
        clean = image_to_float(frames)
        inputs = self.encoder_input(frames, clean, b)
        n = b * t
        if self.rep.contrastive:
            # Both views through the encoder in one call: one large convolution beats two.
            views = torch.cat([inputs, self.intervention(frames, b)], 0)
            embeds = self.encoder(views)
            embed, embed_aug = embeds[:n], embeds[n:]
        else:
            embed, embed_aug = self.encoder(inputs), None
        embed_goal = torch.cat([self.embed_norm(embed).view(b, t, -1), goal], -1)
        deter, stoch, post, prior = self.rssm.observe(embed_goal, batch["action"].float(), batch["is_first"].bool())
        feat = torch.cat([deter, stoch], -1).flatten(0, 1)                        # [N, F]

        kl_loss, info = self.kl_loss(post, prior)
        # reward/cont/goal heads: one matmul chain over all N states (the MLPs share nothing).
        reward_pred = self.heads["reward"](feat).squeeze(-1).float()
        cont_logit = self.heads["cont"](feat).squeeze(-1).float()
        goal_pred = self.heads["goal"](feat).float()
        reward_loss = 0.5 * (reward_pred - batch["reward"].float().flatten()).square().mean()
        cont_target = 1.0 - batch["is_terminal"].float().flatten()
        cont_loss = F.binary_cross_entropy_with_logits(cont_logit, cont_target)
        goal_loss = 0.5 * (goal_pred - goal.flatten(0, 1)).square().sum(-1).mean()
        loss = (self.cfg.kl_scale * kl_loss + self.cfg.reward_scale * reward_loss
                + self.cfg.cont_scale * cont_loss + self.cfg.goal_scale * goal_loss)
        info.update(reward_loss=reward_loss.detach(), cont_loss=cont_loss.detach(), goal_loss=goal_loss.detach())

        if self.rep.contrastive:
            cl_loss, cl_info = self.contrastive_loss(feat, embed, embed_aug)
            loss = loss + self.rep.contrastive_scale * cl_loss
            info.update(cl_info)
        aux, aux_info = self.aux_loss(feat, batch, clean)
        loss = loss + aux
        info.update(aux_info)
        with torch.no_grad():
            info["embed_raw_std"] = embed.std(0).mean()
            info["loss"] = loss.detach()
        posterior = {"deter": deter.detach(), "stoch": stoch.detach(), "goal": goal,
                     "cont": cont_target.view(b, t)}
        if "expert_action" in batch:     # imitation labels ride along to the actor (behavior.py)
            posterior["expert_action"] = batch["expert_action"].float()
        return loss, {f"model/{key}": value for key, value in info.items()}, posterior

    def kl_loss(self, post: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """DreamerV2 KL balancing: train the prior toward the posterior (weight `balance`) faster
        than the posterior toward the prior, each term with free nats on its batch mean."""
        kl_prior = self.rssm.kl(post.detach(), prior).mean()
        kl_post = self.rssm.kl(post, prior.detach()).mean()
        free = self.cfg.kl_free
        balance = self.cfg.kl_balance
        loss = balance * kl_prior.clamp(min=free) + (1 - balance) * kl_post.clamp(min=free)
        return loss, {"kl": kl_prior.detach(), "kl_loss": loss.detach()}

    @torch.no_grad()
    def aux_prediction(self, batch: dict[str, torch.Tensor], frames: int = 8) -> dict[str, torch.Tensor]:
        """uint8 [K, H, 2W, 3] images, target | prediction side by side, for each decoder head,
        from the first sequence of `batch` (for TensorBoard's add_images with NHWC)."""
        rgb = batch["rgb"][:1]
        t = min(frames, rgb.shape[1])
        sub = {k: v[:1, :t] for k, v in batch.items()}
        frames = sub["rgb"].flatten(0, 1)
        clean = image_to_float(frames)
        embed = self.encoder(self.encoder_input(frames, clean, 1))
        embed_goal = torch.cat([self.embed_norm(embed).view(1, t, -1), sub["goal"].float()], -1)
        deter, stoch, _, _ = self.rssm.observe(embed_goal, sub["action"].float(), sub["is_first"].bool())
        feat = torch.cat([deter, stoch], -1).flatten(0, 1)
        images = {}
        for name in ("depth", "seg", "denoise", "rgb"):
            if name not in self.heads:
                continue
            pred, target = self.heads[name](feat), self.aux_target(name, sub, clean)
            if name == "seg":
                scale = 255.0 / max(1, self.rep.seg_classes - 1)
                pred = (pred.argmax(1, keepdim=True).float() * scale / 255.0).expand(-1, 3, -1, -1)
                target = (target[:, None].float() * scale / 255.0).expand(-1, 3, -1, -1)
            elif name == "depth":
                pred, target = pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
            else:
                pred, target = pred + 0.5, target + 0.5
            pair = torch.cat([target, pred], -1).clamp(0, 1)
            images[f"aux/{name}"] = (pair * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return images
