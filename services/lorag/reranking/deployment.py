"""Ray Serve application `reranking`; the Serve config refers to `lorag.reranking.deployment:app`.

The deployment is the servicer plus Ray Serve's dynamic batching: concurrent requests of a
replica are merged by ``@serve.batch`` (``LORAG_RERANKING_BATCH_MAX_SIZE`` /
``LORAG_RERANKING_BATCH_WAIT_S``; ``max_ongoing_requests`` must be at least the batch size).
"""

from lorag.reranking.servicer import RerankingServicer
from lorag.reranking.settings import RerankingSettings
from lorag.serving import batched_deployment

app = batched_deployment("reranking", RerankingServicer, RerankingSettings).bind()
