"""The image worker pool: results, errors, and failures that cost one worker, never the pool.

The task functions live at module level here: spawned workers import this module by name.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
import pytest

from imagehost.errors import UnsupportedFormat
from imagehost.images.workers import WorkerFailed, WorkerPool

MB = 1024 * 1024


# Tasks (run in the workers).


def add(a: int, b: int) -> int:
    return a + b


def echo(content: bytes) -> bytes:
    return content


def kinds_and_lengths(*args: Any) -> list[tuple[str, int]]:
    return [(type(arg).__name__, len(arg)) for arg in args]


def worker_pid() -> int:
    return os.getpid()


def refuse_format() -> None:
    raise UnsupportedFormat(filename="x", formats="y")


def allocate(size: int) -> int:
    return len(bytearray(size))


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


# Helpers.


def with_pool(test: Callable[[WorkerPool], Awaitable[Any]], size: int = 2, time_limit: float = 5.0) -> Any:
    async def main() -> Any:
        async with WorkerPool(size=size, memory_limit_bytes=512 * MB, time_limit_seconds=time_limit) as pool:
            return await test(pool)

    return asyncio.run(main())


def worker_processes() -> set[psutil.Process]:
    """This test process's children, less multiprocessing's own resource tracker."""
    children = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                children.add(child)
        except psutil.NoSuchProcess:
            pass
    return children


# Tests.


def test_a_task_returns_its_result_and_tasks_wait_for_a_free_worker() -> None:
    async def test(pool: WorkerPool) -> None:
        assert await pool.run(add, 2, 3) == 5
        results = await asyncio.gather(*(pool.run(add, n, 1) for n in range(20)))
        assert results == [n + 1 for n in range(20)]
        pids = set(await asyncio.gather(*(pool.run(worker_pid) for _ in range(10))))
        assert os.getpid() not in pids
        assert 1 <= len(pids) <= 2

    with_pool(test)


def test_an_exception_in_the_task_reaches_the_caller_with_its_type_and_params() -> None:
    async def test(pool: WorkerPool) -> None:
        with pytest.raises(UnsupportedFormat) as caught:
            await pool.run(refuse_format)
        assert caught.value.params == {"filename": "x", "formats": "y"}
        assert "only y are accepted" in str(caught.value)
        assert any("refuse_format" in note for note in caught.value.__notes__)  # the worker's traceback
        assert await pool.run(add, 1, 1) == 2  # an ordinary exception does not cost the worker

    with_pool(test, size=1)


def test_tens_of_megabytes_go_both_ways() -> None:
    content = os.urandom(1024) * (30 * 1024)  # 30 MB

    async def test(pool: WorkerPool) -> None:
        assert await pool.run(echo, content) == content

    with_pool(test, size=1)


def test_large_and_small_bytes_arrive_as_bytes_beside_other_arguments() -> None:
    # Large ones travel out of band (no pickled copy in the app): the task sees bytes all the same,
    # in their places among the other arguments.
    large, small = os.urandom(3 * MB), b"tiny"

    async def test(pool: WorkerPool) -> None:
        got = await pool.run(kinds_and_lengths, large, "name", small, large, (1, 2))
        assert got == [("bytes", 3 * MB), ("str", 4), ("bytes", 4), ("bytes", 3 * MB), ("tuple", 2)]
        assert await pool.run(echo, large) == large

    with_pool(test, size=1)


def test_an_allocation_bomb_costs_one_worker_and_the_pool_recovers() -> None:
    async def test(pool: WorkerPool) -> None:
        before = await pool.run(worker_pid)
        with pytest.raises(WorkerFailed) as caught:
            await pool.run(allocate, 2048 * MB)
        assert caught.value.reason == "memory"
        assert await pool.run(allocate, 16 * MB) == 16 * MB
        assert await pool.run(worker_pid) != before

    with_pool(test, size=1)


def test_a_worker_killed_mid_task_fails_that_task_only_and_is_replaced() -> None:
    async def test(pool: WorkerPool) -> None:
        with pytest.raises(WorkerFailed) as caught:
            await pool.run(kill_self)
        assert caught.value.reason == "crashed"
        assert "SIGKILL" in str(caught.value)
        assert await pool.run(add, 1, 2) == 3

        # Killed from outside while busy.
        pid = await pool.run(worker_pid)
        task = asyncio.ensure_future(pool.run(sleep, 30))
        await asyncio.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerFailed) as caught:
            await task
        assert caught.value.reason == "crashed"
        assert await pool.run(add, 2, 2) == 4

    with_pool(test, size=1)


def test_a_worker_killed_while_idle_is_replaced_before_it_gets_a_task() -> None:
    async def test(pool: WorkerPool) -> None:
        pid = await pool.run(worker_pid)
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert await pool.run(worker_pid) != pid

    with_pool(test, size=1)


def test_a_task_past_the_time_limit_is_stopped_at_the_limit() -> None:
    async def test(pool: WorkerPool) -> None:
        started = time.monotonic()
        with pytest.raises(WorkerFailed) as caught:
            await pool.run(sleep, 30)
        assert caught.value.reason == "timeout"
        assert time.monotonic() - started < 3
        assert await pool.run(add, 3, 3) == 6

    with_pool(test, size=1, time_limit=1.0)


def test_a_hanging_task_does_not_hold_up_the_other_workers() -> None:
    async def test(pool: WorkerPool) -> None:
        hanging = asyncio.ensure_future(pool.run(sleep, 30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        results = await asyncio.gather(*(pool.run(add, n, n) for n in range(20)))
        assert results == [2 * n for n in range(20)]
        assert not hanging.done()
        assert time.monotonic() - started < 1
        with pytest.raises(WorkerFailed) as caught:
            await hanging
        assert caught.value.reason == "timeout"

    with_pool(test, size=2, time_limit=1.5)


def test_a_cancelled_task_costs_its_worker_only() -> None:
    async def test(pool: WorkerPool) -> None:
        task = asyncio.ensure_future(pool.run(sleep, 30))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await pool.run(add, 4, 4) == 8

    with_pool(test, size=1)


def test_close_stops_every_worker_and_fails_pending_tasks() -> None:
    async def main() -> None:
        before = worker_processes()
        pool = WorkerPool(size=2, memory_limit_bytes=512 * MB, time_limit_seconds=30)
        await pool.start()
        workers = worker_processes() - before
        assert len(workers) == 2
        running = [asyncio.ensure_future(pool.run(sleep, 30)) for _ in range(3)]  # two busy, one waiting
        await asyncio.sleep(0.2)
        await pool.close()
        await pool.close()  # again: nothing to do
        for task in running:
            with pytest.raises(WorkerFailed) as caught:
                await task
            assert caught.value.reason == "closed"
        with pytest.raises(WorkerFailed):
            await pool.run(add, 1, 1)
        assert not any(worker.is_running() for worker in workers)
        assert worker_processes() - before == set()

    asyncio.run(main())


def test_start_is_cheap() -> None:
    async def main() -> float:
        pool = WorkerPool(size=2, memory_limit_bytes=512 * MB, time_limit_seconds=5)
        started = time.monotonic()
        await pool.start()
        elapsed = time.monotonic() - started
        await pool.close()
        return elapsed

    assert asyncio.run(main()) < 2
