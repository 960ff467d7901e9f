"""ProcessTreeSampler against real process trees (tests/children_res/process_tree.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from exporter import resources
from exporter.resources import ProcessTreeSampler, ResourceSample

from conftest import wait_until

TREE = Path(__file__).parent / "children_res" / "process_tree.py"


class Tree:
    """The process_tree.py root, driven line by line."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(TREE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def do(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer.startswith("ok"), answer
        return answer[3:]

    def spawn(self, burn_ms: int = 0) -> int:
        return int(self.do(f"spawn {burn_ms}"))

    def close(self) -> None:
        """EOF on stdin: the root releases and reaps its children, then exits."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(10)
        self.proc.stdin.close()
        self.proc.stdout.close()


@pytest.fixture
def tree():
    started = Tree()
    yield started
    started.close()


def test_processes_follow_the_tree(tree):
    sampler = ProcessTreeSampler(tree.proc.pid)
    tree.do("reap")  # answered once the root's Python is up (before, its RSS is the exec's)
    first = sampler.sample()
    assert first is not None and first.processes == 1
    assert first.resident_memory_bytes > 1_000_000 and first.threads >= 1 and first.open_fds >= 3
    for _ in range(3):
        tree.spawn()
    grown = wait_until(lambda: (s := sampler.sample()) and s.processes == 4 and s, what="4 processes")
    assert grown.resident_memory_bytes > first.resident_memory_bytes
    assert grown.threads >= 4
    tree.do("release")
    tree.do("reap")
    wait_until(lambda: sampler.sample().processes == 1, what="back to the root alone")


def test_exclude_leaves_a_process_out(tree):
    kept, excluded = tree.spawn(), tree.spawn()
    sampler = ProcessTreeSampler(tree.proc.pid, exclude=lambda pid: pid == excluded)
    wait_until(lambda: sampler.sample().processes == 2, what="root + the kept child")
    assert ProcessTreeSampler(tree.proc.pid).sample().processes == 3
    # The root itself is never excluded.
    assert ProcessTreeSampler(tree.proc.pid, exclude=lambda pid: True).sample().processes == 1
    assert kept != excluded


@pytest.mark.slow
def test_cpu_counter_never_goes_backwards_as_children_come_and_go(tree):
    """Children burn CPU, are sampled, exit and are reaped: their CPU must stay in the counter."""
    sampler = ProcessTreeSampler(tree.proc.pid)
    samples: list[ResourceSample] = [sampler.sample()]
    departed = 0.0  # CPU of the children that have left the tree, as /proc showed it
    for _ in range(6):
        children = [psutil.Process(tree.spawn(burn_ms=40)) for _ in range(2)]

        def burned() -> bool:  # sampling all the while; a child sleeps once it has burned its CPU
            samples.append(sampler.sample())
            return all(child.status() == psutil.STATUS_SLEEPING for child in children)

        wait_until(burned, what="children to burn their CPU")
        samples.append(sampler.sample())
        departed += sum(sum(child.cpu_times()[:2]) for child in children)
        tree.do("release")
        samples.append(sampler.sample())  # exiting: running, zombies or gone
        tree.do("reap")
        after = sampler.sample()
        samples.append(after)
        assert after.processes == 1
        # Without the departed total the counter would have dropped by what the children burned.
        assert after.cpu_seconds_total >= departed
    totals = [s.cpu_seconds_total for s in samples]
    assert totals == sorted(totals), "the CPU counter went backwards"
    assert departed >= 6 * 2 * 0.02  # /proc counts in 10 ms ticks: 40 ms shows as 30-40 ms


def test_zombie_children_keep_their_cpu_but_are_not_processes(tree):
    sampler = ProcessTreeSampler(tree.proc.pid)
    pid = int(tree.do("burn 50"))
    wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, what="a zombie child")
    zombie = sampler.sample()
    assert zombie.processes == 1
    assert zombie.cpu_seconds_total >= sum(psutil.Process(pid).cpu_times()[:2]) > 0
    tree.do("reap")
    assert sampler.sample().cpu_seconds_total >= zombie.cpu_seconds_total


def test_root_gone_gives_none(tree):
    sampler = ProcessTreeSampler(tree.proc.pid)
    assert sampler.sample() is not None
    tree.proc.send_signal(signal.SIGKILL)
    wait_until(lambda: sampler.sample() is None, what="None for a dead (zombie) root")
    tree.proc.wait(10)
    assert sampler.sample() is None


def test_missing_root_gives_none():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    assert ProcessTreeSampler(proc.pid).sample() is None


@pytest.mark.slow
def test_sample_cost_for_five_processes(tree):
    for _ in range(4):
        tree.spawn()
    sampler = ProcessTreeSampler(tree.proc.pid)
    wait_until(lambda: sampler.sample().processes == 5, what="5 processes")
    timings = []
    for _ in range(200):
        started = time.perf_counter()
        sampler.sample()
        timings.append(time.perf_counter() - started)
    per_sample = sorted(timings)[len(timings) // 2]  # the median: other work on the box adds outliers
    # typically 2-4 ms, most of it psutil's scan of /proc (benchmarks/ print figures; a test only checks them)
    assert per_sample < 0.05, f"sample(): {per_sample * 1e6:.0f} µs for 5 processes ({len(psutil.pids())} on the host)"


def test_sampling_this_process():
    sample = ProcessTreeSampler(os.getpid()).sample()
    assert sample is not None and sample.processes >= 1 and sample.cpu_seconds_total > 0


def test_grandchildren_are_found_walking_down_from_the_root():
    # sh -> subshell -> sleep: the subshell forks sleep because `true` follows it.
    proc = subprocess.Popen(["sh", "-c", "(sleep 30; true) & wait"], start_new_session=True)
    try:
        sampler = ProcessTreeSampler(proc.pid)
        wait_until(lambda: (s := sampler.sample()) and s.processes == 3, what="sh, its subshell and sleep")
        assert {p.pid for p in resources._descendants(psutil.Process(proc.pid))} == {
            p.pid for p in psutil.Process(proc.pid).children(recursive=True)
        }
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
