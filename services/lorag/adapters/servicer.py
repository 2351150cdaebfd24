"""Servicers of the `adapters` application: adapter registry, training and admin APIs."""

from lorag.adapters.v1 import adapters_pb2, training_pb2
from lorag.admin.servicer import AdminServicer
from lorag.common.rpc import ServicerBase


class AdapterServicer(ServicerBase):
    SERVICES = (adapters_pb2.DESCRIPTOR.services_by_name["AdapterService"],)
    PENDING = "the versioned LoRA adapter registry is not deployed yet"


class TrainingServicer(ServicerBase):
    SERVICES = (training_pb2.DESCRIPTOR.services_by_name["TrainingService"],)
    PENDING = "the LoRA training pipeline is not deployed yet"


class AdaptersAppServicer(AdminServicer, AdapterServicer, TrainingServicer):
    """Ingress of the `adapters` application: AdminService, AdapterService, TrainingService.

    Ray Serve's proxy dispatches by method name, so RPC names are unique across the three.
    """
