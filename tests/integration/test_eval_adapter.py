"""`lorag eval adapter` at tiny sizes through the CLI: a domain dataset is built from SQuADShifts
paragraphs, trained by the platform's training pipeline (StartTraining, thread runner, real
SmolLM2 LoRA for two steps), registered, and both arms answer the same questions through Ask.
Whether the adapter wins is a benchmark figure (README, Evaluation), not asserted here."""

import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from lorag.cli import cli
from lorag.evaluation.report import adapter_table
from tests.support.models import smollm2_dir
from tests.support.reranking import QUICK_ENV, quick_reranker


@pytest.fixture(scope="module")
def models():
    return quick_reranker(), smollm2_dir()


@pytest.mark.timeout(1800)  # about a minute on 2 idle cores; far longer on a loaded machine
def test_eval_adapter_trains_through_the_pipeline_and_compares_both_arms(models, tmp_path, monkeypatch):
    for key, value in QUICK_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LORAG_TRAINING_GENERAL_EVAL_RECORDS", "8")
    out = tmp_path / "out"
    args = ["--domain", "nyt", "--general", "dev", "--domain-docs", "6", "--general-docs", "4"]
    args += ["--questions", "2", "--steps", "2", "--batch-size", "2", "--max-new-tokens", "8"]
    args += ["--max-seq-length", "384", "--out", str(out)]
    result = CliRunner().invoke(cli, ["eval", "adapter", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "adapter.json" in result.output
    assert (out / "adapter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "adapter.json").read_text())
    assert report["kind"] == "adapter" and report["command"].startswith("lorag eval adapter --domain nyt")

    domain, general = report["domain"], report["general"]
    assert domain["set"] == "nyt" and domain["documents"] == 6 and general["documents"] == 4
    assert domain["heldout_paragraphs"] == 2 and domain["train_paragraphs"] == 4
    assert not set(domain["heldout_paragraph_ids"]) & set(domain["train_paragraph_ids"])

    # Trained by the pipeline: validated dataset, a succeeded job, a registered version.
    ds, job = report["training"]["dataset"], report["training"]["job"]
    assert ds["state"] == "ready" and ds["records_uploaded"] == domain["train_questions"] >= 8
    assert ds["train_records"] + ds["validation_records"] == ds["records_valid"]
    assert job["phase"] == "succeeded" and job["version"] == 1, job
    assert report["adapter"] == "eval-domain@v1"
    assert job["hyperparameters"]["max_steps"] == 2 and job["metrics"]["train_steps"] == 2
    for key in ("task_loss", "base_task_loss", "general_loss", "base_general_loss"):
        assert job["metrics"][key] > 0, key

    # Both arms answered the same questions with the same retrieval.
    answers = report["answers"]
    assert set(answers) == {"base", "adapter"}
    for split, heldout in (("domain", set(domain["heldout_paragraph_ids"])), ("general", None)):
        base, tuned = answers["base"][split], answers["adapter"][split]
        assert len(base) == 2 and [r["qid"] for r in base] == [r["qid"] for r in tuned]
        assert [r["contexts"] for r in base] == [r["contexts"] for r in tuned]
        if heldout is not None:
            assert {r["gold_doc"] for r in base} == heldout
        else:
            assert all(r["gold_doc"].startswith("dev-") for r in base)
        for arm, rows in (("base", base), ("adapter", tuned)):
            summary = report["summary"][arm][split]
            assert summary["questions"] == 2
            assert summary["f1"] == pytest.approx(sum(r["f1"] for r in rows) / 2)
        assert report["deltas"][split]["f1"] == pytest.approx(
            report["summary"]["adapter"][split]["f1"] - report["summary"]["base"][split]["f1"], abs=1e-4
        )
    console = Console(record=True, width=160)
    console.print(adapter_table(report))
    table = console.export_text()
    assert "held-out task loss" in table and "helps domain" in table and "nyt held out (2 q)" in table
    verdict = report["verdict"]
    assert verdict["helps_domain"] == (report["deltas"]["domain"]["f1"] > 0)
    assert verdict["general_within_tolerance"] == (report["deltas"]["general"]["f1"] >= -0.05)
