"""lorag.reranking.v1 servicer."""

from lorag.common.rpc import ServicerBase
from lorag.reranking.v1 import reranking_pb2 as pb


class RerankingServicer(ServicerBase):
    SERVICES = (pb.DESCRIPTOR.services_by_name["RerankingService"],)
    PENDING = "cross-encoder reranking is not deployed yet"
