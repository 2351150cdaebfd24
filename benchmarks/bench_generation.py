"""Generation benchmark: multi-LoRA batching cost, against naive serving, over gRPC, hot swap.

All figures come from one run on the same machine, side by side:

1. mixed / base      tokens/s of 8 distinct adapters mixed in one batch ÷ base model alone, at
                     equal work (every request generates exactly --max-new-tokens: end-of-sequence
                     is ignored in these rounds), in alternating rounds, medians kept; "base" is
                     the served model with base rows, "base_plain" the model without LoRA modules
2. mixed / naive     mixed batching ÷ a server that calls ``set_adapter`` and ``generate`` per request
                     (same work: ``min_new_tokens`` = ``max_new_tokens``)
3. grpc / raw        tokens/s through the gRPC service (in-process host, and through Ray Serve's
                     gRPC proxy) ÷ stock batched ``generate`` of the plain base model on the same
                     prompts (measured in the alternating rounds); also ÷ the in-process engine on
                     the same prompts ("engine_eos": the cost of gRPC and Ray alone), and
                     engine ÷ raw (what continuous batching gains over stock ``generate``)
4. hot swap          time from an alias move until requests use the new version; failed requests
5. quantized / fp32  int8 dynamic quantization (torch.ao) and bitsandbytes int8 / nf4 / fp4 bases
                     (CUDA GPU when visible, else bitsandbytes' CPU backend): tokens/s ratio,
                     greedy token agreement with fp32, perplexity on a fixed text, weight memory,
                     and 8 mixed adapters ÷ base rows on the nf4 base

Model: the default SmolLM2-135M-Instruct (converted from its PyPI package), greedy decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LORAG_MODELS_DIR", str(Path.home() / ".cache" / "lorag" / "models"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/targets.py
from targets import check, machine, print_targets  # noqa: E402

PROMPTS = [
    "Write a short note about the ocean.",
    "Explain why the sky is blue.",
    "List three uses of copper.",
    "Describe a quiet morning in a village.",
    "What makes a good cup of tea?",
    "Give advice to a new gardener.",
    "Summarise the rules of chess.",
    "Why do cats purr?",
    "How does a bicycle stay upright?",
    "Name two planets and describe them.",
    "What is the capital of France?",
    "Write a haiku about autumn.",
    "Explain what a computer program is.",
    "How do bees make honey?",
    "Give three tips for learning a language.",
    "Why is exercise good for health?",
]

# Fixed text for perplexity (written for this benchmark).
PERPLEXITY_TEXT = (
    "The river runs through the middle of the old town. In the morning, fishermen push their boats "
    "into the water while the bakers open their shops and the smell of fresh bread fills the narrow "
    "streets. Children walk to school across the stone bridge, and the church bell rings eight times. "
    "In summer, visitors come to see the castle on the hill, which was built more than six hundred "
    "years ago to protect the valley. From its walls you can see the forest, the fields of wheat and "
    "the mountains far away. In winter the town is quiet: snow covers the roofs, the river freezes at "
    "its edges, and people gather in the warm cafes to drink coffee and talk about the news. The town "
    "library keeps books about its history, including maps that show how the streets have changed."
)


def _adapters(base_dir: Path, root: Path, n: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = []
    for i in range(n):
        target = root / f"a{i}"
        torch.manual_seed(100 + i)
        model = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True)
        cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
        cfg.init_lora_weights = False
        peft_model = get_peft_model(model, cfg)
        peft_model.save_pretrained(target)
        out.append(target)
    return out


def _rss_mib() -> float:
    """Resident memory of this process (Linux /proc), MiB."""
    import gc

    gc.collect()
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _median_round(runs: list[tuple[int, float]]) -> tuple[int, float]:
    return sorted(runs, key=lambda r: r[0] / r[1])[len(runs) // 2]


def _rate(runs: list[tuple[int, float]]) -> dict:
    tokens, seconds = _median_round(runs)
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "rounds_tokens_per_s": [round(t / sec, 2) for t, sec in runs],
    }


def _run_engine(engine, tok, items, max_new_tokens: int, *, ignore_eos: bool = False) -> tuple[int, float]:
    import threading

    from lorag.generation.engine import SamplingParams, Sequence

    done = threading.Event()
    left = [len(items)]
    tokens = [0]
    lock = threading.Lock()

    def sink(ev):
        if ev.finish_reason:
            with lock:
                tokens[0] += ev.completion_tokens
                left[0] -= 1
                if left[0] == 0:
                    done.set()

    started = time.perf_counter()
    for prompt, adapter in items:
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        if not isinstance(ids, list):
            ids = ids["input_ids"]
        params = SamplingParams(max_new_tokens=max_new_tokens, ignore_eos=ignore_eos)
        engine.submit(Sequence(list(ids), adapter, params, sink))
    done.wait(3600)
    return tokens[0], time.perf_counter() - started


class _OneTorchThread:
    """Runs every model call of a benchmark part on one engine thread.

    torch's CPU kernels parallelise with OpenMP, which keeps a team of worker threads per
    calling thread. Once a process holds more OpenMP threads than cores (a second thread that
    ran torch ops is enough on 2 cores), every small kernel pays a wake-up (libgomp, torch's
    OpenMP runtime, then spins only briefly between parallel regions): decoding SmolLM2 at
    batch 8 fell from about 115 to 80 tokens/s here. A served replica has one engine thread,
    so the arms run there too: the engine switches models between rounds (``rounds``), and the
    stock-``generate`` baselines run as engine commands (``call``).
    """

    def __init__(self, engine) -> None:
        self.engine = engine

    def use(self, model) -> None:
        def switch() -> None:
            self.engine.model = model
            self.engine.device = next(model.parameters()).device  # batch tensors go there

        self.engine.run_exclusive(switch)

    def rounds(self, model, items, max_new_tokens: int, *, ignore_eos: bool = False) -> tuple[int, float]:
        self.use(model)
        return _run_engine(self.engine, self.engine.tokenizer, items, max_new_tokens, ignore_eos=ignore_eos)

    def call(self, fn):
        return self.engine.run_exclusive(fn)

    def close(self) -> None:
        self.engine.close()


def engine_ratios(args, work: Path) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorag.common.safeload import require_safetensors_adapter
    from lorag.generation import lora_batch
    from lorag.generation.engine import BASE, BatchEngine
    from lorag.generation.models import prepare_builtin
    from lorag.generation.settings import GenerationSettings

    torch.set_num_threads(os.cpu_count() or 1)
    base_dir = prepare_builtin(GenerationSettings())
    paths = _adapters(base_dir, work / "adapters", args.adapters)
    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.padding_side = "left"
    base = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True).eval()
    rss_base = _rss_mib()
    model = PeftModel.from_pretrained(base, require_safetensors_adapter(paths[0]), adapter_name="a0")
    for i, p in enumerate(paths[1:], 1):
        model.load_adapter(require_safetensors_adapter(p), adapter_name=f"a{i}")
    model.eval()
    lora_batch.install(model)  # as the service does: gathered multi-LoRA matmuls
    rss_loaded = _rss_mib()
    tensor_bytes = sum(
        t.numel() * t.element_size()
        for name, t in model.named_parameters()
        if ".a0." in name or name.endswith(".a0")
    )
    memory = {
        "adapters": args.adapters,
        "rank": 8,
        "rss_mib_base": rss_base,
        "rss_mib_with_adapters": rss_loaded,
        "rss_mib_per_adapter": (rss_loaded - rss_base) / args.adapters,
        "tensor_mib_per_adapter": tensor_bytes / 2**20,
    }
    plain_model = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True).eval()
    # One engine thread does all the model work of this part, the baselines included (see
    # _OneTorchThread): the arms switch its model between rounds.
    engine = _OneTorchThread(BatchEngine(model, tok, max_batch_size=args.concurrency))
    n = args.requests
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    names = [f"a{i % args.adapters}" for i in range(n)]
    arms = {
        "base_plain": (plain_model, [(p, BASE) for p in prompts]),
        "base": (model, [(p, BASE) for p in prompts]),
        "mixed": (model, list(zip(prompts, names, strict=True))),
    }

    def raw_generate() -> tuple[int, float]:
        """Stock ``generate`` of the plain base model in batches of --concurrency, stopping at
        end-of-sequence like the served requests (the baseline of the gRPC ratios)."""
        tokens, started = 0, time.perf_counter()
        for i in range(0, n, args.concurrency):
            batch = [
                tok.apply_chat_template(
                    [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
                )
                for p in prompts[i : i + args.concurrency]
            ]
            enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            out = plain_model.generate(
                **enc, max_new_tokens=args.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
            )
            tokens += int((out[:, enc["input_ids"].shape[1] :] != tok.pad_token_id).sum())
        return tokens, time.perf_counter() - started

    # Warm up every path with a full round each: the first passes over new shapes are slow.
    for arm_model, items in arms.values():
        engine.rounds(arm_model, items, args.max_new_tokens, ignore_eos=True)
    engine.call(raw_generate)
    # Alternate the arms round by round and keep the median round of each, so that load from
    # other processes on the machine hits every side alike. End-of-sequence is ignored in the
    # engine arms, so every round decodes the same number of row-steps; "engine_eos" (the plain
    # engine stopping at end-of-sequence) and "raw_generate" do the work the gRPC arms do.
    runs: dict[str, list[tuple[int, float]]] = {k: [] for k in arms}
    eos_runs: dict[str, list[tuple[int, float]]] = {"engine_eos": [], "raw_generate": []}
    for _ in range(args.rounds):
        for key, (arm_model, items) in arms.items():
            runs[key].append(engine.rounds(arm_model, items, args.max_new_tokens, ignore_eos=True))
        eos_items = arms["base_plain"][1]
        eos_runs["engine_eos"].append(engine.rounds(plain_model, eos_items, args.max_new_tokens))
        eos_runs["raw_generate"].append(engine.call(raw_generate))
    if len({t for r in runs.values() for t, _ in r}) != 1:
        raise RuntimeError("the measured arms generated different numbers of tokens")

    # naive: one request at a time, switching the active adapter per request; the same work as
    # the rounds above (min_new_tokens: every request generates max_new_tokens tokens)
    def naive() -> tuple[int, float]:
        tokens, started = 0, time.perf_counter()
        for prompt, name in zip(prompts, names, strict=True):
            model.set_adapter(name)
            ids = tok.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                return_tensors="pt",
                return_dict=True,
            )
            out = model.generate(
                **ids,
                max_new_tokens=args.max_new_tokens,
                min_new_tokens=args.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
            tokens += out.shape[1] - ids["input_ids"].shape[1]
        return tokens, time.perf_counter() - started

    naive_tokens, naive_s = engine.call(naive)
    engine.close()

    return {
        **{key: _rate(r) for key, r in {**runs, **eos_runs}.items()},
        "naive_set_adapter": {
            "tokens": naive_tokens,
            "seconds": naive_s,
            "tokens_per_s": naive_tokens / naive_s,
        },
        "adapter_memory": memory,
    }


async def _served_rounds(one, args) -> list[tuple[int, float]]:
    """--requests Generate calls, --concurrency at a time, as rounds: one to warm up (first
    shapes), then --rounds measured, as the engine arms are."""

    async def round_() -> tuple[int, float]:
        sem = asyncio.Semaphore(args.concurrency)

        async def bounded(i: int):
            async with sem:
                return await one(PROMPTS[i % len(PROMPTS)])

        started = time.perf_counter()
        responses = await asyncio.gather(*(bounded(i) for i in range(args.requests)))
        return sum(r.summary.usage.completion_tokens for r in responses), time.perf_counter() - started

    await round_()
    return [await round_() for _ in range(args.rounds)]


async def grpc_and_hot_swap(args, work: Path, adapter_dirs: list[Path]) -> dict:
    import json as _json

    from lorag.adapters.transfer import upload_requests
    from lorag.adapters.v1 import adapters_pb2 as apb
    from lorag.client import AsyncClient
    from lorag.common.hosts import start_inprocess
    from lorag.common.rpc import Runtime
    from lorag.common.settings import LoragSettings
    from lorag.common.v1 import common_pb2
    from lorag.generation.v1 import generation_pb2 as pb

    runtime = Runtime.build(LoragSettings(data_dir=work / "data"))
    key = runtime.tenants.bootstrap()
    apps = tuple(
        a for a in __import__("lorag.apps", fromlist=["APPS"]).APPS if a.name in ("generation", "adapters")
    )
    host = await start_inprocess(runtime, apps=apps)
    try:
        async with AsyncClient(host.target, key, timeout=600) as c:
            sampling = pb.SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)

            async def one(prompt: str, ref: str = ""):
                chat = pb.Chat(messages=[pb.ChatMessage(role=pb.CHAT_ROLE_USER, content=prompt)])
                return await c.generation.Generate(
                    pb.GenerateRequest(chat=chat, sampling=sampling, adapter=common_pb2.AdapterRef(ref=ref))
                )

            grpc_runs = await _served_rounds(one, args)

            for d in adapter_dirs[:2]:
                cfg = _json.loads((d / "adapter_config.json").read_text())
                cfg["base_model_name_or_path"] = "smollm2-135m-instruct"
                (d / "adapter_config.json").write_text(_json.dumps(cfg))
                await c.adapters.UploadAdapterVersion(upload_requests(d, adapter_name="swap"))
            await c.adapters.SetAlias(apb.SetAliasRequest(adapter_name="swap", alias="production", version=1))
            v2 = (
                await c.adapters.Resolve(apb.ResolveRequest(ref=common_pb2.AdapterRef(ref="swap@v2")))
            ).version_id
            # Open-loop load: a request every 100 ms whatever the latency, so the time a new
            # version takes to appear is not hidden behind slow requests.
            seen: list[tuple[float, str]] = []
            failures = 0

            inflight = asyncio.Semaphore(8)  # stay below the per-tenant concurrency limit

            async def probe():
                nonlocal failures
                async with inflight:
                    t0 = time.monotonic()
                    try:
                        r = await one("Say hello.", "swap")
                        seen.append((t0, r.summary.adapter_version_id))
                    except Exception:  # noqa: BLE001 - counted: the target is zero
                        failures += 1

            probes = []
            for _ in range(10):
                probes.append(asyncio.create_task(probe()))
                await asyncio.sleep(0.1)
            await c.adapters.SetAlias(apb.SetAliasRequest(adapter_name="swap", alias="production", version=2))
            moved = time.monotonic()
            while time.monotonic() - moved < 4.0:
                probes.append(asyncio.create_task(probe()))
                await asyncio.sleep(0.1)
            await asyncio.gather(*probes)
            # time from the move until every later request got the new version
            stale = [t0 - moved for t0, v in seen if t0 > moved and v != v2]
            switch_s = max(stale, default=0.0)
    finally:
        await host.stop(0)
        runtime.close()
    return {
        "grpc": _rate(grpc_runs),
        "hot_swap": {
            "switch_time_s": switch_s,
            "failed_requests": failures,
            "requests": len(seen),
        },
    }


def through_ray_serve(args, work: Path) -> dict:
    """The same workload through Ray Serve's gRPC proxy (generation + adapters applications)."""
    import socket

    from lorag import serving
    from lorag.apps import APPS
    from lorag.cli import bootstrap
    from lorag.client import AsyncClient
    from lorag.common.settings import LoragSettings
    from lorag.generation.v1 import generation_pb2 as pb

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    settings = LoragSettings(data_dir=work / "ray-data", grpc_port=free_port())
    key = bootstrap(settings)
    apps = tuple(a for a in APPS if a.name in ("generation", "adapters"))
    endpoint = serving.start(settings, apps=apps, http_port=free_port())

    async def run() -> tuple[int, float]:
        async with AsyncClient(endpoint.grpc_target, key, timeout=600) as c:
            sampling = pb.SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)

            async def one(prompt: str):
                chat = pb.Chat(messages=[pb.ChatMessage(role=pb.CHAT_ROLE_USER, content=prompt)])
                return await c.generation.Generate(pb.GenerateRequest(chat=chat, sampling=sampling))

            return await _served_rounds(one, args)

    try:
        runs = asyncio.run(run())
    finally:
        serving.shutdown()
    return {"ray_serve": _rate(runs)}


def _quantized_models(base_dir: Path, fp32) -> tuple[dict, dict]:
    """{mode: model} for fp32, torch.ao int8 and each bitsandbytes mode this process can load,
    and {mode: reason} for the modes it cannot. With a CUDA GPU, fp32 and bitsandbytes run on
    it (torch.ao int8 is CPU-only and skipped)."""
    import torch
    from transformers import AutoModelForCausalLM

    from lorag.common.errors import FailedPrecondition
    from lorag.embedding.models import quantize_int8
    from lorag.generation.models import BNB_MODES, load_bnb

    loaded, skipped = {"fp32": fp32}, {}
    if torch.cuda.is_available():
        loaded["fp32"] = fp32.to("cuda")  # the reference runs where the bitsandbytes models run
        skipped["int8"] = "torch.ao dynamic int8 runs on the CPU only"
    else:
        int8, ok = quantize_int8(AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True).eval())
        if ok:
            loaded["int8"] = int8
        else:
            skipped["int8"] = "this torch build has no int8 dynamic quantization"
    for mode in BNB_MODES:
        try:
            loaded[f"bnb_{mode}"] = load_bnb(str(base_dir), mode).eval()
        except FailedPrecondition as exc:
            skipped[f"bnb_{mode}"] = str(exc)
    return loaded, skipped


def _weight_mib(model) -> float:
    """Bytes of the weights as stored in memory (packed int8 / 4-bit included), in MiB."""
    import torch

    seen, total = set(), 0
    tensors = list(model.state_dict().values()) + list(model.parameters())
    for t in tensors:
        if not isinstance(t, torch.Tensor) or t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    for module in model.modules():  # torch.ao dynamic int8 keeps packed weights outside state
        packed = getattr(module, "_packed_params", None)
        if packed is not None and callable(getattr(module, "weight", None)):
            w = module.weight()  # unpacked copy: count it, never dedup by its (reused) address
            total += w.numel() * w.element_size()
    return total / 2**20


def quantization_tradeoff(args, work: Path) -> dict:
    """Quantized bases vs fp32: speed, greedy agreement, perplexity, memory, LoRA mixing cost.

    Modes: torch.ao int8 dynamic quantization and bitsandbytes int8 / nf4 / fp4 (on CUDA when a
    GPU is visible, else on bitsandbytes' CPU backend), each beside fp32 in the same run.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorag.common.safeload import require_safetensors_adapter
    from lorag.generation import lora_batch
    from lorag.generation.engine import BASE, BatchEngine
    from lorag.generation.models import prepare_builtin
    from lorag.generation.settings import GenerationSettings

    torch.set_num_threads(os.cpu_count() or 1)
    base_dir = prepare_builtin(GenerationSettings())
    tok = AutoTokenizer.from_pretrained(base_dir)
    tok.padding_side = "left"
    # every model is built (quantization runs torch kernels) and run on one engine thread
    fp32 = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True).eval()
    engine = _OneTorchThread(BatchEngine(fp32, tok, max_batch_size=args.concurrency))
    models, skipped = engine.call(lambda: _quantized_models(base_dir, fp32))
    memory = {k: _weight_mib(m) for k, m in models.items()}
    device = "cuda" if torch.cuda.is_available() else "cpu"

    # speed: the serving engine, equal work, alternating rounds, medians; all model work of
    # this part on the engine's thread (see _OneTorchThread)
    prompts = [(PROMPTS[i % len(PROMPTS)], BASE) for i in range(args.requests)]
    for model in models.values():
        engine.rounds(model, prompts, args.max_new_tokens, ignore_eos=True)
    runs: dict[str, list[tuple[int, float]]] = {k: [] for k in models}
    for _ in range(args.rounds):
        for key, model in models.items():
            runs[key].append(engine.rounds(model, prompts, args.max_new_tokens, ignore_eos=True))

    # quality: greedy continuations of every prompt (fp32 is the reference)
    texts = [
        tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
        for p in PROMPTS
    ]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    width = enc["input_ids"].shape[1]
    ids = tok(PERPLEXITY_TEXT, return_tensors="pt")["input_ids"]

    def on(model, tensors: dict) -> dict:
        dev = next(model.parameters()).device
        return {k: v.to(dev) for k, v in tensors.items()}

    def quality() -> tuple[dict, dict, dict]:
        outs = {
            k: m.generate(
                **on(m, enc), max_new_tokens=args.max_new_tokens, do_sample=False,
                pad_token_id=tok.pad_token_id,
            )[:, width:].cpu()
            for k, m in models.items()
        }  # fmt: skip
        # teacher-forced top-1 agreement along the fp32 continuation
        full = torch.cat([enc["input_ids"], outs["fp32"]], 1)
        mask = torch.cat([enc["attention_mask"], torch.ones_like(outs["fp32"])], 1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: positions start at 0
        forced_in = {"input_ids": full, "attention_mask": mask, "position_ids": positions}
        top1 = {
            k: m(**on(m, forced_in)).logits[:, width - 1 : -1].argmax(-1).cpu() for k, m in models.items()
        }
        # perplexity on a fixed text
        ppl = {
            k: float(torch.exp(m(**on(m, {"input_ids": ids, "labels": ids})).loss)) for k, m in models.items()
        }
        return outs, top1, ppl

    outs, top1, ppl = engine.call(quality)
    ref = outs["fp32"]
    # positions up to and including the first end-of-sequence of the fp32 reference
    eos = tok.pad_token_id
    valid = (ref == eos).long().cumsum(1) - (ref == eos).long() == 0
    fp32_rate = _rate(runs["fp32"])
    modes = {}
    for key in models:
        got, prefix = outs[key], []
        for row in range(len(PROMPTS)):
            n = int(valid[row].sum())
            diverge = (ref[row, :n] != got[row, :n]).nonzero()
            prefix.append((int(diverge[0]) if len(diverge) else n) / max(n, 1))
        rate = _rate(runs[key])
        modes[key] = {
            **rate,
            "over_fp32_tokens_per_s": rate["tokens_per_s"] / fp32_rate["tokens_per_s"],
            "weights_mib": memory[key],
            "greedy_identical_continuations": sum(p == 1.0 for p in prefix),
            "greedy_prefix_agreement_mean": sum(prefix) / len(prefix),
            # for fp32 itself: a check of the alignment (teacher forcing reproduces its tokens)
            "teacher_forced_top1_agreement": float(((top1[key] == ref) & valid).sum() / valid.sum()),
            "perplexity": ppl[key],
            "example": tok.decode(got[0], skip_special_tokens=True),
        }

    # LoRA on a 4-bit base (serving QLoRA-style adapters): mixed adapters ÷ base rows, nf4
    lora = {}
    if "bnb_nf4" in models:
        adapter_dirs = sorted((work / "adapters").iterdir()) if (work / "adapters").exists() else []
        if not adapter_dirs:
            adapter_dirs = _adapters(base_dir, work / "adapters", args.adapters)
        names = [f"a{i}" for i in range(len(adapter_dirs))]

        def wrap():
            first = require_safetensors_adapter(adapter_dirs[0])
            peft = PeftModel.from_pretrained(models["bnb_nf4"], first, adapter_name=names[0])
            for name, path in zip(names[1:], adapter_dirs[1:], strict=True):
                peft.load_adapter(require_safetensors_adapter(path), adapter_name=name)
            peft.eval()
            lora_batch.install(peft)
            return peft

        peft = engine.call(wrap)
        arms = {
            "base": prompts,
            "mixed": [(PROMPTS[i % len(PROMPTS)], names[i % len(names)]) for i in range(args.requests)],
        }
        lora_runs: dict[str, list[tuple[int, float]]] = {k: [] for k in arms}
        for items in arms.values():
            engine.rounds(peft, items, args.max_new_tokens, ignore_eos=True)
        for _ in range(args.rounds):
            for key, items in arms.items():
                lora_runs[key].append(engine.rounds(peft, items, args.max_new_tokens, ignore_eos=True))
        base_rate, mixed_rate = _rate(lora_runs["base"]), _rate(lora_runs["mixed"])
        lora = {
            "mode": "bnb_nf4",
            "adapters": len(names),
            "batched_lora_path": lora_batch.rows_supported(peft),
            "base": base_rate,
            "mixed": mixed_rate,
            "mixed_over_base_tokens_per_s": mixed_rate["tokens_per_s"] / base_rate["tokens_per_s"],
        }
    engine.close()
    return {
        "device": device,
        "prompts": len(PROMPTS),
        "perplexity_text_tokens": int(ids.shape[1]),
        "modes": modes,
        "skipped": skipped,
        "lora_on_4bit": lora,
    }


def _targets(ratios: dict, results: dict) -> list[dict]:
    names = {
        "mixed_over_base": "generation_mixed_over_base",
        "mixed_over_naive": "generation_mixed_over_naive",
        "grpc_over_raw_generate": "generation_grpc_over_raw",
        "ray_serve_over_raw_generate": "generation_ray_serve_over_raw",
        "grpc_over_engine": "generation_grpc_over_engine",
        "ray_serve_over_engine": "generation_ray_serve_over_engine",
    }
    out = [check(target, ratios[key]) for key, target in names.items() if key in ratios]
    if "hot_swap" in results:
        out.append(check("hot_swap_switch_time_s", results["hot_swap"]["switch_time_s"]))
        out.append(check("hot_swap_failed_requests", results["hot_swap"]["failed_requests"]))
    if "adapter_memory" in results:
        out.append(check("memory_per_adapter_mib", results["adapter_memory"]["rss_mib_per_adapter"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternating rounds per comparison (median kept)"
    )
    parser.add_argument(
        "--only",
        choices=("all", "engine", "quant"),
        default="all",
        help="engine: only the in-process engine figures; quant: only the quantization trade-off",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in ("all", "engine"):
            print("measuring the engine (base, mixed adapters, naive, raw generate) ...", flush=True)
            results.update(engine_ratios(args, work))
        # The engine-thread parts first: run after the gRPC host and Ray Serve had run in this
        # process, the quantization rounds measured fp32 at 79 instead of 115 tokens/s.
        if args.only in ("all", "quant"):
            print("measuring quantized bases (torch.ao int8, bitsandbytes) against fp32 ...", flush=True)
            results["quantization"] = quantization_tradeoff(args, work)
        if args.only == "all":
            print("measuring gRPC and hot swap ...", flush=True)
            adapter_dirs = sorted((work / "adapters").iterdir())
            results.update(asyncio.run(grpc_and_hot_swap(args, work, adapter_dirs)))
            print("measuring through Ray Serve's gRPC proxy ...", flush=True)
            results.update(through_ray_serve(args, work))
    tps = {k: v["tokens_per_s"] for k, v in results.items() if "tokens_per_s" in v}
    quant = results.get("quantization", {})
    for key, mode in quant.get("modes", {}).items():
        tps[f"{key}_engine"] = mode["tokens_per_s"]
    ratio_defs = {
        "mixed_over_base": ("mixed", "base", 0.8),
        "mixed_over_base_plain": ("mixed", "base_plain", 0.8),
        "base_over_base_plain": ("base", "base_plain", None),
        "mixed_over_naive": ("mixed", "naive_set_adapter", 3.0),
        "grpc_over_raw_generate": ("grpc", "raw_generate", 0.9),
        "ray_serve_over_raw_generate": ("ray_serve", "raw_generate", 0.9),
        "grpc_over_engine": ("grpc", "engine_eos", None),
        "ray_serve_over_engine": ("ray_serve", "engine_eos", None),
        "engine_over_raw_generate": ("engine_eos", "raw_generate", None),
    }
    for key in quant.get("modes", {}):
        if key != "fp32":
            ratio_defs[f"{key}_over_fp32"] = (f"{key}_engine", "fp32_engine", None)
    ratios = {k: tps[a] / tps[b] for k, (a, b, _) in ratio_defs.items() if a in tps and b in tps}
    if quant.get("lora_on_4bit"):
        ratios["nf4_mixed_over_nf4_base"] = quant["lora_on_4bit"]["mixed_over_base_tokens_per_s"]
    report = {
        "benchmark": "generation",
        "machine": {
            **machine(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
        },
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
        "ratios": ratios,
        "targets": _targets(ratios, results),
    }
    print_targets(report["targets"])
    name = "bench_generation" if args.only == "all" else f"bench_generation_{args.only}"
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(list(tps), list(tps.values()), color="#4c72b0")
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_ylabel("generated tokens / s")
    ax.set_title(f"SmolLM2-135M, greedy, {args.requests} requests, batch {args.concurrency}")
    fig.tight_layout()
    fig.savefig(args.out / f"{name}.png", dpi=110)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
