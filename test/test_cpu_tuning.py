"""`training.cpu_tuning.retain_freed_memory`: large freed blocks come back without page faults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Minor page faults of re-allocating and filling a 256 MB tensor, after one was allocated and freed.
PROBE = """
import resource, sys, torch
sys.path.insert(0, {repo!r})
from training.cpu_tuning import retain_freed_memory
if {retain}:
    assert retain_freed_memory()
torch.empty(64 * 2**20).fill_(1.0)           # allocate, touch and free 256 MB
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.empty(64 * 2**20).fill_(2.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(retain: bool) -> int:
    result = subprocess.run([sys.executable, "-c", PROBE.format(repo=str(REPO_ROOT), retain=retain)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_freed_large_blocks_are_reused_without_page_faults() -> None:
    pages = 256 * 2**20 // 4096
    assert _faults(retain=False) > pages // 2     # glibc's default: mmap'd afresh, faulted in again
    assert _faults(retain=True) < pages // 20     # kept in the heap: reused as it is
