"""lorag.rag.v1 servicer."""

from lorag.common.rpc import ServicerBase
from lorag.rag.v1 import rag_pb2 as pb


class RagServicer(ServicerBase):
    SERVICES = (pb.DESCRIPTOR.services_by_name["RagService"],)
    PENDING = "the RAG orchestrator (ingest, ask, feedback) is not deployed yet"
