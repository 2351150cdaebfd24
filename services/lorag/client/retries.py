"""Which RPCs the SDK retries: the one table of idempotent and non-idempotent calls.

Idempotent calls are retried by gRPC itself (the channel's service config, :data:`RETRY_POLICY`):
at most 4 attempts within the call's deadline, on

- ``UNAVAILABLE``, with exponential backoff (0.2 s doubling up to 2 s, jittered);
- ``RESOURCE_EXHAUSTED`` only when the server sends a retry hint: a rate or concurrency limit
  answers with trailing metadata ``grpc-retry-pushback-ms`` (gRFC A6), and gRPC waits exactly
  that long before the next attempt. Limits that waiting cannot clear (message sizes, stored
  quotas) and hints longer than the call has left answer ``grpc-retry-pushback-ms: -1``, which
  ends the call at once. The hint also comes as ``retry-after-ms``, which the SDK exposes as
  :attr:`lorag.client.errors.ResourceExhaustedError.retry_after_s` for callers that retry
  non-idempotent calls themselves. (A RESOURCE_EXHAUSTED without any pushback comes only from
  gRPC's own message-size checks; messages that large are past gRPC's 256 KiB retry buffer and
  are not retried, unless a channel is given a message limit below it.)

A retried call may reach the server twice (the first attempt can fail after the server acted), so
only calls that give the same result and leave the same state when repeated are retried. Writes
that create something (a key, a version, a job), move something relative to its current state
(rollback), report counts of what they changed (deletes) or stream data that is consumed once
(uploads, ingest) are never retried: their failure reaches the caller, who knows whether to try
again. ``Ask``/``AskStream`` and generation only read; a repeated ``Ask`` at most stores one more
answer record. gRPC retries a server stream only until its first message arrived.
"""

from __future__ import annotations

import json

#: service key (see ``SERVICES``) -> (full proto service name, {RPC: retried}).
#: A unit test checks that every RPC of every proto service appears here exactly once.
IDEMPOTENT: dict[str, tuple[str, dict[str, bool]]] = {
    "admin": (
        "lorag.admin.v1.AdminService",
        {
            "CreateTenant": False,  # would create the tenant's admin key twice
            "GetTenant": True,
            "ListTenants": True,
            "SetTenantQuota": True,  # sets absolute values
            "CreateApiKey": False,  # a second key
            "ListApiKeys": True,
            "RevokeApiKey": True,  # revoked stays revoked
            "WhoAmI": True,
            "GetUsage": True,
        },
    ),
    "adapters": (
        "lorag.adapters.v1.AdapterService",
        {
            "UploadAdapterVersion": False,  # client stream, consumed once
            "RegisterFromUri": False,
            "CreateAdapter": False,
            "GetAdapter": True,
            "ListAdapters": True,
            "DeleteAdapter": False,  # a repeat answers NOT_FOUND
            "GetAdapterVersion": True,
            "ListAdapterVersions": True,
            "SetAlias": False,  # records the previous version that Rollback returns to
            "DeleteAlias": False,
            "ListAliases": True,
            "Rollback": False,  # relative to the current state: twice moves back twice
            "Resolve": True,
            "Download": True,
            "WatchRevisions": True,
            "ListAuditEvents": True,
        },
    ),
    "training": (
        "lorag.adapters.v1.TrainingService",
        {
            "UploadDataset": False,
            "GetDataset": True,
            "ListDatasets": True,
            "StartTraining": False,  # a second job
            "GetTrainingJob": True,
            "ListTrainingJobs": True,
            "WatchTrainingJob": True,
            "CancelTrainingJob": True,  # cancelled stays cancelled
            "BuildDatasetFromFeedback": False,  # starts a job when asked to
            "PromoteCanary": False,  # moves aliases
        },
    ),
    "embedding": ("lorag.embedding.v1.EmbeddingService", {"Embed": True, "ListModels": True}),
    "retrieval": (
        "lorag.retrieval.v1.RetrievalService",
        {
            "Upsert": False,  # long, streams progress; the caller decides what to re-send
            "DeleteDocuments": False,
            "Search": True,
            "GetDocument": True,
            "ListDocuments": True,
            "Stats": True,
        },
    ),
    "reranking": ("lorag.reranking.v1.RerankingService", {"Rerank": True, "ListRerankerModels": True}),
    "generation": (
        "lorag.generation.v1.GenerationService",
        {
            "Generate": True,
            "GenerateStream": True,
            "ListGenerationModels": True,
            "GetLoadedAdapters": True,
        },
    ),
    "rag": (
        "lorag.rag.v1.RagService",
        {
            "Ingest": False,  # bidirectional stream of documents, consumed once
            "IngestDocuments": False,
            "DeleteDocuments": False,
            "Ask": True,
            "AskStream": True,
            "Feedback": False,  # would store the feedback twice
        },
    ),
}

RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    # RESOURCE_EXHAUSTED is retried only after a server pushback (see the module docstring).
    "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
}


def retried_methods() -> list[dict[str, str]]:
    """gRPC service-config names of every retried RPC."""
    return [
        {"service": service, "method": method}
        for service, methods in IDEMPOTENT.values()
        for method, retried in methods.items()
        if retried
    ]


def service_config() -> str:
    """The channel's service config: ``RETRY_POLICY`` for the idempotent RPCs, none for the rest."""
    return json.dumps({"methodConfig": [{"name": retried_methods(), "retryPolicy": RETRY_POLICY}]})


def is_retried(service: str, method: str) -> bool:
    """Whether ``method`` of the SDK service ``service`` (e.g. ``"rag"``, ``"Ask"``) is retried."""
    return IDEMPOTENT[service][1][method]
