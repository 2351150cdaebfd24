"""Where training jobs run: a thread of this process (default) or a Ray task (production).

A runner only starts ``run_job(job_id)``; everything a job needs (dataset, state, cancel flag,
progress events) goes through the registry database and the blob store, so a job behaves the same
in a thread, in a Ray worker on another node, or in a RayJob pod running
``python -m lorag.training <job id>``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("lorag.training.runners")


class Runner(Protocol):
    def submit(self, job_id: str) -> None: ...

    def shutdown(self) -> None: ...


class ThreadRunner:
    """Jobs in ``workers`` daemon threads of this process; extra jobs wait (QUEUED).

    The threads are daemons: when the process exits, a running job simply stops, its heartbeat
    goes stale, and the next start of the training service resumes it from its checkpoint.
    """

    def __init__(self, run_job: Callable[[str], None], *, workers: int = 1) -> None:
        self._run_job = run_job
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._idle = threading.Condition()
        self._active: set[str] = set()
        self._threads = [
            threading.Thread(target=self._work, name=f"lorag-training-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, job_id: str) -> None:
        with self._idle:
            self._active.add(job_id)
        self._queue.put(job_id)

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            try:
                self._run_job(job_id)
            except BaseException:  # the job records its own failure; never lose the thread silently
                log.exception("training job %s crashed", job_id)
            finally:
                with self._idle:
                    self._active.discard(job_id)
                    self._idle.notify_all()

    def wait(self, job_id: str, timeout: float | None = None) -> bool:
        """Block until ``job_id`` left this runner; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: job_id not in self._active, timeout)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


class RayRunner:
    """Each job is a Ray task (``num_cpus``/``num_gpus`` from the settings) on the cluster.

    Needs ``ray`` and a cluster the process is connected to (``ray.init`` happens on first use,
    joining the running cluster as Serve replicas do). The task rebuilds the pipeline from the
    registry URL and data dir, so nothing but the job id crosses the wire.
    """

    def __init__(
        self, *, registry_url: str, data_dir: str, num_cpus: float = 1.0, num_gpus: float = 0.0
    ) -> None:
        self.registry_url = registry_url
        self.data_dir = data_dir
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self._remote = None
        self._refs: dict[str, object] = {}

    def submit(self, job_id: str) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address="auto", ignore_reinit_error=True, log_to_driver=False)
        if self._remote is None:
            self._remote = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(
                _run_in_ray
            )
        self._refs[job_id] = self._remote.remote(self.registry_url, self.data_dir, job_id)

    def shutdown(self) -> None:
        self._refs.clear()


def _run_in_ray(registry_url: str, data_dir: str, job_id: str) -> None:
    import os
    import socket

    import ray

    from lorag.training.jobs import run_standalone

    node = ray.get_runtime_context().get_node_id()
    where = f"Ray task, process {os.getpid()} on {socket.gethostname()} (node {node[:12]})"
    run_standalone(job_id, registry_url=registry_url, data_dir=data_dir, where=where)
