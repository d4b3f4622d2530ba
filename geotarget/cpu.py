"""A small, bounded pool of worker processes for the CPU-heavy part of requests: parsing fence files, validating
fences and covering them with H3 cells.

Why processes: that work is mostly Python, so in a thread it would still hold the GIL and stall every other
request of the worker (a 5,000-fence bulk used to hold ``/v1/nearby`` for 14 s). Why bounded: a pool with a
queue of its own would let a few merchants line up minutes of work; past ``max_waiting`` jobs (running or
queued) a request is refused with ``Busy`` at once, and the API answers 503 with ``Retry-After``.

With ``workers=0`` the work runs in the calling thread (tests, and one-shot CLI commands). A pool process ends
with the worker that started it, however that worker ends (SIGKILL included): it watches its parent.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from geotarget.errors import Busy

T = TypeVar("T")


class CpuPool:
    def __init__(self, workers: int, max_waiting: int) -> None:
        self.workers = workers
        self._slots = threading.BoundedSemaphore(max(max_waiting, 1))
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker process (``fn`` and its arguments must pickle); blocks until it is done."""
        if self.workers == 0:
            return fn(*args)
        if not self._slots.acquire(blocking=False):
            raise Busy("the server is busy with other fence work; try again in a few seconds")
        try:
            return self._pool().submit(fn, *args).result()
        except BrokenProcessPool:
            self.close()  # the next call starts a fresh pool
            raise Busy("a fence worker stopped unexpectedly; try again in a few seconds") from None
        finally:
            self._slots.release()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """``fn(*args)`` started in a worker process without waiting (a one-shot CLI command keeps every core
        busy this way); with ``workers=0`` it runs here, now. Not bounded: callers keep their own window."""
        if self.workers == 0:
            done: Future[T] = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done
        return self._pool().submit(fn, *args)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            # waits for the jobs running now (bounded: one fence each) so the pool's processes are told to stop;
            # without waiting they outlived a stopped server, orphaned (tests/test_shutdown.py)
            executor.shutdown(wait=True, cancel_futures=True)

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                # spawn, not fork: the server process has threads (Redis listeners, the consumer) and locks
                context = multiprocessing.get_context("spawn")
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=context, initializer=watch_parent, initargs=(os.getpid(),)
                )
            return self._executor


def watch_parent(parent_pid: int, every_s: float = 1.0) -> None:
    """In a pool process: end it as soon as the worker that started it is gone (a SIGKILLed worker runs no
    shutdown, and its orphans, about 250 MB each, would live on). Polls the parent, since Linux's parent-death
    signal follows the *thread* that started the process, and the pool starts processes from request threads."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


__all__ = ["CpuPool"]
