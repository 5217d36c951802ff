"""Goal-conditioned actor-critic learned in the world model's imagination (DreamerV2, continuous).

From every posterior state of a replayed batch the actor rolls the prior forward `horizon` steps;
lambda-returns from predicted rewards, continuation and a slow target critic train the critic
(regression) and the actor (dynamics backpropagation through the straight-through RSSM, plus
entropy). Actor and critic see [feat, goal]; imagined states take their goal from the goal head.
With `bc_scale > 0` the actor also imitates the simulator's expert on the replayed real states
(MoDem-style demonstration guidance; the collected states are the policy's own, so it is DAgger).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from recore_nav.task import ACTION_DIM, GOAL_DIM
from training.methods.networks import Actor, TanhNormalMixture, mlp
from training.methods.world_model import WorldModel


@dataclass
class BehaviorConfig:
    horizon: int = 15
    gamma: float = 0.99
    lam: float = 0.95
    units: int = 400
    layers: int = 4
    actor_lr: float = 8e-5
    critic_lr: float = 8e-5
    eps: float = 1e-5
    grad_clip: float = 100.0
    entropy_scale: float = 1e-4
    actor_min_std: float = 0.1
    actor_init_std: float = 1.0
    actor_modes: int = 1            # > 1: a mixture actor (multimodal demonstrations; see networks.TanhNormalMixture)
    slow_target_every: int = 100    # updates between hard copies into the target critic
    slow_target_fraction: float = 1.0
    # Imitation of the simulator's shortest-path expert on replayed (on-policy: DAgger) states,
    # added to the imagination actor loss. 0 is the paper's method; see config/train/recore_pointnav.yaml.
    bc_scale: float = 0.0


def lambda_return(reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor, lam: float) -> torch.Tensor:
    """TD(lambda) targets for states 0..H-1.

    reward, discount [H, N]: received on arriving at states 1..H; value [H+1, N] for states 0..H.
    R_H = v_H;  R_t = r_{t+1} + d_{t+1} ((1 - lam) v_{t+1} + lam R_{t+1}).
    """
    inputs = reward + discount * (1.0 - lam) * value[1:]
    last = value[-1]
    returns = []
    for t in reversed(range(reward.shape[0])):
        last = inputs[t] + discount[t] * lam * last
        returns.append(last)
    return torch.stack(returns[::-1])


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (mask * values).sum() / mask.sum().clamp(min=1.0)


class ActorCritic(nn.Module):
    """Actor, critic and slow target critic; `loss(world_model, posterior)` gives both losses
    (the agent steps their optimisers)."""

    def __init__(self, cfg: BehaviorConfig, feat_size: int):
        super().__init__()
        self.cfg = cfg
        self.actor = Actor(feat_size + GOAL_DIM, ACTION_DIM, units=cfg.units, layers=cfg.layers,
                           min_std=cfg.actor_min_std, init_std=cfg.actor_init_std, modes=cfg.actor_modes)
        self.critic = mlp(feat_size + GOAL_DIM, cfg.units, cfg.layers, 1)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def imagine(self, world_model: WorldModel, deter: torch.Tensor, stoch: torch.Tensor, goal: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Roll the prior from N start states: feats [H+1, N, F], goals [H+1, N, 3], action
        log-probabilities [H, N]. Gradients flow from the states back into the actions."""
        rssm, goal_head = world_model.rssm, world_model.heads["goal"]
        feats, goals, log_probs = [torch.cat([deter, stoch], -1)], [goal], []
        for _ in range(self.cfg.horizon):
            # The actor's input is detached (DreamerV2): its gradient comes through the returns.
            policy = self.actor(torch.cat([feats[-1], goals[-1]], -1).detach())
            action, log_prob = policy.rsample_with_log_prob()
            deter, stoch = rssm.img_step(deter, stoch, action)
            feat = torch.cat([deter, stoch], -1)
            feats.append(feat)
            goals.append(goal_head(feat).float())
            log_probs.append(log_prob)
        return torch.stack(feats), torch.stack(goals), torch.stack(log_probs)

    def loss(self, world_model: WorldModel, posterior: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(actor_loss, critic_loss, info) from imagination started at every posterior state."""
        cfg = self.cfg
        deter = posterior["deter"].flatten(0, 1)
        stoch = posterior["stoch"].flatten(0, 1)
        goal = posterior["goal"].flatten(0, 1)
        start_cont = posterior["cont"].flatten()
        feats, goals, log_probs = self.imagine(world_model, deter, stoch, goal)
        inputs = torch.cat([feats, goals], -1)                                   # [H+1, N, F+3]

        reward = world_model.heads["reward"](feats[1:]).squeeze(-1).float()     # [H, N]
        value = self.target_critic(inputs).squeeze(-1).float()                  # [H+1, N]
        with torch.no_grad():
            discount = cfg.gamma * torch.sigmoid(world_model.heads["cont"](feats[1:].detach()).squeeze(-1).float())
            # Weight of each imagined state: the chance it is still inside the episode.
            weight = torch.cumprod(torch.cat([start_cont[None], discount[:-1]], 0), 0)
        returns = lambda_return(reward, value, discount, cfg.lam)               # [H, N]
        entropy = -log_probs
        actor_loss = -(weight * (returns + cfg.entropy_scale * entropy)).mean()
        imitation_info = {}
        if cfg.bc_scale > 0 and "expert_action" in posterior:
            imitation, imitation_info = self.imitation_loss(feats[0], goal, posterior["expert_action"].flatten(0, 1))
            actor_loss = actor_loss + cfg.bc_scale * imitation

        critic_value = self.critic(inputs[:-1].detach()).squeeze(-1).float()
        critic_loss = (weight * 0.5 * (critic_value - returns.detach()).square()).mean()
        info = {
            "actor/loss": actor_loss.detach(),
            "actor/entropy": entropy.detach().mean(),
            "actor/imag_return": returns.detach().mean(),
            "actor/imag_reward": reward.detach().mean(),
            **{f"actor/{key}": value for key, value in imitation_info.items()},
            "critic/loss": critic_loss.detach(),
            "critic/value": critic_value.detach().mean(),
        }
        return actor_loss, critic_loss, info

    def imitation_loss(self, feat: torch.Tensor, goal: torch.Tensor, expert_action: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Squared error of the actor's deterministic action (what the robot runs) against the
        expert's command at the same real state; states without a label (NaN) do not count.

        A mixture actor learns by multiple-choice learning instead: only the component nearest
        the expert's command is pulled to it, and the weights learn to pick that component
        (cross-entropy), so two ways round an obstacle stay two modes rather than one average."""
        valid = torch.isfinite(expert_action).all(-1).float()
        target = torch.nan_to_num(expert_action, nan=0.0)
        policy = self.actor(torch.cat([feat, goal], -1).detach())
        info = {}
        if isinstance(policy, TanhNormalMixture):
            errors = (policy.component_modes() - target.unsqueeze(-2)).square().sum(-1)     # [N, K]
            nearest = errors.argmin(-1)
            error = errors.gather(-1, nearest.unsqueeze(-1)).squeeze(-1)
            error = error + F.cross_entropy(policy.logits, nearest, reduction="none")
            info["imitation_mode_error"] = masked_mean((policy.mode() - target).square().sum(-1), valid).detach()
        else:
            error = (policy.mode() - target).square().sum(-1)
        loss = masked_mean(error, valid)
        return loss, {"imitation_loss": loss.detach(), "imitation_labelled": valid.mean(), **info}

    def update_target(self) -> None:
        """Hard (fraction 1) or Polyak copy into the target critic every `slow_target_every` updates."""
        if int(self.updates) % self.cfg.slow_target_every == 0:
            with torch.no_grad():
                for target, source in zip(self.target_critic.parameters(), self.critic.parameters()):
                    target.lerp_(source, self.cfg.slow_target_fraction)
        self.updates += 1
