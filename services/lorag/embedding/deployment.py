"""Ray Serve application `embedding`; the Serve config refers to `lorag.embedding.deployment:app`.

The deployment is the servicer itself plus Ray Serve's dynamic batching: concurrent requests of a
replica are merged by ``@serve.batch`` (size and wait from ``LORAG_EMBEDDING_BATCH_MAX_SIZE`` /
``LORAG_EMBEDDING_BATCH_WAIT_S``; the deployment's ``max_ongoing_requests`` must be at least the
batch size or batches never fill).
"""

from lorag.embedding.servicer import EmbeddingServicer
from lorag.embedding.settings import EmbeddingSettings
from lorag.serving import batched_deployment

app = batched_deployment("embedding", EmbeddingServicer, EmbeddingSettings).bind()
