"""lorag.embedding.v1 servicer."""

from lorag.common.rpc import ServicerBase
from lorag.embedding.v1 import embedding_pb2 as pb


class EmbeddingServicer(ServicerBase):
    SERVICES = (pb.DESCRIPTOR.services_by_name["EmbeddingService"],)
    PENDING = "text embedding (sentence encoder with dynamic batching) is not deployed yet"
