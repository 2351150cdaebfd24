"""lorag.retrieval.v1 servicer."""

from lorag.common.rpc import ServicerBase
from lorag.retrieval.v1 import retrieval_pb2 as pb


class RetrievalServicer(ServicerBase):
    SERVICES = (pb.DESCRIPTOR.services_by_name["RetrievalService"],)
    PENDING = "tenant-isolated hybrid search on Milvus is not deployed yet"
