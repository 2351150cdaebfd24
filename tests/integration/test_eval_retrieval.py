"""`lorag eval retrieval` on a CI-sized SQuAD subset: the real ingest path, Milvus Lite, MiniLM
and the quick reranker build, through the CLI (click's runner)."""

import json

import pytest
from click.testing import CliRunner

from lorag.cli import cli
from tests.support.reranking import QUICK_ENV, quick_reranker


@pytest.fixture(scope="module")
def reranker():
    return quick_reranker()


def test_eval_retrieval_subset_ranks_gold_paragraphs_sanely(reranker, tmp_path, monkeypatch):
    for key, value in QUICK_ENV.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "retrieval",
            "--sets",
            "dev",
            "--limit",
            "30",
            "--questions",
            "12",
            "--rerank-depth",
            "5",
            "--out",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "hybrid_rerank" in result.output and "nDCG@10" in result.output
    report = json.loads((out / "retrieval.json").read_text())
    assert (out / "retrieval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (s,) = report["sets"]
    assert s["set"] == "dev" and s["documents"] == 30 and s["questions"] == 12 and s["chunks"] >= 30
    assert s["reranker_scoring_method"] == "cross_encoder"
    m = s["methods"]
    assert set(m) == {"dense", "bm25", "hybrid_rrf", "hybrid_weighted", "hybrid_rerank"}
    for method, values in m.items():
        for name in ("ndcg@10", "recall@100", "mrr@10"):
            assert 0.0 <= values[name] <= 1.0, (method, name, values)
    # A random order of 30 paragraphs scores nDCG@10 ~ 0.15; SQuAD questions share words with
    # their paragraph, so every working method is far above that.
    assert m["bm25"]["ndcg@10"] >= 0.6 and m["dense"]["ndcg@10"] >= 0.5
    assert m["hybrid_rerank"]["ndcg@10"] >= 0.5
    # Reranking only re-orders the head of the hybrid ranking.
    assert m["hybrid_rerank"]["recall@100"] == m["hybrid_rrf"]["recall@100"]
    assert m["dense"]["recall@100"] == 1.0  # 30 documents < 100: dense returns them all
