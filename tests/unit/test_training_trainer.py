"""The LoRA training loop on a tiny random Llama: determinism, resume after a kill, cancellation."""

from __future__ import annotations

import pytest

from lorag.common.errors import Cancelled
from lorag.training import trainer
from lorag.training.validation import Record
from tests.support.models import tiny_llama_dir

HP = trainer.Hyperparameters(
    rank=4, alpha=8, dropout=0.1, target_modules=("q_proj", "v_proj"), learning_rate=1e-3, epochs=1,
    batch_size=2, max_steps=6, seed=3,
)  # fmt: skip
RECORDS = [
    Record(line=i + 1, kind="generation", messages=(("user", f"code {i}?"), ("assistant", f"It is {i * 7}.")))
    for i in range(16)
]


class Killed(Exception):
    """Stands in for the process dying mid-job."""


def _weights(result):
    from peft import get_peft_model_state_dict

    return {k: v.clone() for k, v in get_peft_model_state_dict(result.model).items()}


def test_a_killed_job_resumes_from_its_checkpoint_and_ends_like_an_uninterrupted_run(tmp_path):
    model_dir = tiny_llama_dir()
    full = trainer.train(
        "generation", model_dir=model_dir, records=RECORDS, hp=HP, workdir=tmp_path / "a", checkpoint_every=2
    )

    def die_at_step_3(step, total, loss, seconds):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        trainer.train(
            "generation", model_dir=model_dir, records=RECORDS, hp=HP, workdir=tmp_path / "b",
            checkpoint_every=2, progress=die_at_step_3,
        )  # fmt: skip
    assert (tmp_path / "b" / trainer.CHECKPOINT).exists()
    resumed = trainer.train(
        "generation", model_dir=model_dir, records=RECORDS, hp=HP, workdir=tmp_path / "b", checkpoint_every=2
    )
    assert resumed.resumed_from == 2 and resumed.steps == full.steps == 6
    assert resumed.losses == pytest.approx(full.losses, rel=1e-5)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys() and all((a[k] - b[k]).abs().max() < 1e-5 for k in a)


def test_cancellation_stops_the_loop_between_steps(tmp_path):
    polls = []

    def stop():
        polls.append(1)
        return len(polls) > 2

    steps = []
    with pytest.raises(Cancelled):
        trainer.train(
            "generation", model_dir=tiny_llama_dir(), records=RECORDS, hp=HP, workdir=tmp_path,
            progress=lambda step, *_: steps.append(step), should_stop=stop,
        )  # fmt: skip
    assert steps == [1, 2]
