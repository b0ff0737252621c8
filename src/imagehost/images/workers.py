"""Worker processes for CPU-bound image work, so that a hostile file costs one worker, never the app.

Each worker is a fresh interpreter (multiprocessing "spawn": the running asyncio app is never
forked) with an address-space cap, and takes one task at a time over its own socket pair. The
pool waits for replies with the event loop's own readers, so a busy worker blocks nothing, and
a worker that dies, runs out of memory or overruns its time limit is killed and replaced while
the other workers carry on. (concurrent.futures.ProcessPoolExecutor breaks the whole pool when
one worker dies, hence this.)
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import pickle
import resource
import signal
import socket
import struct
import traceback
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread

if TYPE_CHECKING:
    from imagehost.settings import Settings

T = TypeVar("T")

# One frame: a kind byte, the body's length, how many out-of-band buffers follow it, the body (a pickle),
# then each buffer as its length and its bytes. Pickles only ever come from our own code in a process of
# the same user: user bytes are data inside them or in the buffers, never the pickle stream itself.
_HEADER = struct.Struct("!cQI")
_BUFFER_LENGTH = struct.Struct("!Q")
# A task's bytes arguments at least this long go out of band (pickle protocol 5): sent from the caller's
# own object, so no pickled copy of an upload waits in the app while a worker processes it.
_OUT_OF_BAND_BYTES = 64 * 1024
_TASK = b"T"  # pool -> worker: (function, args)
_STARTED = b"S"  # worker -> pool, once: limits set, ready for tasks
_RESULT = b"R"  # the function's return value
_ERROR = b"E"  # (exception, remote traceback text)
_OUT_OF_MEMORY = b"M"  # MemoryError: the worker exits after sending this

_START_TIMEOUT_SECONDS = 30.0
_RESPAWN_DELAY_SECONDS = 1.0
# Bigger socket buffers: fewer wake-ups to move a few tens of MB.
_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


class WorkerFailed(Exception):
    """The worker died (memory cap, crash) or ran past its time limit while on this task.

    `reason` is "memory", "crashed", "timeout" (best effort), or "closed" when the pool shut down.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, str(self)))


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    channel: socket.socket  # the pool's end of the socket pair
    exited: asyncio.Future[None] = field(init=False)

    def __post_init__(self) -> None:
        # One reader on the process sentinel for the worker's whole life: add_reader allows one per fd.
        loop = asyncio.get_running_loop()
        self.exited = loop.create_future()

        def on_exit() -> None:
            loop.remove_reader(self.process.sentinel)
            if not self.exited.done():
                self.exited.set_result(None)

        loop.add_reader(self.process.sentinel, on_exit)


class WorkerPool:
    """`size` worker processes, each capped at `memory_limit_bytes` and `time_limit_seconds` per task."""

    def __init__(self, size: int, memory_limit_bytes: int, time_limit_seconds: float) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self.memory_limit_bytes = memory_limit_bytes
        self.time_limit_seconds = time_limit_seconds
        self._context = multiprocessing.get_context("spawn")
        self._workers: set[_Worker] = set()  # every live process, whoever holds it
        self._idle: asyncio.Queue[_Worker | None] = asyncio.Queue()  # None: the pool is closed
        self._busy: set[_Worker] = set()  # held by run()
        self._quiet = asyncio.Event()  # after close: no run() holds a worker any more
        self._chores: set[asyncio.Task[None]] = set()  # background stops and replacements
        self._started = False
        self._closed = False
        self._closing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Spawn the workers and wait until each has set its limits. Fails loudly if one cannot start."""
        if self._started:
            raise RuntimeError("the worker pool was already started")
        self._started = True
        spawned = await asyncio.gather(*(self._spawn() for _ in range(self.size)), return_exceptions=True)
        failures = [outcome for outcome in spawned if isinstance(outcome, BaseException)]
        if failures:
            await asyncio.gather(*(self._stop(w) for w in spawned if isinstance(w, _Worker)))
            self._closed = True
            raise failures[0]
        for worker in spawned:
            self._idle.put_nowait(worker)
        self._report()

    async def close(self) -> None:
        """Kill every worker: tasks running or waiting get WorkerFailed("closed"). Safe to call again."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._shut_down())
        await asyncio.shield(self._closing)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` in a worker and return its result, or raise what it raised.

        `function` must be a module-level function (pickled by name). Raises WorkerFailed when the
        worker dies, runs out of memory or overruns the time limit; only this task fails.
        """
        if not self._started:
            raise RuntimeError("start the worker pool before running tasks on it")
        if self._closed:
            raise _closed_error()
        worker = await self._acquire()
        # Pickled only once a worker is free, large bytes out of band: no task holds a second copy of its bytes.
        buffers: list[pickle.PickleBuffer] = []
        wrapped = tuple(
            pickle.PickleBuffer(arg) if isinstance(arg, bytes) and len(arg) >= _OUT_OF_BAND_BYTES else arg
            for arg in args
        )
        try:
            request = pickle.dumps((function, wrapped), protocol=5, buffer_callback=buffers.append)
        except BaseException:  # unpicklable arguments: the worker never saw them and stays healthy
            self._hand_back(worker, healthy=True)
            raise
        self._busy.add(worker)
        self._report()
        try:
            kind, body = await self._exchange(worker, request, buffers)
        except BaseException:  # also cancellation: the worker may be mid-task, so it cannot be reused
            self._hand_back(worker, healthy=False)
            raise
        self._hand_back(worker, healthy=True)
        if kind == _RESULT:
            return pickle.loads(body)  # noqa: S301 (see _HEADER)
        error, remote_traceback = pickle.loads(body)  # noqa: S301
        error.add_note(f"Raised in image worker process {worker.process.pid}:\n{remote_traceback}")
        raise error

    async def _acquire(self) -> _Worker:
        while True:
            worker = await self._idle.get()
            if worker is None:
                self._idle.put_nowait(None)  # pass the news on to the next waiting task
                raise _closed_error()
            if not worker.exited.done():
                return worker
            self._chore(self._replace(worker))  # died while idle (killed from outside): give it no task

    async def _exchange(
        self, worker: _Worker, request: bytes, buffers: list[pickle.PickleBuffer]
    ) -> tuple[bytes, bytearray]:
        try:
            async with asyncio.timeout(self.time_limit_seconds):
                await _send_frame(worker.channel, _TASK, request, buffers)
                reply = await _receive_frame(worker.channel)
        except TimeoutError:
            worker.process.kill()
            raise WorkerFailed(
                "timeout", f"the image worker ran past its time limit of {self.time_limit_seconds:g} s"
            ) from None
        except OSError:  # the worker's end went away mid-frame
            reply = None
        if reply is None:
            if self._closed:
                raise _closed_error()
            raise WorkerFailed("crashed", f"the image worker died ({await _exit_status(worker)})")
        if reply[0] == _OUT_OF_MEMORY:
            raise WorkerFailed("memory", f"the image worker ran out of memory (limit {self.memory_limit_bytes} bytes)")
        return reply

    def _hand_back(self, worker: _Worker, *, healthy: bool) -> None:
        self._busy.discard(worker)
        if healthy and not self._closed:
            self._idle.put_nowait(worker)
        else:
            self._chore(self._replace(worker))
        if self._closed and not self._busy:
            self._quiet.set()
        self._report()

    def _report(self) -> None:
        """Busy and idle workers for GET /metrics. Imported here, not at the top: keeps
        prometheus_client out of the worker processes, which import this module too."""
        from imagehost.metrics import instruments

        instruments.record_worker_pool(busy=len(self._busy), idle=len(self._workers) - len(self._busy))

    def _chore(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _replace(self, worker: _Worker) -> None:
        from imagehost.metrics import instruments  # see _report

        if not self._closed:  # at shutdown workers are stopped, not restarted
            instruments.record_worker_restart()
        await self._stop(worker)
        while not self._closed:
            try:
                fresh = await self._spawn()
            except Exception as error:
                if self._closed:
                    return
                from imagehost.logging import action_log  # here, not at the top: keeps structlog out of the workers

                action_log().error("an image worker could not be started, retrying", action="Workers", exc_info=error)
                await asyncio.sleep(_RESPAWN_DELAY_SECONDS)
                continue
            if self._closed:
                await self._stop(fresh)
            else:
                self._idle.put_nowait(fresh)
                self._report()
            return

    async def _spawn(self) -> _Worker:
        pool_end, worker_end = socket.socketpair()
        for end in (pool_end, worker_end):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER_BYTES)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER_BYTES)
        process = self._context.Process(
            target=_serve, args=(worker_end, self.memory_limit_bytes), name="imagehost-image-worker", daemon=True
        )
        try:
            process.start()
        except BaseException:
            pool_end.close()
            raise
        finally:
            worker_end.close()  # the worker holds its own copy; ours would hide its death (no EOF)
        pool_end.setblocking(False)
        worker = _Worker(process, pool_end)
        self._workers.add(worker)
        try:
            async with asyncio.timeout(_START_TIMEOUT_SECONDS):
                reply = await _receive_frame(pool_end)
            if reply is None or reply[0] != _STARTED:
                raise RuntimeError(f"an image worker failed to start ({await _exit_status(worker)})")
        except BaseException:
            await self._stop(worker)
            raise
        return worker

    async def _stop(self, worker: _Worker) -> None:
        worker.process.kill()
        await asyncio.shield(worker.exited)
        worker.process.join()  # reaps it: its files are closed, so this returns in microseconds
        worker.channel.close()
        self._workers.discard(worker)
        self._report()

    async def _shut_down(self) -> None:
        self._closed = True
        if not self._started:
            return
        while not self._idle.empty():
            worker = self._idle.get_nowait()
            if worker is not None:
                self._chore(self._stop(worker))
        self._idle.put_nowait(None)  # wakes the tasks waiting for a worker
        for worker in list(self._workers):
            worker.process.kill()  # busy ones too: their run() sees the end of the socket and hands them back
        if self._busy:
            await self._quiet.wait()
        while self._chores:
            await asyncio.gather(*list(self._chores), return_exceptions=True)


class ThreadRunner:
    """Runs image work in a thread of this process: for WORKER_PROCESSES=0 (no isolation)."""

    size = 1  # what a job worker beside it runs at once (see image_workers)

    async def run(self, function: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(function, *args)


@contextlib.asynccontextmanager
async def image_workers(settings: Settings, processes: int | None = None) -> AsyncIterator[WorkerPool | ThreadRunner]:
    """What runs image work, as WORKER_PROCESSES says: `processes` isolated processes (default
    WORKER_PROCESSES) started here and stopped after the block, or threads of this process when it is 0.
    The app, the consistency repair and `just thumbnails` each take theirs from here."""
    if settings.worker_processes == 0:
        yield ThreadRunner()
        return
    pool = WorkerPool(
        settings.worker_processes if processes is None else processes,
        settings.worker_memory_limit_bytes,
        settings.worker_time_limit_seconds,
    )
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


def _closed_error() -> WorkerFailed:
    return WorkerFailed("closed", "the image worker pool was closed")


async def _exit_status(worker: _Worker) -> str:
    """How a worker whose end of the socket closed ended: it is exiting, so wait a moment for it."""
    # Its files close a moment before it becomes a zombie whose status waitpid can read: poll briefly.
    for _ in range(100):
        if (code := worker.process.exitcode) is not None:
            break
        await asyncio.sleep(0.01)
    if code is None:
        return "exit status not known yet"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


async def _send_frame(
    channel: socket.socket,
    kind: bytes,
    body: bytes,
    buffers: list[pickle.PickleBuffer] = (),  # type: ignore[assignment]
) -> None:
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(channel, _HEADER.pack(kind, len(body), len(buffers)))
    await loop.sock_sendall(channel, body)
    for buffer in buffers:
        view = buffer.raw()
        await loop.sock_sendall(channel, _BUFFER_LENGTH.pack(view.nbytes))
        await loop.sock_sendall(channel, view)


async def _receive_frame(channel: socket.socket) -> tuple[bytes, bytearray] | None:
    """The next frame, or None if the worker's end closed (it died) first."""
    loop = asyncio.get_running_loop()

    async def exactly(size: int) -> bytearray | None:
        buffer = bytearray(size)
        view = memoryview(buffer)
        received = 0
        while received < size:
            count = await loop.sock_recv_into(channel, view[received:])
            if count == 0:
                return None
            received += count
        return buffer

    header = await exactly(_HEADER.size)
    if header is None:
        return None
    kind, size, count = _HEADER.unpack(header)
    if count:  # workers send none: their answers are small beside the task, and must be bytes
        raise OSError("an image worker sent out-of-band buffers")
    body = await exactly(size)
    return None if body is None else (kind, body)


# Everything below runs in the worker process.


def _serve(channel: socket.socket, memory_limit_bytes: int) -> None:
    """A worker's life: set the limits, then one task at a time until the pool closes its end."""
    # Ctrl-C in a terminal reaches the whole process group: the pool alone decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # An allocation bomb then raises MemoryError (or kills this process) instead of starving the host.
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    # A crash on a hostile file must not write its memory (user bytes) to a core file.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    channel.setblocking(True)
    try:
        _send_frame_blocking(channel, _STARTED, b"")
        while (request := _receive_frame_blocking(channel)) is not None:
            _send_frame_blocking(channel, *_perform(*request))
    except MemoryError:
        # The heap may be in a bad state: report, then exit so the pool starts a fresh worker.
        with contextlib.suppress(OSError):
            _send_frame_blocking(channel, _OUT_OF_MEMORY, b"")
    except OSError:
        pass  # the pool went away


def _perform(request: bytearray, buffers: list[bytearray]) -> tuple[bytes, bytes]:
    try:
        function, args = pickle.loads(request, buffers=buffers)  # noqa: S301 (from the pool itself)
        # An out-of-band argument arrives as a read-only view of the buffer it was received into: the
        # functions get bytes (one copy, here, where one task at a time runs).
        args = tuple(bytes(arg) if isinstance(arg, memoryview) else arg for arg in args)
        buffers.clear()
        return _RESULT, pickle.dumps(function(*args), protocol=5)
    except MemoryError:
        raise
    except Exception as error:
        return _ERROR, _pickle_error(error)


def _pickle_error(error: Exception) -> bytes:
    remote_traceback = "".join(traceback.format_exception(error))
    try:
        body = pickle.dumps((error, remote_traceback), protocol=5)
        pickle.loads(body)  # noqa: S301 (our own bytes) An exception that cannot be rebuilt would fail in the caller.
    except Exception:
        stand_in = RuntimeError(f"{type(error).__module__}.{type(error).__qualname__}: {error}")
        body = pickle.dumps((stand_in, remote_traceback), protocol=5)
    return body


def _send_frame_blocking(channel: socket.socket, kind: bytes, body: bytes) -> None:
    channel.sendall(_HEADER.pack(kind, len(body), 0))
    channel.sendall(body)


def _receive_frame_blocking(channel: socket.socket) -> tuple[bytearray, list[bytearray]] | None:
    """The next task's body and its out-of-band buffers, or None when the pool closed its end."""
    header = _receive_exactly_blocking(channel, _HEADER.size)
    if header is None:
        return None
    _kind, size, count = _HEADER.unpack(header)
    body = _receive_exactly_blocking(channel, size)
    buffers: list[bytearray] = []
    for _ in range(count):
        length = _receive_exactly_blocking(channel, _BUFFER_LENGTH.size)
        buffer = _receive_exactly_blocking(channel, _BUFFER_LENGTH.unpack(length)[0]) if length else None
        if buffer is None:
            return None
        buffers.append(buffer)
    return None if body is None else (body, buffers)


def _receive_exactly_blocking(channel: socket.socket, size: int) -> bytearray | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = channel.recv_into(view[received:])
        if count == 0:
            return None
        received += count
    return buffer
