"""Hand-written CPU kernels for the few operations where ATen is slow here, with ATen as fallback.

`elu(x)`: ELU (alpha 1) whose forward runs `csrc/elu.c`, built with the system C compiler on first
use (-O3 -march=native, about a second) into a cache directory and loaded with ctypes; the
backward is ATen's (from the input, as nn.ELU's). Results are within 2e-7 (relative) of the exact
ELU in float32 (ATen's within 6e-8); bfloat16 results are that rounded to bfloat16. The forward
is ~4x faster than ATen's (27-34 -> 7-8 ms for the encoder's first activation, 1,600 images,
bfloat16; `bench/layer_speed.py`). The largest tensors are split across `torch.get_num_threads()` threads (ctypes
releases the GIL). Anything else (CUDA, other dtypes, small or strided tensors, ONNX export and
tracing, no C compiler, RECORE_NAV_FAST_OPS=0) takes `torch.nn.functional.elu`.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent / "csrc" / "elu.c"
FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-shared", "-fPIC"]   # contract: fused multiply-adds
MIN_ELEMENTS = 32768           # below this ATen's call is as cheap as ours
PARALLEL_ELEMENTS = 1 << 24    # a second thread pays off only above this: below it, splitting a
                               # tensor gained at most 10% here (4M: 1.17 -> 1.06 ms), at 49M 1.75x
CHUNK_ALIGN = 64               # elements; chunks start on cache-line multiples

_library: ctypes.CDLL | None = None
_loaded = False
_unavailable = ""              # why the kernels are not in use, once library() has tried
_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_KERNELS = {torch.float32: "elu_f32", torch.bfloat16: "elu_bf16"}


def cache_dir() -> Path:
    return Path(os.environ.get("RECORE_NAV_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "recore_nav"))


def _cpu_flags() -> str:
    try:
        return next(line for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.processor()


def build(compiler: str | None = None) -> Path:
    """Compile the kernels for this CPU (cached by source, flags, compiler and CPU features)."""
    compiler = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise RuntimeError("no C compiler (cc or gcc) on PATH")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), compiler.encode(), _cpu_flags().encode()])).hexdigest()[:16]
    target = cache_dir() / f"fast_ops-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Compile beside the target and rename: a concurrent or interrupted build never leaves half a file.
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".so", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        result = subprocess.run([compiler, *FLAGS, "-o", str(partial), str(SOURCE)], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[:500]}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None (logged once) where they cannot be built or are switched off."""
    global _library, _loaded, _unavailable
    if _loaded:
        return _library
    _loaded = True
    if os.environ.get("RECORE_NAV_FAST_OPS", "1") == "0" or platform.system() != "Linux":
        _unavailable = "RECORE_NAV_FAST_OPS=0" if platform.system() == "Linux" else f"not built on {platform.system()}"
        return None
    try:
        lib = ctypes.CDLL(str(build()))
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        _unavailable = str(error)
        log.warning("fast CPU kernels unavailable, using ATen's ELU: %s", error)
        return None
    for name in _KERNELS.values():
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        getattr(lib, name).restype = None
    _library = lib
    return lib


def describe() -> str:
    """Which ELU runs: the kernel's library path, or ATen's and why."""
    lib = library()
    return f"ELU kernel {lib._name}" if lib is not None else f"ELU from ATen ({_unavailable})"


def _dense(x: torch.Tensor) -> bool:
    return x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))


def _usable(x: torch.Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype in _KERNELS and x.numel() >= MIN_ELEMENTS and _dense(x)
            and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export() and library() is not None)


def _run(kernel: str, x: torch.Tensor, out: torch.Tensor) -> None:
    """Apply `kernel` elementwise to the memory of dense `x` into `out` (the same strides), on
    torch's thread count."""
    global _pool, _pool_workers
    fn, n, size = getattr(_library, kernel), x.numel(), x.element_size()
    src, dst = x.data_ptr(), out.data_ptr()
    threads = max(1, min(torch.get_num_threads(), n // PARALLEL_ELEMENTS))
    if threads == 1:
        fn(src, dst, n)
        return
    if _pool is None or _pool_workers < threads - 1:
        _pool, _pool_workers = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="fast_ops"), threads - 1
    step = -(-n // threads // CHUNK_ALIGN) * CHUNK_ALIGN
    chunks = [(i, min(step, n - i)) for i in range(0, n, step)]
    jobs = [_pool.submit(fn, src + i * size, dst + i * size, count) for i, count in chunks[1:]]
    fn(src, dst, chunks[0][1])
    for job in jobs:
        job.result()


class _ELU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)      # preserve_format: the same strides as a dense x
        _run(_KERNELS[x.dtype], x, out)
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # From the input, as nn.ELU's backward (from a bfloat16 result, exp(x) = result + 1
        # would lose most of its digits where x << 0).
        (x,) = ctx.saved_tensors
        return torch.ops.aten.elu_backward(grad, 1.0, 1.0, 1.0, False, x)


def elu(x: torch.Tensor) -> torch.Tensor:
    """`F.elu(x)` (alpha 1), through the fast kernel where it applies."""
    return _ELU.apply(x) if _usable(x) else F.elu(x)


class ELU(nn.Module):
    """`nn.ELU()` through `elu` (no parameters: state dicts are the same as with nn.ELU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return elu(x)
