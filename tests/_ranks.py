"""Run a test's worker in several spawned processes and wait for them, with a deadline.

Gloo can abort a process with SIGABRT while it tears its connections down at exit ("terminate called without an
active exception"), after the work under test is finished and saved. Such a death is reported as a warning when
``finished(rank)`` shows that rank's results are complete; any other death, or a death before the results exist,
fails the test.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import pytest
import torch.multiprocessing as mp


def run_ranks(worker: Callable, args: tuple, world: int, finished: Callable[[int], bool], timeout_s: float) -> None:
    ctx = mp.start_processes(worker, args=args, nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ctx.join(timeout=1):
                return
        except mp.ProcessExitedException as err:
            if err.signal_name is None or not all(finished(r) for r in range(world)):
                raise
            warnings.warn(f"rank {err.error_index} died by {err.signal_name} after saving its results", stacklevel=2)
            return
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {world} gloo processes did not finish within {timeout_s} s")
