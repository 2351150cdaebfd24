"""lorag.generation.v1 servicer."""

from lorag.common.rpc import ServicerBase
from lorag.generation.v1 import generation_pb2 as pb


class GenerationServicer(ServicerBase):
    SERVICES = (pb.DESCRIPTOR.services_by_name["GenerationService"],)
    PENDING = "text generation with multi-LoRA batching is not deployed yet"
