"""A Serve application for tests of Ray Serve's gRPC proxy: a replica that never answers.

``tests.support.serve_apps:stall`` hosts ``grpc.health.v1.Health/Check`` and keeps every call
open, so a test can kill the replica while the proxy waits for it.
"""

from __future__ import annotations

import asyncio

from ray import serve


@serve.deployment(name="Stall", ray_actor_options={"num_cpus": 0})
class Stall:
    async def Check(self, request):  # noqa: N802 - gRPC method name
        await asyncio.sleep(3600)


stall = Stall.bind()
