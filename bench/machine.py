"""What else the machine did while a bench ran, so a number says whether it was measured quietly.

This project's machines are shared VMs: the same code's timing moves by 15-70 % between hours.
`MachineWatch` reads /proc/stat around a measurement and reports the CPU time the hypervisor
gave to other guests (steal) and the busy CPU time of other processes on this guest, both as a
share of the wall time of all CPUs. A quiet run has both near 0 %.
"""

from __future__ import annotations

import os
import resource
import time


def _cpu_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies over all CPUs since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal, sum(fields[:8])


def _own_cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class MachineWatch:
    """Start at construction; `report()` describes the machine between then and now."""

    def __init__(self) -> None:
        self.start_ticks, self.start_own, self.start_wall = _cpu_ticks(), _own_cpu_s(), time.perf_counter()

    def report(self) -> str:
        busy, steal, total = (b - a for a, b in zip(self.start_ticks, _cpu_ticks()))
        if total <= 0:
            return "machine: no /proc/stat change measured"
        hz = os.sysconf("SC_CLK_TCK")
        others_busy = max(0.0, busy / hz - (_own_cpu_s() - self.start_own))
        return (f"machine during the run ({os.cpu_count()} CPUs, {time.perf_counter() - self.start_wall:.0f} s): "
                f"steal {100 * steal / total:.1f}% (CPU time the hypervisor gave to other guests), "
                f"other processes busy {100 * others_busy * hz / total:.1f}%, load average {os.getloadavg()[0]:.1f}")
