"""`training.kernels.cpu_tuning.retain_freed_memory`: large blocks come from malloc's heap and stay there.

What this buys in training (no page faults re-touching each update's activations; 2.5 -> 2.2 s a
DreamerV2-size update pair when introduced) is printed by `bench/train_update_speed.py`; page-fault counts of a
toy loop depend on where glibc happens to place small blocks, so the test checks the allocator's
own books instead (glibc's mallinfo2): where a 256 MB block came from, and whether it was given
back to the system when freed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import ctypes, json, sys, torch
sys.path.insert(0, {repo!r})
from training.kernels.cpu_tuning import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2

if {retain}:
    assert retain_freed_memory()
block = torch.empty(64 * 2**20).fill_(1.0)          # 256 MB
held = libc.mallinfo2()
del block
freed = libc.mallinfo2()
print(json.dumps({{"mmapped_while_held": held.hblkhd, "heap_after_free": freed.arena, "free_in_heap": freed.fordblks}}))
"""
BLOCK = 256 * 2**20


def _malloc_books(retain: bool) -> dict[str, int]:
    result = subprocess.run([sys.executable, "-c", PROBE.format(repo=str(REPO_ROOT), retain=retain)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_large_blocks_come_from_the_heap_and_stay_there_when_freed() -> None:
    default = _malloc_books(retain=False)
    assert default["mmapped_while_held"] >= BLOCK     # glibc's default: its own mmap ...
    assert default["heap_after_free"] < BLOCK         # ... unmapped on free, faulted in afresh next time
    retained = _malloc_books(retain=True)
    assert retained["mmapped_while_held"] < BLOCK     # from the heap ...
    assert retained["free_in_heap"] >= BLOCK          # ... and kept there, touched, for the next update
