"""The ReCoRe agent: world model + actor-critic in imagination, one nn.Module, and the
recurrent policy step that the robot runs. Every row of the paper's table is this agent under a
different `config/train/<name>.yaml` (dreamer, recore_depth/seg/denoise and the ablations).

API (stable; the training program, export and tests use exactly this):

    cfg = training.config.load_config("config/train/recore_depth.yaml", overrides=["agent.batch_size=8"])
    agent = Agent(cfg.agent, image_size=cfg.env.image_size, device="cpu")
    info = agent.update(batch)      # one world-model update + one imagination update -> dict[str, float]
        # batch: torch tensors [B, T, ...]: rgb uint8 [B,T,H,W,3], depth float32 [B,T,H,W,1],
        # seg uint8/long [B,T,H,W], goal float32 [B,T,3], action float32 [B,T,2] (the action taken
        # at t-1 that led into obs t), reward float32 [B,T] (received on arriving at obs t),
        # is_first bool [B,T], is_terminal bool [B,T]. depth/seg are needed only by heads that use them.
    state = agent.initial_state(batch_size)                 # float32 [B, agent.state_size], zeros
    action, state = agent.policy_step(rgb, goal, prev_action, state, explore=True)
        # rgb uint8 [B,H,W,3], goal [B,3], prev_action [B,2] (zeros after a reset) -> action [B,2] in [-1,1]
    module = agent.policy_step_module()   # forward(rgb, goal, prev_action, state) -> (action, next_state);
        # deterministic (explore=False), what ONNX export traces (opset 17, uint8 image in)
    agent.optimizers                      # {"model": AdamW, "actor": Adam, "critic": Adam}
    agent.optimizer_state_dict() / agent.load_optimizer_state_dict(d)
    agent.load_training_state(weights, optimizers, fresh_actor=False)   # a checkpoint's, or all but the actor
    agent.state_dict() / load_state_dict()  # all weights, the target critic and the update counter
    agent.aux_prediction(batch)           # {"aux/<head>": uint8 [K,H,2W,3]} target | prediction
    agent.update_world_model(batch) -> (info, posterior); agent.update_behavior(posterior) -> info
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from recore_nav.task import ACTION_DIM, GOAL_DIM
from training.methods.behavior import ActorCritic, BehaviorConfig
from training.methods.world_model import RepresentationConfig, WorldModel, WorldModelConfig


@dataclass
class AgentConfig:
    method: str = "recore_depth"
    precision: str = "fp32"         # fp32, or bf16 mixed precision in both updates (DreamerV2 trains in 16 bit)
    batch_size: int = 16
    seq_len: int = 50
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    representation: RepresentationConfig = field(default_factory=RepresentationConfig)
    behavior: BehaviorConfig = field(default_factory=BehaviorConfig)

BATCH_KEYS = ("rgb", "goal", "action", "reward", "is_first", "is_terminal")


class PolicyStep(nn.Module):
    """One filtering step of the RSSM and the actor's action, as one graph.

    forward(rgb uint8 [B,H,W,3], goal [B,3], prev_action [B,2], state [B,S]) -> (action [B,2], state [B,S]).
    With explore=False the posterior and the action are their modes, so the step is deterministic
    and free of data-dependent control flow (what torch.onnx.export traces)."""

    def __init__(self, world_model: WorldModel, actor: nn.Module, explore: bool = False):
        super().__init__()
        self.world_model, self.actor, self.explore = world_model, actor, explore

    def forward(self, rgb: torch.Tensor, goal: torch.Tensor, prev_action: torch.Tensor, state: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        rssm = self.world_model.rssm
        deter, stoch = rssm.split(state)
        embed_goal = self.world_model.embed(rgb, goal)
        deter, stoch = rssm.obs_step(deter, stoch, prev_action, embed_goal, sample=self.explore)
        feat = torch.cat([deter, stoch], -1)
        policy = self.actor(torch.cat([feat, goal], -1))
        action = policy.rsample_with_log_prob()[0] if self.explore else policy.mode()
        return action, feat


class Agent(nn.Module):
    """ReCoRe (or DreamerV2 and the ablations, by configuration) for point-goal navigation from
    RGB and a robot-frame goal: a world model trained on replayed sequences and a continuous
    actor-critic trained in its imagination."""

    def __init__(self, cfg: AgentConfig, image_size: int = 64, device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg, self.image_size = cfg, image_size
        self.device = torch.device(device)
        self.world_model = WorldModel(cfg.world_model, cfg.representation, image_size)
        self.behavior = ActorCritic(cfg.behavior, self.world_model.feat_size)
        self.to(self.device)
        wm, beh = cfg.world_model, cfg.behavior
        # fused: one kernel over all parameters (the world model's step: 21-23 -> 9-12 ms on the
        # CPU, bench/layer_speed.py).
        self.optimizers = {
            "model": torch.optim.AdamW(self.world_model.parameters(), lr=wm.lr, eps=wm.eps,
                                       weight_decay=wm.weight_decay, fused=True),
            "actor": torch.optim.Adam(self.behavior.actor.parameters(), lr=beh.actor_lr, eps=beh.eps, fused=True),
            "critic": torch.optim.Adam(self.behavior.critic.parameters(), lr=beh.critic_lr, eps=beh.eps, fused=True),
        }
        self._actor_params = list(self.behavior.actor.parameters())
        self._step_module = PolicyStep(self.world_model, self.behavior.actor, explore=False)
        self._explore_module = PolicyStep(self.world_model, self.behavior.actor, explore=True)

    @property
    def state_size(self) -> int:
        return self.world_model.rssm.state_size

    # -- acting ---------------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> torch.Tensor:
        return torch.zeros(batch_size, self.state_size, device=self.device)

    @torch.inference_mode()
    def policy_step(self, rgb: torch.Tensor, goal: torch.Tensor, prev_action: torch.Tensor, state: torch.Tensor,
                    explore: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, goal, prev_action, state = (torch.as_tensor(x).to(self.device) for x in (rgb, goal, prev_action, state))
        if rgb.dtype != torch.uint8 or rgb.dim() != 4 or rgb.shape[-1] != 3:
            raise ValueError(f"rgb must be uint8 [B,H,W,3], got {rgb.dtype} {tuple(rgb.shape)}")
        module = self._explore_module if explore else self._step_module
        return module(rgb, goal.float(), prev_action.float(), state.float())

    def policy_step_module(self) -> PolicyStep:
        """The deterministic step as an nn.Module sharing this agent's weights (export traces it)."""
        return self._step_module

    # -- learning -------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One world-model update, then one actor-critic update from all B*T posterior states."""
        model_info, posterior = self.update_world_model(batch)
        behavior_info = self.update_behavior(posterior)
        return to_floats({**model_info, **behavior_info})

    def update_world_model(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        batch = self._prepare(batch)
        with self._autocast():
            loss, info, posterior = self.world_model.loss(batch)
        info["model/grad_norm"] = self._step("model", loss, list(self.world_model.parameters()),
                                             self.cfg.world_model.grad_clip)
        return info, posterior

    def update_behavior(self, posterior: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.behavior.update_target()
        with self._autocast():
            actor_loss, critic_loss, info = self.behavior.loss(self.world_model, posterior)
        clip = self.cfg.behavior.grad_clip
        critic_params = list(self.behavior.critic.parameters())
        for name in ("actor", "critic"):
            self.optimizers[name].zero_grad(set_to_none=True)
        # One backward pass for both: the actor loss does not depend on the critic's weights (its
        # values come from the target critic) and the critic loss sees detached inputs, so the
        # gradients are those of two passes. inputs= skips the world model's weight gradients.
        (actor_loss + critic_loss).backward(inputs=self._actor_params + critic_params)
        info["actor/grad_norm"] = self._clip_and_step("actor", self._actor_params, clip)
        info["critic/grad_norm"] = self._clip_and_step("critic", critic_params, clip)
        return info

    def _autocast(self) -> torch.autocast:
        """bf16 mixed precision for the matrix products and convolutions of both updates where
        configured (DreamerV2 trains in mixed 16-bit precision); weights, optimiser state,
        distributions, losses and the recurrent state stay float32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def _step(self, name: str, loss: torch.Tensor, params: list[nn.Parameter], clip: float) -> torch.Tensor:
        self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        return self._clip_and_step(name, params, clip)

    def _clip_and_step(self, name: str, params: list[nn.Parameter], clip: float) -> torch.Tensor:
        norm = nn.utils.clip_grad_norm_(params, clip, foreach=True)
        self.optimizers[name].step()
        return norm.detach()

    def _prepare(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [k for k in BATCH_KEYS if k not in batch]
        rep = self.cfg.representation
        if rep.aux_target in ("depth", "seg") and rep.aux_target not in batch:
            missing.append(rep.aux_target)
        if missing:
            raise KeyError(f"batch lacks {', '.join(missing)}")
        rgb = batch["rgb"]
        if rgb.dtype != torch.uint8 or rgb.dim() != 5 or tuple(rgb.shape[2:]) != (self.image_size, self.image_size, 3):
            raise ValueError(f"batch rgb must be uint8 [B,T,{self.image_size},{self.image_size},3], "
                             f"got {rgb.dtype} {tuple(rgb.shape)}")
        if batch["goal"].shape[-1] != GOAL_DIM or batch["action"].shape[-1] != ACTION_DIM:
            raise ValueError(f"goal must end in {GOAL_DIM} and action in {ACTION_DIM}")
        return {k: torch.as_tensor(v).to(self.device, non_blocking=True) for k, v in batch.items()}

    # -- checkpoints and summaries --------------------------------------------------------
    def optimizer_state_dict(self) -> dict[str, dict]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_training_state(self, weights: dict[str, torch.Tensor], optimizers: dict[str, dict],
                            fresh_actor: bool = False) -> None:
        """Weights and optimiser states of a checkpoint. With `fresh_actor`, everything but the
        actor and its optimiser: a new actor (say, another `behavior.actor_modes`) on the run's
        world model and critic; anything else that does not fit raises."""
        if not fresh_actor:
            self.load_state_dict(weights)
            self.load_optimizer_state_dict(optimizers)
            return
        # The policy-step modules share the actor, so its weights appear under them too.
        kept = {k: v for k, v in weights.items() if "actor" not in k.split(".")}
        missing, unexpected = self.load_state_dict(kept, strict=False)
        if unexpected or any("actor" not in k.split(".") for k in missing):
            raise RuntimeError(f"checkpoint does not fit this agent beyond its actor: missing {missing}, "
                               f"unexpected {unexpected}")
        self.load_optimizer_state_dict({**{k: v for k, v in optimizers.items() if k != "actor"},
                                        "actor": self.optimizers["actor"].state_dict()})

    def load_optimizer_state_dict(self, state: dict[str, dict]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])
            for group in opt.param_groups:      # a state saved from a foreach optimiser runs fused here
                group.update(fused=True, foreach=False)

    def aux_prediction(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.world_model.aux_prediction(self._prepare(batch))


def to_floats(info: dict[str, torch.Tensor]) -> dict[str, float]:
    """Scalars to Python floats with one device synchronisation."""
    keys = list(info)
    values = torch.stack([torch.as_tensor(info[k], dtype=torch.float32).reshape(()).to("cpu") for k in keys]).tolist()
    return dict(zip(keys, values))
