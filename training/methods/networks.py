"""Building blocks of the world model and the actor-critic: CNN encoder and decoder, MLPs,
the layer-normalised GRU cell, action distribution and the image intervention.

Images enter as uint8 [..., H, W, 3] and are converted once, inside, to float [-0.5, 0.5]
in channels-last memory (the fast convolution layout on a CPU).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from training.kernels.fast_ops import ELU


def image_to_float(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-0.5, 0.5]. The permuted view of NHWC memory
    is already channels-last, the fast convolution layout on a CPU, so this is one conversion."""
    x = rgb.permute(0, 3, 1, 2).float()
    return x.mul_(1.0 / 255.0).sub_(0.5)


class ConvEncoder(nn.Module):
    """DreamerV2's encoder: four 4x4 stride-2 convolutions (depth x 1, 2, 4, 8), ELU, flattened."""

    def __init__(self, depth: int, image_size: int, in_channels: int = 3):
        super().__init__()
        layers, channels = [], in_channels
        for i in range(4):
            layers += [nn.Conv2d(channels, depth * 2 ** i, 4, 2), ELU()]
            channels = depth * 2 ** i
        self.net = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        size = image_size
        for _ in range(4):
            size = (size - 4) // 2 + 1
        self.out_dim = channels * size * size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """float [N, C, H, W] -> [N, out_dim]."""
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return self.net(image).flatten(1)      # the exported graph keeps plain convolutions
        # The last layer's output is tiny (2x2 at 64x64): as one matrix product of its input
        # patches it trains over 2x faster than oneDNN's convolution, whose weight gradient is slow
        # at that shape (bench/layer_speed.py); the other layers are faster as convolutions.
        last, activation = self.net[-2], self.net[-1]
        return activation(conv_as_patch_product(self.net[:-2](image), last.weight, last.bias, last.stride[0])).flatten(1)


def conv_as_patch_product(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """`conv2d(x, weight, bias, stride)` (no padding) as one matrix product of the input's patches,
    gathered by slicing the channels-last view: [N, C, H, W] -> [N, C_out, H', W'] (channels-last).
    Fast where the output has few positions; the slices are one per output position."""
    n, c, h, w = x.shape
    out_c, _, k, _ = weight.shape
    rows, cols = (h - k) // stride + 1, (w - k) // stride + 1
    nhwc = x.permute(0, 2, 3, 1)
    patches = torch.stack([nhwc[:, stride * i:stride * i + k, stride * j:stride * j + k]
                           for i in range(rows) for j in range(cols)], 1)
    y = F.linear(patches.reshape(n * rows * cols, k * k * c), weight.permute(0, 2, 3, 1).reshape(out_c, -1), bias)
    return y.view(n, rows, cols, out_c).permute(0, 3, 1, 2)


class ConvDecoder(nn.Module):
    """DreamerV2's decoder: features -> 1x1 x 32*depth -> transposed convolutions (5, 5, 6, 6,
    stride 2) -> 64x64 map, resized to the image size when that is not 64."""

    def __init__(self, feat_dim: int, depth: int, out_channels: int, image_size: int):
        super().__init__()
        self.linear = nn.Linear(feat_dim, 32 * depth)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(32 * depth, 4 * depth, 5, 2), ELU(),
            nn.ConvTranspose2d(4 * depth, 2 * depth, 5, 2), ELU(),
            nn.ConvTranspose2d(2 * depth, depth, 6, 2), ELU(),
            nn.ConvTranspose2d(depth, out_channels, 6, 2),
        ).to(memory_format=torch.channels_last)
        self.image_size = image_size

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """[N, feat_dim] -> [N, out_channels, image_size, image_size]."""
        first = self.net[0]
        c_in, c_out, k, _ = first.weight.shape
        # A transposed convolution of a 1x1 map is a matrix product; as one it runs several times
        # faster than the convolution routine and yields channels-last memory directly.
        weight = first.weight.permute(0, 2, 3, 1).reshape(c_in, k * k * c_out)
        x = (self.linear(feat) @ weight).view(-1, k, k, c_out)
        x = (x + first.bias.to(x.dtype)).permute(0, 3, 1, 2)
        last = self.net[-1]
        for layer in self.net[1:]:
            if layer is last and last.kernel_size[0] % last.stride[0] == 0:
                # oneDNN's transposed convolution to a map of few channels runs at ~30 GFLOP/s; the
                # same product as a sub-pixel convolution is 2-3x faster (bench/layer_speed.py).
                x = SubPixelConvTranspose.apply(x, layer.weight.to(x.dtype), layer.stride[0])
                x = x + layer.bias.to(x.dtype)[:, None, None]
            elif isinstance(layer, nn.ConvTranspose2d):
                # The bias is added apart: oneDNN's bf16 transposed convolution with a bias ran
                # five times slower than without one here (213 vs 43 ms for the 128->64 layer).
                x = F.conv_transpose2d(x, layer.weight, None, layer.stride)
                x = x + layer.bias.to(x.dtype)[:, None, None]
            else:
                x = layer(x)
        if self.image_size != 64:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return x


class SubPixelConvTranspose(torch.autograd.Function):
    """`conv_transpose2d(x, weight, stride=s)` (no padding) for a kernel size k divisible by s,
    computed forward as a convolution with s*s outputs per channel, one per output phase, over
    the input padded by k/s - 1, then interleaved by pixel_shuffle. The backward is the transposed
    convolution's own (oneDNN's is fast there; the sub-pixel form's is not)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        c_in, c_out, k, _ = weight.shape
        taps = k // stride
        # Output pixel (s*i + p) gathers kernel rows s*q + p from input row i - q, q < taps: a
        # correlation over the padded input with the kernel rows of phase p in reverse order.
        kernel = (weight.view(c_in, c_out, taps, stride, taps, stride).flip(2, 4)
                  .permute(1, 3, 5, 0, 2, 4).reshape(c_out * stride * stride, c_in, taps, taps))
        y = F.conv2d(F.pad(x, (taps - 1,) * 4), kernel.contiguous(memory_format=torch.channels_last))
        return F.pixel_shuffle(y, stride)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, weight = ctx.saved_tensors
        grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, [ctx.stride] * 2, [0, 0], [1, 1], True, [0, 0], 1,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False])
        return grad_x, grad_weight, None


def mlp(in_dim: int, units: int, layers: int, out_dim: int) -> nn.Sequential:
    """`layers` hidden ELU layers of `units`, then a linear output."""
    modules, dim = [], in_dim
    for _ in range(layers):
        modules += [nn.Linear(dim, units), ELU()]
        dim = units
    modules.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*modules)


class LayerNormGRUCell(nn.Module):
    """DreamerV2's GRU: one fused linear for the three gates, layer norm, update bias -1."""

    def __init__(self, in_dim: int, deter: int):
        super().__init__()
        self.linear = nn.Linear(in_dim + deter, 3 * deter, bias=False)
        self.norm = nn.LayerNorm(3 * deter)
        self.deter = deter

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gates = self.norm(self.linear(torch.cat([x, h], -1))).float()
        reset, cand, update = gates.split(self.deter, -1)
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1.0 - update) * h


def tanh_log_det(pre_tanh: torch.Tensor) -> torch.Tensor:
    """log|d tanh(u)/du| summed over the action: 2 (log 2 - u - softplus(-2u)), numerically stable."""
    return (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)


class TanhNormal:
    """Normal squashed by tanh (Dreamer's continuous actor); the mode is tanh(mean)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.mean, self.std = mean, std

    def mode(self) -> torch.Tensor:
        return torch.tanh(self.mean)

    def rsample_with_log_prob(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised sample and its log-probability (summed over action dims)."""
        noise = torch.randn_like(self.mean)
        pre_tanh = self.mean + self.std * noise
        action = torch.tanh(pre_tanh)
        log_prob = (-0.5 * noise.square() - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        return action, log_prob - tanh_log_det(pre_tanh)


class TanhNormalMixture:
    """A mixture of `modes` tanh-Normals with learned weights. Its mode is the most likely
    component's tanh(mean), so where the demonstrations split (go round an obstacle on the left
    or on the right) the robot commits to one side instead of driving at their average."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, logits: torch.Tensor):
        self.mean, self.std, self.logits = mean, std, logits          # [.., K, A], [.., K, A], [.., K]

    def component_modes(self) -> torch.Tensor:
        return torch.tanh(self.mean)

    def mode(self) -> torch.Tensor:
        # A comparison instead of argmax + gather keeps the exported graph simple; ties average.
        best = (self.logits >= self.logits.amax(-1, keepdim=True)).to(self.mean.dtype)
        best = best / best.sum(-1, keepdim=True)
        return torch.tanh((best.unsqueeze(-1) * self.mean).sum(-2))

    def rsample_with_log_prob(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Pick a component by its weight, then a reparameterised sample of it; the
        log-probability is the mixture's."""
        choice = F.one_hot(torch.distributions.Categorical(logits=self.logits.detach()).sample(),
                           self.logits.shape[-1]).to(self.mean.dtype).unsqueeze(-1)
        mean, std = (choice * self.mean).sum(-2), (choice * self.std).sum(-2)
        pre_tanh = mean + std * torch.randn_like(mean)
        # log N(pre_tanh; mean_k, std_k) for every component k, mixed by the weights.
        z = (pre_tanh.unsqueeze(-2) - self.mean) / self.std
        log_normal = (-0.5 * z.square() - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = torch.logsumexp(F.log_softmax(self.logits, -1) + log_normal, -1)
        return torch.tanh(pre_tanh), log_prob - tanh_log_det(pre_tanh)


class Actor(nn.Module):
    """Continuous actor on [feat, goal]: tanh-Normal with learned std (Dreamer), or with
    `modes` > 1 a mixture of that many (see `TanhNormalMixture`)."""

    def __init__(self, in_dim: int, action_dim: int, *, units: int, layers: int, min_std: float, init_std: float,
                 modes: int = 1):
        super().__init__()
        self.modes, self.action_dim = modes, action_dim
        self.net = mlp(in_dim, units, layers, 2 * action_dim if modes == 1 else modes * (2 * action_dim + 1))
        self.min_std = min_std
        self.raw_init_std = math.log(math.exp(init_std) - 1.0)

    def forward(self, x: torch.Tensor) -> TanhNormal | TanhNormalMixture:
        out = self.net(x).float()
        if self.modes > 1:
            logits, out = out[..., :self.modes], out[..., self.modes:].unflatten(-1, (self.modes, 2 * self.action_dim))
        mean, std = out.chunk(2, -1)
        mean = 5.0 * torch.tanh(mean / 5.0)  # keeps tanh out of saturation
        std = F.softplus(std + self.raw_init_std) + self.min_std
        return TanhNormal(mean, std) if self.modes == 1 else TanhNormalMixture(mean, std, logits)


def _rgb_to_yiq() -> torch.Tensor:
    return torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


class StyleIntervention(nn.Module):
    """ReCoRe's intervention on appearance: colour jitter (brightness, contrast, saturation, hue)
    drawn once per sequence, and a random shift (replicate-padded crop) drawn per frame.
    Geometry-bearing targets (depth, segmentation) are left untouched, so they are invariant to it."""

    def __init__(self, *, shift_pad: int, brightness: float, contrast: float, saturation: float, hue: float):
        super().__init__()
        self.pad, self.brightness, self.contrast = shift_pad, brightness, contrast
        self.saturation, self.hue = saturation, hue
        yiq = _rgb_to_yiq()
        self.register_buffer("yiq", yiq, persistent=False)
        self.register_buffer("yiq_inv", torch.linalg.inv(yiq), persistent=False)

    def forward(self, rgb: torch.Tensor, batch: int) -> torch.Tensor:
        """uint8 [B*T, H, W, 3] -> intervened float [B*T, 3, H, W] in [-0.5, 0.5], channels-last."""
        n, h, w, _ = rgb.shape
        time = n // batch
        dev = rgb.device
        if self.pad > 0:
            rgb = random_shift(rgb, self.pad)   # on uint8: a quarter of the memory traffic

        def per_sequence(scale: float, centre: float) -> torch.Tensor:
            draw = centre + scale * (2.0 * torch.rand(batch, 1, device=dev) - 1.0)
            return draw.expand(batch, time).reshape(n)

        # Hue rotation and saturation in YIQ space, contrast about the image mean and brightness
        # are together one affine colour map per image: x' = A x + o, applied in one batched product.
        angle = per_sequence(self.hue * 2 * math.pi, 0.0)
        sat = per_sequence(self.saturation, 1.0)
        cos, sin = torch.cos(angle) * sat, torch.sin(angle) * sat
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        rot = torch.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], -1).view(n, 3, 3)
        colour = self.yiq_inv @ rot @ self.yiq                                     # [n, 3, 3]
        contrast = per_sequence(self.contrast, 1.0).view(n, 1, 1)
        brightness = per_sequence(self.brightness, 0.0).view(n, 1, 1)
        pixels = rgb.reshape(n, h * w, 3).float()                                   # 0..255
        mean = (colour @ pixels.mean(1).unsqueeze(-1)).mean((1, 2), keepdim=True) / 255.0
        offset = ((1.0 - contrast) * mean + brightness - 0.5).expand(n, 1, 3)
        matrix = (contrast / 255.0) * colour.transpose(1, 2)
        out = torch.baddbmm(offset, pixels, matrix).clamp_(-0.5, 0.5)
        return out.view(n, h, w, 3).permute(0, 3, 1, 2)


def random_shift(rgb: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ's shift of [N, H, W, C] images by up to `pad` pixels, replicating the border
    (a crop of the padded image is a gather with clamped indices)."""
    n, h, w, c = rgb.shape
    dy = torch.randint(-pad, pad + 1, (n, 1), device=rgb.device)
    dx = torch.randint(-pad, pad + 1, (n, 1), device=rgb.device)
    rows = (torch.arange(h, device=rgb.device) + dy).clamp_(0, h - 1)
    cols = (torch.arange(w, device=rgb.device) + dx).clamp_(0, w - 1)
    flat = (rows[:, :, None] * w + cols[:, None, :]).view(n, h * w, 1).expand(n, h * w, c)
    return rgb.reshape(n, h * w, c).gather(1, flat).view(n, h, w, c)
