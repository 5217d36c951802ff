"""WM-CRL: Contrastive RL fed with the representations of a predictive world model trained on
all the data.

The world model is MR.Q's encoder (facebookresearch/MRQ) without rewards: a state encoder
z_s(s), a state-action encoder z_sa(z_s, a) and a projector m(z_sa) that predicts the next
state's embedding; unrolled over `horizon` steps of a trajectory from its first state, each
prediction is regressed onto a target state encoder's embedding of the real next state, and the
target encoder is a copy of z_s refreshed every `target_every` updates. It trains from the first
update on every transition of the dataset; the CRL actor-critic starts after `warmup` updates
and takes the world model's embeddings (detached) where `integration` says:

- `critic`: z_sa(s, a) into the critic's state-action encoder phi;
- `actor`: z_s(s) into the actor;
- `goal`: z_s(g) into the goal encoder psi and the actor's goal input (goals that are states);
- `all`: each of them that applies (not `goal` where goals are robot-frame vectors rather than
  states); `none`: plain CRL, the same program with the world model off.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from training.methods.crl import CRLAgent, CRLConfig, CRLInputs, StateEncoder, frozen, gelu_mlp

INTEGRATIONS = ("none", "critic", "actor", "goal", "all")


@dataclass
class WorldModelConfig:
    """MR.Q's encoder sizes and schedule, without the reward and termination heads."""

    integration: str = "all"          # none (plain CRL), critic, actor, goal or all
    embed_dim: int = 512              # z_s
    sa_dim: int = 512                 # z_sa
    hidden: tuple[int, ...] = (512, 512)
    horizon: int = 5                  # unrolled prediction steps
    target_every: int = 250           # updates between copies into the target encoder
    warmup: int = 10_000              # world-model-only updates before the actor-critic starts
    lr: float = 3e-4
    cnn_depth: int = 32

    def roles(self, goals_are_states: bool = True) -> set[str]:
        """The CRL networks that take embeddings."""
        if self.integration not in INTEGRATIONS:
            raise ValueError(f"world_model.integration must be one of {INTEGRATIONS}, not {self.integration!r}")
        if self.integration == "goal" and not goals_are_states:
            raise ValueError("world_model.integration goal needs goals that are states (e.g. pointmaze xy); "
                             "these goals are robot-frame vectors: use critic, actor or all")
        every = {"critic", "actor", "goal"} if goals_are_states else {"critic", "actor"}
        return {"none": set(), "all": every}.get(self.integration, {self.integration})


def avg_l1_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """MR.Q's AvgL1Norm: scale each embedding to a mean absolute value of 1."""
    return x / x.abs().mean(-1, keepdim=True).clamp(min=eps)


class LatentModel(nn.Module):
    """z_s, z_sa, the next-embedding projector m, and the target state encoder."""

    def __init__(self, cfg: WorldModelConfig, state_shape: tuple[int, ...], action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.features = StateEncoder(state_shape, cfg.cnn_depth)
        self.state_head = gelu_mlp(self.features.out_dim, cfg.hidden, cfg.embed_dim, layer_norm=False)
        self.sa_encoder = gelu_mlp(cfg.embed_dim + action_dim, cfg.hidden, cfg.sa_dim, layer_norm=False)
        self.projector = nn.Linear(cfg.sa_dim, cfg.embed_dim)
        self.target = copy.deepcopy(nn.ModuleDict({"features": self.features, "state_head": self.state_head}))
        self.target.requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def z_s(self, states: torch.Tensor) -> torch.Tensor:
        return avg_l1_norm(self.state_head(self.features(states)))

    def z_sa(self, z_s: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return avg_l1_norm(self.sa_encoder(torch.cat([z_s, actions.float()], -1)))

    @torch.no_grad()
    def target_z_s(self, states: torch.Tensor) -> torch.Tensor:
        return avg_l1_norm(self.target["state_head"](self.target["features"](states)))

    def loss(self, states: torch.Tensor, actions: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Multi-step prediction of target embeddings. states [B, H+1, ...], actions [B, H, A],
        valid [B, H]: the transitions inside the trajectory."""
        b, h = actions.shape[:2]
        targets = self.target_z_s(states[:, 1:].flatten(0, 1)).view(b, h, -1)
        z = self.z_s(states[:, 0])
        errors = []
        for k in range(h):
            z = self.projector(self.z_sa(z, actions[:, k]))
            errors.append((z - targets[:, k]).square().mean(-1))
        error = torch.stack(errors, 1)                                           # [B, H]
        mask = valid.float()
        loss = (error * mask).sum() / mask.sum().clamp(min=1.0)
        # Spread of the state embeddings over the batch: near 0 would mean the encoder collapsed
        # to one embedding for every state (which predicts itself perfectly).
        return loss, {"loss": loss.detach(), "embed_std": targets[:, 0].std(0).mean(),
                      "first_step_error": error[:, 0].detach().mean(),
                      "last_step_error": (error[:, -1] * mask[:, -1]).sum().detach() / mask[:, -1].sum().clamp(min=1)}

    def update_target(self) -> bool:
        """Copy the encoder into the target every `target_every` updates (and at the first); True when it did."""
        copied = int(self.updates) % self.cfg.target_every == 0
        if copied:
            self.target["features"].load_state_dict(self.features.state_dict())
            self.target["state_head"].load_state_dict(self.state_head.state_dict())
        self.updates += 1
        return copied


class WMCRLAgent(nn.Module):
    """A CRL agent and, unless `integration` is none, the world model that feeds it."""

    def __init__(self, crl: CRLConfig, wm: WorldModelConfig, state_shape: tuple[int, ...], goal_dim: int,
                 action_dim: int, goals_are_states: bool):
        super().__init__()
        self.roles = wm.roles(goals_are_states)
        self.wm_cfg, self.precision = wm, crl.precision
        self.world_model = LatentModel(wm, state_shape, action_dim) if self.roles else None
        embed_dims = {"critic": wm.sa_dim if "critic" in self.roles else 0,
                      "actor": wm.embed_dim if "actor" in self.roles else 0,
                      "goal": wm.embed_dim if "goal" in self.roles else 0}
        self.crl = CRLAgent(crl, state_shape, goal_dim, action_dim, embed_dims)
        self.optimizers = {"crl": torch.optim.Adam(self.crl.parameters(), lr=crl.lr)}
        if self.world_model is not None:
            self.optimizers["world_model"] = torch.optim.Adam(
                [p for p in self.world_model.parameters() if p.requires_grad], lr=wm.lr)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def warm(self) -> bool:
        """Whether the actor-critic trains yet (always, without a world model)."""
        return self.world_model is None or int(self.updates) >= self.wm_cfg.warmup

    # -- inputs -----------------------------------------------------------------------------
    @torch.no_grad()
    def embeddings(self, states: torch.Tensor, goals: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        """The detached world-model embeddings: z_s of the states ("state", where the critic or
        the actor takes it) and of the goals ("goal", where the goal encoder takes it)."""
        out: dict[str, torch.Tensor | None] = {"state": None, "goal": None}
        if self.world_model is not None:
            if {"critic", "actor"} & self.roles:
                out["state"] = self.world_model.z_s(states)
            if "goal" in self.roles and goals is not None:
                out["goal"] = self.world_model.z_s(goals)
        return out

    def crl_inputs(self, states: torch.Tensor, actions: torch.Tensor, value_goals: torch.Tensor,
                   actor_goals: torch.Tensor) -> CRLInputs:
        embed = self.embeddings(states, value_goals)
        z_s = embed["state"]
        critic_embed = None
        if "critic" in self.roles:
            # z_sa of whichever actions the critic is asked about: the dataset's for its own loss,
            # the actor's for the actor's (the world model stays fixed in the CRL update).
            def critic_embed(a: torch.Tensor) -> torch.Tensor:
                return self.world_model.z_sa(z_s, a)
        return CRLInputs(states=states, actions=actions, value_goals=value_goals, actor_goals=actor_goals,
                         critic_embed=critic_embed, actor_embed=z_s if "actor" in self.roles else None,
                         value_goal_embed=embed["goal"],
                         actor_goal_embed=self.embeddings(states, actor_goals)["goal"] if "goal" in self.roles else None)

    @torch.no_grad()
    def act(self, states: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """Deterministic actions in [-1, 1] for states [B, ...] and goals [B, G]."""
        embed = self.embeddings(states, goals)
        return self.crl.act(states, goals, embed["state"] if "actor" in self.roles else None, embed["goal"])

    # -- learning ---------------------------------------------------------------------------
    def update(self, sequences: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
               make_inputs: Callable[[], CRLInputs]) -> dict:
        """One update: the world model on `sequences` (states [B, H+1, ...], actions [B, H, A],
        valid [B, H]) where there is one, then, once warm, the actor-critic on `make_inputs()`."""
        info: dict = {}
        with torch.autocast(self.updates.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            if self.world_model is not None and sequences is not None:
                info.update(self.update_world_model(*sequences))
            if self.warm:
                info.update(self.update_crl(make_inputs()))
        self.updates += 1
        return info

    def update_world_model(self, states: torch.Tensor, actions: torch.Tensor, valid: torch.Tensor) -> dict:
        """One world-model step on sequences; info under world_model/."""
        self.world_model.update_target()
        loss, info = self.world_model.loss(states, actions, valid)
        self._step("world_model", loss)
        return {f"world_model/{k}": v for k, v in info.items()}

    def update_crl(self, inputs: CRLInputs) -> dict:
        """One actor-critic step; info under critic/, value/, actor/."""
        with frozen(self.world_model):
            loss, info = self.crl.loss(inputs)
            self._step("crl", loss)
        return info

    def _step(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def optimizer_state_dict(self) -> dict[str, dict]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_optimizer_state_dict(self, state: dict[str, dict]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])
