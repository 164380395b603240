"""Memory and CPU of processes, read from /proc (psutil is not a dependency). Linux only.

- VmRSS: resident memory now; VmHWM: its high-water mark (peak) over the process's life.
- CPU seconds: utime + stime from /proc/<pid>/stat, in clock ticks.
https://man7.org/linux/man-pages/man5/proc_pid_status.5.html
https://man7.org/linux/man-pages/man5/proc_pid_stat.5.html
"""

from __future__ import annotations

import os
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Usage:
    """One process (or a tree of them, summed): resident and peak memory in kB, CPU seconds."""

    rss_kb: int = 0
    hwm_kb: int = 0
    cpu_s: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.rss_kb + other.rss_kb, self.hwm_kb + other.hwm_kb, self.cpu_s + other.cpu_s)

    def as_dict(self) -> dict[str, float]:
        return {"rss_mb": round(self.rss_kb / 1024, 1), "peak_rss_mb": round(self.hwm_kb / 1024, 1),
                "cpu_s": round(self.cpu_s, 2)}


def parse_status_kb(text: str, field: str) -> int:
    """A `Field:   1234 kB` line of /proc/<pid>/status -> 1234 (0 when absent, e.g. a zombie)."""
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def parse_stat(text: str) -> tuple[int, float]:
    """/proc/<pid>/stat -> (parent pid, utime + stime in ticks). The name (field 2) may hold spaces."""
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return int(rest[1]), float(int(rest[11]) + int(rest[12]))


def usage(pid: int) -> Usage:
    """One process; an exited process reads as zero."""
    try:
        status = (PROC / str(pid) / "status").read_text()
        _, ticks = parse_stat((PROC / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError, IndexError):
        return Usage()
    return Usage(parse_status_kb(status, "VmRSS"), parse_status_kb(status, "VmHWM"), ticks / _ticks_per_second())


def children_of(parents: dict[int, int], pid: int) -> list[int]:
    """Pure: every descendant of `pid` in a {pid: ppid} map, breadth first."""
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop(0)
        kids = sorted(p for p, parent in parents.items() if parent == current)
        found += kids
        frontier += kids
    return found


def descendants(pid: int) -> list[int]:
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = parse_stat((entry / "stat").read_text())[0]
            except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError, IndexError):
                continue
    return children_of(parents, pid)


def tree_usage(pid: int) -> Usage:
    """A process and its live descendants (MiniStack runs each Lambda worker as a child)."""
    total = usage(pid)
    for child in descendants(pid):
        total = total + usage(child)
    return total


def _ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK")


def parse_meminfo_mb(text: str, field: str = "MemAvailable") -> float:
    """/proc/meminfo's `MemAvailable:  1234 kB` -> MB (0 when absent)."""
    return parse_status_kb(text, field) / 1024


def available_mb() -> float:
    try:
        return parse_meminfo_mb((PROC / "meminfo").read_text())
    except FileNotFoundError:
        return 0.0


def parse_steal_ticks(text: str) -> int:
    """Pure: /proc/stat's `cpu` line -> its steal field, the time the host ran others on this machine's CPUs
    (field 8: user nice system idle iowait irq softirq steal; https://man7.org/linux/man-pages/man5/proc_stat.5.html)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return int(fields[8]) if len(fields) > 8 else 0
    return 0


def steal_s() -> float:
    """CPU seconds stolen from this machine by its host so far, all CPUs together (0 where not reported)."""
    try:
        return parse_steal_ticks((PROC / "stat").read_text()) / _ticks_per_second()
    except FileNotFoundError:
        return 0.0


def rusage_usage(ru: resource.struct_rusage) -> Usage:
    """Pure: a reaped child's rusage -> Usage (ru_maxrss is in kB on Linux; it has no RSS now)."""
    return Usage(0, int(ru.ru_maxrss), ru.ru_utime + ru.ru_stime)


def wait_usage(proc: subprocess.Popen) -> tuple[int, Usage]:
    """Wait for a child started by this process and reap it with wait4, so its CPU seconds and peak RSS are
    read by pid when it ends (/proc/<pid> is gone by then): (exit code, usage)."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, rusage_usage(ru)
