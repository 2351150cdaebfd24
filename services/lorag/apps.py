"""The Ray Serve applications of lorag and the gRPC services each one hosts.

One table drives both hosts: the in-process ``grpc.aio`` host (integration tests, single-process
use) and the Ray Serve host (``lorag serve``, the Serve config under ``deploy/``, the Helm chart).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

HEALTH_ADD_FUNCTION = "grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server"


@dataclass(frozen=True)
class AppSpec:
    """One Ray Serve application: its ingress servicer and the gRPC services it registers."""

    name: str
    servicer: str  # "module:Class" of the servicer (also the Ray Serve deployment class)
    add_functions: tuple[str, ...]  # import paths of the generated add_*Servicer_to_server
    max_ongoing_requests: int = 64

    @property
    def route_prefix(self) -> str:
        return f"/{self.name}"

    @property
    def import_path(self) -> str:
        """The Serve config's ``import_path`` of this application."""
        return f"lorag.{self.name}.deployment:app"


def _add(pkg: str, proto: str, service: str) -> str:
    return f"lorag.{pkg}.v1.{proto}_pb2_grpc.add_{service}Servicer_to_server"


APPS: tuple[AppSpec, ...] = (
    AppSpec(
        "embedding",
        "lorag.embedding.servicer:EmbeddingServicer",
        (_add("embedding", "embedding", "EmbeddingService"),),
    ),
    AppSpec(
        "retrieval",
        "lorag.retrieval.servicer:RetrievalServicer",
        (_add("retrieval", "retrieval", "RetrievalService"),),
    ),
    AppSpec(
        "reranking",
        "lorag.reranking.servicer:RerankingServicer",
        (_add("reranking", "reranking", "RerankingService"),),
    ),
    AppSpec(
        "generation",
        "lorag.generation.servicer:GenerationServicer",
        (_add("generation", "generation", "GenerationService"),),
    ),
    AppSpec(
        "adapters",
        "lorag.adapters.servicer:AdaptersAppServicer",
        (
            _add("adapters", "adapters", "AdapterService"),
            _add("adapters", "training", "TrainingService"),
            _add("admin", "admin", "AdminService"),
        ),
    ),
    AppSpec("rag", "lorag.rag.servicer:RagServicer", (_add("rag", "rag", "RagService"),)),
)

APPS_BY_NAME = {spec.name: spec for spec in APPS}


def import_object(path: str) -> Any:
    """Import ``pkg.mod:attr`` or ``pkg.mod.attr``."""
    module, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def generated_add_functions(apps: tuple[AppSpec, ...] = APPS) -> list[str]:
    """Every generated add-function of ``apps``, health first."""
    functions = [HEALTH_ADD_FUNCTION]
    for spec in apps:
        functions.extend(f for f in spec.add_functions if f not in functions)
    return functions


def grpc_servicer_functions(apps: tuple[AppSpec, ...] = APPS) -> list[str]:
    """The Serve config's ``grpc_servicer_functions``: for each generated add-function, the
    :mod:`lorag.proxy` function of the same name that registers it on Ray Serve's gRPC proxy."""
    return [f"lorag.proxy.{path.rsplit('.', 1)[1]}" for path in generated_add_functions(apps)]
