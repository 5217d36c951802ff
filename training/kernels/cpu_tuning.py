"""Process-wide settings that make PyTorch training on a CPU fast; call once at start-up.

glibc serves every allocation above 32 MiB with a fresh mmap and unmaps it on free, so each
large activation of an update (a conv layer's output over 1,600 images is ~200 MB) is
page-faulted in again on every update: measured here, copying a 49M-element float tensor took
168 ms that way and 13.5 ms from retained memory; a DreamerV2-size bf16 update pair takes
155,000 page faults with glibc's default and 1 with this (`bench/train_update_speed.py`, with and
without --malloc-default).
Keeping freed memory in the heap (no mmap, no trimming) costs no peak memory: an update allocates
the same sizes every time, so the peak stays the peak (1.83 vs 1.82 GiB peak RSS there); between
updates the process holds its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

from training.kernels import fast_ops

_M_TRIM_THRESHOLD = -1     # mallopt parameters, glibc <malloc.h>
_M_MMAP_MAX = -4


def retain_freed_memory() -> bool:
    """Tell glibc malloc to serve large blocks from the heap and never give them back; False
    where the C library is not glibc (then nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # M_TRIM_THRESHOLD -1: never trim (mallopt(3)); a finite one returns a freed top above it.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))


def configure_cpu(threads: int, retain_memory: bool = True) -> str:
    """Intra-op threads for torch, (unless told not to) the allocator setting above, and the fast
    ELU kernel built now rather than inside the first update; returns a line saying what is in use."""
    torch.set_num_threads(max(1, threads))
    retained = retain_memory and retain_freed_memory()
    return (f"CPU: {torch.get_num_threads()} torch threads; freed memory {'retained' if retained else 'returned (glibc default)'}; "
            f"{fast_ops.describe()}")
