"""A small TGI/LoRAX-compatible HTTP server for tests (127.0.0.1 only).

Implements ``POST /generate`` and ``POST /generate_stream`` (server-sent events) of the
documented wire format; it "generates" ``word0 word1 ...`` and records every request body.
"""

from __future__ import annotations

import json

from aiohttp import web


class FakeTgi:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    def _tokens(self, body: dict) -> tuple[list[str], str]:
        params = body.get("parameters") or {}
        n = int(params.get("max_new_tokens", 20))
        words = [f" word{i}" for i in range(n)]
        text = ""
        for i, w in enumerate(words):
            text += w
            for stop in params.get("stop") or []:
                if stop in text:
                    return words[: i + 1], "stop_sequence"
        return words, "length"

    async def stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        if not body.get("inputs"):
            return web.json_response(
                {"error": "Input validation error: `inputs` cannot be empty"}, status=422
            )
        words, reason = self._tokens(body)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, w in enumerate(words):
            event = {"token": {"id": 100 + i, "text": w, "logprob": -0.1, "special": False}}
            if i == len(words) - 1:
                event["generated_text"] = "".join(words)
                event["details"] = {"finish_reason": reason, "generated_tokens": len(words), "seed": None}
            await resp.write(f"data:{json.dumps(event)}\n\n".encode())
        await resp.write_eof()
        return resp

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/generate_stream", self.stream)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
