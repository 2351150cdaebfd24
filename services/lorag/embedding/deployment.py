"""Ray Serve application `embedding`; the Serve config refers to `lorag.embedding.deployment:app`.

The deployment is the servicer itself plus Ray Serve's dynamic batching: concurrent requests of a
replica are merged by ``@serve.batch`` (size and wait from ``LORAG_EMBEDDING_BATCH_MAX_SIZE`` /
``LORAG_EMBEDDING_BATCH_WAIT_S``; the deployment's ``max_ongoing_requests`` must be at least the
batch size or batches never fill).
"""

from __future__ import annotations

from ray import serve

from lorag.embedding.core import EmbedJob
from lorag.embedding.models import assigned_cpus, serving_threads
from lorag.embedding.servicer import EmbeddingServicer
from lorag.embedding.settings import EmbeddingSettings
from lorag.serving import deployment_for


class EmbeddingDeployment(EmbeddingServicer):
    def __init__(self) -> None:
        settings = EmbeddingSettings()
        if not settings.num_threads and assigned_cpus():  # torch threads from the replica's CPU share
            settings = settings.model_copy(update={"num_threads": serving_threads(assigned_cpus())})
        super().__init__(settings=settings)
        self._serve_batch.set_max_batch_size(settings.batch_max_size)
        self._serve_batch.set_batch_wait_timeout_s(settings.batch_wait_s)
        self.core.info()  # load the default model before the replica takes traffic

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _serve_batch(self, jobs: list[EmbedJob]) -> list:
        return await self._run_batch(jobs)

    async def _enqueue(self, job: EmbedJob):
        return await self._serve_batch(job)


app = deployment_for("embedding", EmbeddingDeployment).bind()
