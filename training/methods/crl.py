"""Contrastive RL (CRL): offline goal-conditioned RL with a contrastive critic, as OGBench's
reference agent (`impls/agents/crl.py`) defines it, in PyTorch.

The critic is bilinear, Q(s, a, g) = phi(s, a) . psi(g) / sqrt(d), an ensemble of two, trained
by binary NCE over the batch: the positive for a state-action is a future state of its own
trajectory (`training.data.goal_sampling`), the negatives are the batch's other goals
(`contrastive="infonce"`: a softmax over the batch's goals instead). The actor is DDPG+BC
(maximise the smaller critic's value, normalised by its mean magnitude, plus `alpha` times the
log-likelihood of the dataset's action under a constant-std Gaussian), or AWR (advantage-weighted
regression against a contrastive value V(s, g)). `CRLInputs` may carry world-model embeddings
for each network (`training.methods.wm_crl`); without them this is plain CRL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from training.methods.networks import ConvEncoder, image_to_float

CONTRASTIVE_LOSSES = ("binary", "infonce")
ACTOR_LOSSES = ("ddpgbc", "awr")


@dataclass
class CRLConfig:
    """OGBench's CRL hyperparameters (its defaults; pointmaze sets alpha 0.03)."""

    # networks
    hidden: tuple[int, ...] = (512, 512, 512)   # actor and critic MLPs (GELU)
    latent_dim: int = 512                       # phi and psi
    layer_norm: bool = True                     # in the critic and value MLPs
    ensemble: int = 2
    cnn_depth: int = 32                         # image states: the ReCoRe model's encoder family
    # Robot-frame goals (distance, cos, sin) only: a goal farther than this is shown at this
    # distance in its own direction. Goals are future states of the logged trajectories, so the
    # networks never see a distance beyond the logs' reach (about 2-3 m for short fragments),
    # while a robot is sent 10 m away; 0 shows every distance as it is.
    goal_distance_cap: float = 0.0
    # losses
    contrastive: str = "binary"                 # binary NCE, or infonce
    actor_loss: str = "ddpgbc"                  # ddpgbc, or awr
    alpha: float = 0.1                          # BC weight in DDPG+BC, temperature in AWR
    # optimisation
    lr: float = 3e-4
    batch_size: int = 1024
    precision: str = "fp32"                     # fp32, or bf16 mixed precision (weights and losses float32)


def gelu_mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, layer_norm: bool,
             final_init_scale: float = 1.0) -> nn.Sequential:
    """OGBench's MLP: Linear + GELU (+ LayerNorm) per hidden layer, then a linear output; weights
    Xavier-uniform (flax's variance_scaling(1, fan_avg, uniform)), the output's scaled by
    `final_init_scale` (OGBench's actor mean: 1e-2), biases zero."""
    modules: list[nn.Module] = []
    dim = in_dim
    for units in hidden:
        modules += [nn.Linear(dim, units), nn.GELU(), *([nn.LayerNorm(units)] if layer_norm else [])]
        dim = units
    modules.append(nn.Linear(dim, out_dim))
    for module in modules:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight, gain=final_init_scale ** 0.5 if module is modules[-1] else 1.0)
            nn.init.zeros_(module.bias)
    return nn.Sequential(*modules)


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Modules used as fixed functions: gradients reach their inputs but not their weights (the
    actor's loss looks through the critic without training it, as OGBench's)."""
    params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class StateEncoder(nn.Module):
    """What a network sees of a state: the vector itself, or the ReCoRe encoder's features of an
    image (uint8 [N, H, W, C]: 3 channels, or several frames stacked)."""

    def __init__(self, state_shape: tuple[int, ...], cnn_depth: int):
        super().__init__()
        self.is_image = len(state_shape) == 3
        if self.is_image:
            self.cnn = ConvEncoder(cnn_depth, state_shape[0], in_channels=state_shape[2])
            self.out_dim = self.cnn.out_dim
        else:
            self.out_dim = int(math.prod(state_shape))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        if self.is_image:
            return self.cnn(image_to_float(state))
        return state.float().flatten(1)


@dataclass
class CRLInputs:
    """One batch as the networks see it. `*_embed` are world-model embeddings (detached) that a
    WM-CRL integration strategy adds to a network's input; None in plain CRL."""

    states: torch.Tensor                 # float [B, D] or uint8 images [B, H, W, 3]
    actions: torch.Tensor                # [B, A]
    value_goals: torch.Tensor            # [B, G]: goals of the critic (future states of the trajectory)
    actor_goals: torch.Tensor            # [B, G]
    # z_sa(s, .) into phi: a function of the actions, so the actor's loss sees the embedding of the
    # actor's own action (its gradient reaches the action through it), not the dataset's.
    critic_embed: Callable[[torch.Tensor], torch.Tensor] | None = None
    actor_embed: torch.Tensor | None = None       # [B, E]: z_s(s), into the actor (and AWR's value)
    value_goal_embed: torch.Tensor | None = None  # [B, E]: z_s(g), into psi
    actor_goal_embed: torch.Tensor | None = None  # [B, E]: z_s(g), into the actor


class BilinearCritic(nn.Module):
    """An ensemble of phi(x) . psi(g) / sqrt(d): phi over a state(-action) input, psi over goals."""

    def __init__(self, in_dim: int, goal_dim: int, cfg: CRLConfig):
        super().__init__()
        self.latent_dim = cfg.latent_dim
        self.phi = nn.ModuleList(gelu_mlp(in_dim, cfg.hidden, cfg.latent_dim, cfg.layer_norm) for _ in range(cfg.ensemble))
        self.psi = nn.ModuleList(gelu_mlp(goal_dim, cfg.hidden, cfg.latent_dim, cfg.layer_norm) for _ in range(cfg.ensemble))

    def embeddings(self, x: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """phi [E, B, d] and psi [E, B, d]."""
        return torch.stack([net(x) for net in self.phi]), torch.stack([net(goal) for net in self.psi])

    def forward(self, x: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Values of matching rows, [E, B]."""
        phi, psi = self.embeddings(x, goal)
        return (phi * psi).sum(-1) / math.sqrt(self.latent_dim)


class CRLAgent(nn.Module):
    """Contrastive critic (and value, for AWR) and a goal-conditioned Gaussian actor.

    `embed_dims` names the world-model embeddings each network takes beside its own input
    ({"critic", "actor", "goal"} -> width); an image network that gets an embedding takes it
    instead of its own convolutional encoder's features (so one CNN, the world model's, serves).
    """

    def __init__(self, cfg: CRLConfig, state_shape: tuple[int, ...], goal_dim: int, action_dim: int,
                 embed_dims: dict[str, int] | None = None):
        super().__init__()
        if cfg.contrastive not in CONTRASTIVE_LOSSES or cfg.actor_loss not in ACTOR_LOSSES:
            raise ValueError(f"contrastive must be one of {CONTRASTIVE_LOSSES} and actor_loss one of {ACTOR_LOSSES}")
        self.cfg, self.action_dim = cfg, action_dim
        embed = dict(embed_dims or {})
        image = len(state_shape) == 3
        # Each network its own state encoder, as OGBench's (critic_state, actor; value_state for AWR),
        # unless an image network takes the world model's embedding instead. AWR's value network
        # takes the actor's embedding, z_s(s).
        embed["value"] = embed.get("actor", 0)
        roles = ("critic", "actor", "value") if cfg.actor_loss == "awr" else ("critic", "actor")
        self.encoders = nn.ModuleDict({role: StateEncoder(state_shape, cfg.cnn_depth)
                                       for role in roles if not (image and embed.get(role))})

        def width(role: str) -> int:
            return (self.encoders[role].out_dim if role in self.encoders else 0) + embed.get(role, 0)

        goal_in = goal_dim + embed.get("goal", 0)
        self.critic = BilinearCritic(width("critic") + action_dim, goal_in, cfg)
        self.value = (BilinearCritic(width("value"), goal_in, replace(cfg, ensemble=1))
                      if cfg.actor_loss == "awr" else None)
        self.actor = gelu_mlp(width("actor") + goal_in, cfg.hidden, action_dim, layer_norm=False,
                              final_init_scale=1e-2)

    # -- network inputs ---------------------------------------------------------------------
    def _state_input(self, role: str, states: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        parts = ([self.encoders[role](states)] if role in self.encoders else []) + \
                ([embedding] if embedding is not None else [])
        return torch.cat(parts, -1)

    def _goal_input(self, goals: torch.Tensor, embedding: torch.Tensor | None) -> torch.Tensor:
        goals = goals.float()
        if self.cfg.goal_distance_cap > 0:
            goals = torch.cat([goals[:, :1].clamp(max=self.cfg.goal_distance_cap), goals[:, 1:]], -1)
        return goals if embedding is None else torch.cat([goals, embedding], -1)

    def action_mean(self, states: torch.Tensor, goals: torch.Tensor, actor_embed: torch.Tensor | None = None,
                    goal_embed: torch.Tensor | None = None) -> torch.Tensor:
        """The actor's Gaussian mean [B, A] (its constant std is 1, as OGBench's const_std)."""
        return self.actor(torch.cat([self._state_input("actor", states, actor_embed),
                                     self._goal_input(goals, goal_embed)], -1))

    def act(self, states: torch.Tensor, goals: torch.Tensor, actor_embed: torch.Tensor | None = None,
            goal_embed: torch.Tensor | None = None) -> torch.Tensor:
        """The deterministic action in [-1, 1]."""
        return self.action_mean(states, goals, actor_embed, goal_embed).clamp(-1.0, 1.0)

    def critic_input(self, inputs: CRLInputs, actions: torch.Tensor) -> torch.Tensor:
        """phi's input for the batch's states and these actions."""
        embed = inputs.critic_embed(actions) if inputs.critic_embed is not None else None
        return torch.cat([self._state_input("critic", inputs.states, embed), actions], -1)

    def q_values(self, inputs: CRLInputs, actions: torch.Tensor, goals: torch.Tensor,
                 goal_embed: torch.Tensor | None) -> torch.Tensor:
        return self.critic(self.critic_input(inputs, actions), self._goal_input(goals, goal_embed))

    # -- losses -----------------------------------------------------------------------------
    def contrastive_loss(self, inputs: CRLInputs, module: str = "critic") -> tuple[torch.Tensor, dict[str, float]]:
        """NCE of the critic (or, for AWR, the value) over the batch: row i's positive is goal i."""
        goals = self._goal_input(inputs.value_goals, inputs.value_goal_embed)
        if module == "critic":
            x, net = self.critic_input(inputs, inputs.actions), self.critic
        else:
            x, net = self._state_input("value", inputs.states, inputs.actor_embed), self.value
        phi, psi = net.embeddings(x, goals)
        logits = torch.einsum("eik,ejk->eij", phi, psi) / math.sqrt(net.latent_dim)     # [E, B, B]
        batch = logits.shape[-1]
        eye = torch.eye(batch, device=logits.device)
        if self.cfg.contrastive == "binary":
            loss = F.binary_cross_entropy_with_logits(logits, eye.expand_as(logits))
        else:
            labels = torch.arange(batch, device=logits.device)
            loss = torch.stack([F.cross_entropy(member, labels) for member in logits]).mean()
        with torch.no_grad():
            mean_logits = logits.mean(0)
            info = {"contrastive_loss": loss.detach(),
                    "binary_accuracy": ((mean_logits > 0).float() == eye).float().mean(),
                    "categorical_accuracy": (mean_logits.argmax(1) == torch.arange(batch, device=logits.device)).float().mean(),
                    "logits_pos": (mean_logits * eye).sum() / batch,
                    "logits_neg": (mean_logits * (1 - eye)).sum() / (batch * (batch - 1)),
                    "logits": mean_logits.mean()}
        return loss, info

    def actor_loss(self, inputs: CRLInputs) -> tuple[torch.Tensor, dict[str, float]]:
        mean = self.action_mean(inputs.states, inputs.actor_goals, inputs.actor_embed, inputs.actor_goal_embed)
        # log N(a; mean, I)
        log_prob = -0.5 * ((inputs.actions - mean).square().sum(-1) + self.action_dim * math.log(2 * math.pi))
        if self.cfg.actor_loss == "ddpgbc":
            with frozen(self.critic, self.encoders["critic"] if "critic" in self.encoders else None):
                q = self.q_values(inputs, mean.clamp(-1.0, 1.0), inputs.actor_goals,
                                  inputs.actor_goal_embed).min(0).values
            q_loss = -q.mean() / (q.abs().mean().detach() + 1e-6)   # scale-free, as OGBench
            bc_loss = -(self.cfg.alpha * log_prob).mean()
            loss = q_loss + bc_loss
            info = {"q_loss": q_loss.detach(), "bc_loss": bc_loss.detach(), "q_mean": q.detach().mean()}
        else:
            with torch.no_grad():
                goals = self._goal_input(inputs.actor_goals, inputs.actor_goal_embed)
                v = self.value(self._state_input("value", inputs.states, inputs.actor_embed), goals)[0]
                q = self.q_values(inputs, inputs.actions, inputs.actor_goals, inputs.actor_goal_embed).min(0).values
                weight = torch.exp((q - v) * self.cfg.alpha).clamp(max=100.0)
            loss = -(weight * log_prob).mean()
            info = {"advantage": (q - v).mean(), "weight": weight.mean()}
        info.update(actor_loss=loss.detach(), bc_log_prob=log_prob.detach().mean(),
                    mse=(mean.detach() - inputs.actions).square().mean())
        return loss, info

    def loss(self, inputs: CRLInputs) -> tuple[torch.Tensor, dict[str, float]]:
        """The sum of the critic's, (value's) and actor's losses; info under critic/, value/, actor/."""
        critic_loss, critic_info = self.contrastive_loss(inputs, "critic")
        total, info = critic_loss, {f"critic/{k}": v for k, v in critic_info.items()}
        if self.value is not None:
            value_loss, value_info = self.contrastive_loss(inputs, "value")
            total = total + value_loss
            info.update({f"value/{k}": v for k, v in value_info.items()})
        actor_loss, actor_info = self.actor_loss(inputs)
        info.update({f"actor/{k}": v for k, v in actor_info.items()})
        return total + actor_loss, info
