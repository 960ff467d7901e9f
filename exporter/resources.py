"""Resources of the miner's process tree: CPU seconds, resident memory, threads, fds, processes.

TDM's packaged builds are a parent plus a child, so we sample the root and all its descendants,
minus the pids `exclude` names (our Xvfb: just that pid, not its children; the root is never excluded).
Descendants are found by walking down from the root through /proc/<pid>/task/<tid>/children; psutil's
`children(recursive=True)` reads /proc/<pid>/stat of every process on the host to find them, which
was most of what supervising cost at rest. Where /proc has no children files, psutil is used.

CPU seconds is a counter that never goes backwards while processes come and go. Each process is
tracked by `(pid, create_time)`, keeping the first psutil.Process we saw for it (the fresh objects
`children()` lists are only used for their key) and its last user+system CPU; the `children_*`
fields are left out, or a reaped child's time would count twice. When a process leaves the tree,
its last value moves to a "departed" total. A zombie still shows its final CPU but is not counted
as a process. Not counted: CPU a process used after our last look at it, and processes born and
gone between two samples.

Cost per sample: one `oneshot()` round of /proc reads per tree process (~0.1 ms each) plus one
small read per thread of each to list its children; nothing that grows with the rest of the host.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import psutil


@dataclass(frozen=True)
class ResourceSample:
    cpu_seconds_total: float  # user+system of the tree, a counter
    resident_memory_bytes: int
    threads: int
    open_fds: int
    processes: int
    taken_at: float = 0.0  # time.monotonic() of the sample: a rate over samples uses their own times


_Key = tuple  # (pid, create_time): a pid can be reused, a (pid, start time) cannot


@dataclass
class _Tracked:
    process: psutil.Process
    cpu: float  # last user+system seen


class ProcessTreeSampler:
    def __init__(self, root_pid: int, exclude: Callable[[int], bool] = lambda pid: False) -> None:
        self.root_pid = root_pid
        self._exclude = exclude
        self._root: psutil.Process | None = None
        self._tracked: dict[_Key, _Tracked] = {}
        self._departed_cpu = 0.0
        self._last_cpu_total = 0.0
        self._gone = False

    def sample(self) -> ResourceSample | None:
        """The tree's resources now; None once the root is gone (or a zombie)."""
        if self._gone:
            return None  # for good: the pid may belong to another process by now
        root = self._root_process()
        if root is None:
            return None
        try:
            descendants = _descendants(root)
        except psutil.NoSuchProcess:  # psutil's way: the root's pid was reused
            self._gone = True
            return None
        seen: dict[_Key, _Tracked] = {}
        rss = threads = fds = processes = 0
        root_alive = False
        for process in (root, *descendants):
            if process is not root and self._exclude(process.pid):
                continue
            key = (process.pid, _create_time(process))
            tracked = self._tracked.get(key) or _Tracked(process, 0.0)
            seen[key] = tracked
            reading = _read(tracked.process)
            if reading is None:
                continue  # exited since the listing: keeps its last CPU until it is no longer listed
            cpu, alive, process_rss, process_threads, process_fds = reading
            tracked.cpu = max(tracked.cpu, cpu)
            if alive:
                processes += 1
                rss += process_rss
                threads += process_threads
                fds += process_fds
                root_alive = root_alive or process is root
        for key, tracked in self._tracked.items():
            if key not in seen:  # no longer in the tree: its CPU stays in the counter
                self._departed_cpu += tracked.cpu
        self._tracked = seen
        if not root_alive:
            self._gone = True
            return None
        # Floating-point sums in a different order can differ in the last bit: keep the counter monotonic.
        cpu_total = max(self._last_cpu_total, self._departed_cpu + sum(t.cpu for t in seen.values()))
        self._last_cpu_total = cpu_total
        return ResourceSample(cpu_total, rss, threads, fds, processes, time.monotonic())

    def _root_process(self) -> psutil.Process | None:
        if self._root is None:
            try:
                self._root = psutil.Process(self.root_pid)
            except psutil.NoSuchProcess:
                self._gone = True
                return None
        return self._root


def _descendants(root: psutil.Process) -> list[psutil.Process]:
    """The root's descendants, found from the root down (not by scanning the host's processes)."""
    found: list[psutil.Process] = []
    parents = [root.pid]
    while parents:
        children = []
        for pid in parents:
            pids = _children_of(pid)
            if pids is None:  # no /proc children files here
                return root.children(recursive=True)
            children.extend(pids)
        for pid in children:
            try:
                found.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
        parents = children
    return found


def _children_of(pid: int) -> list[int] | None:
    """Pids of a process's children from /proc/<pid>/task/*/children; None if /proc has no such files."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return []  # gone meanwhile: no children to follow
    except OSError:
        return None
    children: list[int] = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as file:
                children.extend(int(child) for child in file.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # that thread ended meanwhile
        except OSError:
            return None
    return children


def _create_time(process: psutil.Process) -> float:
    try:
        return process.create_time()  # cached by psutil at construction
    except psutil.Error:
        return 0.0


def _read(process: psutil.Process) -> tuple[float, bool, int, int, int] | None:
    """(user+system CPU, alive, RSS, threads, fds) of one process; None if it is gone.

    A zombie (exited, not reaped yet) still shows its final CPU; it is not alive and holds nothing.
    """
    try:
        with process.oneshot():
            times = process.cpu_times()
            if process.status() == psutil.STATUS_ZOMBIE:
                return times.user + times.system, False, 0, 0, 0
            rss = process.memory_info().rss
            threads = process.num_threads()
            try:
                fds = process.num_fds()
            except psutil.AccessDenied:  # another user's process: its fds are not ours to count
                fds = 0
    except (psutil.NoSuchProcess, psutil.AccessDenied):  # ZombieProcess included: exited mid-read
        return None
    return times.user + times.system, True, rss, threads, fds
