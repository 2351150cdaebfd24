"""The continuous-batching engine: mixed adapters per row, streaming, stops, cancellation."""

import threading
import time

import pytest
import torch

from lorag.generation import lora_batch
from lorag.generation.engine import BASE, BatchEngine, SamplingParams, Sequence
from tests.support.models import make_lora, tiny_llama_dir


class Collector:
    def __init__(self):
        self.parts, self.final, self.done = [], None, threading.Event()
        self.first_at = self.final_at = None

    def __call__(self, ev):
        if ev.text and self.first_at is None:
            self.first_at = time.perf_counter()
        self.parts.append(ev.text)
        if ev.finish_reason:
            self.final, self.final_at = ev, time.perf_counter()
            self.done.set()

    @property
    def text(self):
        return "".join(self.parts)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = tiny_llama_dir()
    ad = tmp_path_factory.mktemp("adapters")
    a1 = make_lora(base_dir, ad / "a1", seed=1)
    a2 = make_lora(base_dir, ad / "a2", seed=2, modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    tok = AutoTokenizer.from_pretrained(base_dir)

    def peft_model():
        base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
        model = PeftModel.from_pretrained(base, a1, adapter_name="a1")
        model.load_adapter(a2, adapter_name="a2")
        return model.eval()

    model = peft_model()
    assert lora_batch.install(model) > 0
    engine = BatchEngine(model, tok, max_batch_size=8)
    yield engine, tok, peft_model()  # the reference model keeps peft's own mixed-batch path
    engine.close()


def run(engine, tok, items, **params):
    cols = []
    for prompt, adapter in items:
        col = Collector()
        engine.submit(Sequence(tok(prompt)["input_ids"], adapter, SamplingParams(**params), col))
        cols.append(col)
    for col in cols:
        assert col.done.wait(60)
    return cols


PROMPTS = [
    ("The capital of France is", BASE),
    ("Once upon a time", "a1"),
    ("def fib(n):", "a2"),
    ("Water boils at one hundred", "a1"),
    ("Tell me a story about", "a2"),
]


def test_mixed_adapter_batch_equals_single_adapter_runs(setup):
    engine, tok, model = setup
    mixed = run(engine, tok, PROMPTS, max_new_tokens=12)
    for (prompt, adapter), col in zip(PROMPTS, mixed, strict=True):
        (single,) = run(engine, tok, [(prompt, adapter)], max_new_tokens=12)
        assert col.text == single.text, adapter
        ids = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            ref = model.generate(**ids, max_new_tokens=12, do_sample=False, adapter_names=[adapter])
        expected = tok.decode(ref[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        assert col.text == expected, adapter
    # adapters really change the output: the same prompt under three adapters differs
    outs = {
        a: run(engine, tok, [("Once upon a time", a)], max_new_tokens=12)[0].text for a in (BASE, "a1", "a2")
    }
    assert len(set(outs.values())) == 3


def test_length_and_usage_are_reported(setup):
    engine, tok, _ = setup
    (col,) = run(engine, tok, [("Hello there", BASE)], max_new_tokens=5)
    assert col.final.finish_reason in ("length", "stop")
    assert col.final.completion_tokens <= 5
    assert col.final.prompt_tokens == len(tok("Hello there")["input_ids"])


def test_stop_sequence_ends_generation_and_is_not_emitted(setup):
    engine, tok, _ = setup
    (free,) = run(engine, tok, [("The capital of France is", BASE)], max_new_tokens=12)
    stop = free.text[3:6]
    assert stop and stop in free.text
    (col,) = run(engine, tok, [("The capital of France is", BASE)], max_new_tokens=12, stop=(stop,))
    assert col.final.finish_reason == "stop_sequence"
    assert col.text == free.text[: free.text.find(stop)]


def test_seeded_sampling_is_reproducible(setup):
    engine, tok, _ = setup
    kw = dict(max_new_tokens=10, temperature=0.9, top_p=0.9, top_k=50, seed=7)
    a = run(engine, tok, [("Once upon a time", "a1")], **kw)[0].text
    b = run(engine, tok, [("Once upon a time", "a1")], **kw)[0].text
    c = run(engine, tok, [("Once upon a time", "a1")], **{**kw, "seed": 8})[0].text
    assert a == b and a != c


def test_requests_join_a_running_batch(setup):
    engine, tok, _ = setup
    long = Collector()
    engine.submit(Sequence(tok("A long story")["input_ids"], BASE, SamplingParams(max_new_tokens=200), long))
    time.sleep(0.05)
    short = Collector()
    engine.submit(Sequence(tok("Hi")["input_ids"], "a1", SamplingParams(max_new_tokens=3), short))
    assert short.done.wait(30) and long.done.wait(60)
    assert long.final.completion_tokens == 200  # greedy: no early end of sequence
    # the short request joined the running batch and finished long before the long one
    assert short.first_at < long.final_at and short.final_at < long.final_at
    assert engine.steps > 0 and engine.batch_rows > engine.steps  # some steps decoded 2 rows


def test_cancel_frees_the_slot_at_once(setup):
    engine, tok, _ = setup
    col = Collector()
    seq = engine.submit(Sequence(tok("Count")["input_ids"], BASE, SamplingParams(max_new_tokens=10_000), col))
    time.sleep(0.1)
    seq.cancel()
    assert col.done.wait(5)
    assert col.final.finish_reason == "cancelled"
    deadline = time.time() + 2
    while engine.active_count and time.time() < deadline:
        time.sleep(0.01)
    assert engine.active_count == 0


def test_gathered_lora_equals_peft_mixed_batches(setup):
    engine, tok, reference = setup
    ids = tok(
        ["Once upon a time there", "The capital of", "def fib(n):", "Hello"],
        return_tensors="pt",
        padding=True,
    )
    names = ["a1", BASE, "a2", "a1"]
    with torch.no_grad():
        fast = engine.model(**ids, adapter_names=names).logits
        slow = reference(**ids, adapter_names=names).logits
        single = reference(**{k: v[1:2] for k, v in ids.items()}, adapter_names=[BASE]).logits
    assert torch.allclose(fast, slow, atol=1e-5)
    assert torch.allclose(fast[1:2], single, atol=1e-5)
    assert not torch.allclose(
        fast[0], reference(**{k: v[0:1] for k, v in ids.items()}, adapter_names=[BASE]).logits[0]
    )


def test_engine_runs_adapter_commands_between_steps(setup):
    engine, _, model = setup
    assert engine.run_exclusive(lambda: sorted(engine.model.peft_config)) == ["a1", "a2"]
    with pytest.raises(ValueError):
        engine.run_exclusive(lambda: (_ for _ in ()).throw(ValueError("x")))


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    """Adapters of different ranks and module sets: a batched model and a peft reference."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = tiny_llama_dir()
    ad = tmp_path_factory.mktemp("ranked")
    small = make_lora(base_dir, ad / "r4", seed=11, rank=4)
    large = make_lora(base_dir, ad / "r8", seed=12, rank=8, modules=("q_proj", "k_proj", "v_proj", "o_proj"))

    def peft_model():
        base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
        model = PeftModel.from_pretrained(base, small, adapter_name="r4")
        model.load_adapter(large, adapter_name="r8")
        return model.eval()

    fast = peft_model()
    lora_batch.install(fast)
    plain = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    return fast, peft_model(), plain, AutoTokenizer.from_pretrained(base_dir)


@pytest.mark.parametrize(
    "names",
    [
        ["r4", "r8", BASE, "r8"],
        ["r8", "r8", "r8", "r8"],  # one adapter for the whole batch
        [BASE, "r4", BASE, BASE],  # a subset of the loaded adapters
        ["r8", "r4", "r4", BASE],
    ],
)
def test_rows_equal_peft_mixed_batches_across_ranks(ranked, names):
    fast, reference, _, tok = ranked
    assert lora_batch.rows_supported(fast)
    ids = tok(
        ["Once upon a time there", "The capital of", "def fib(n):", "Hello"],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        with lora_batch.rows(fast, names):
            got = fast(**ids).logits
        want = reference(**ids, adapter_names=names).logits
        via_names = fast(**ids, adapter_names=names).logits  # peft's argument, served by the same path
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(via_names, want, atol=1e-5)
    # a decoding step (one token per row) after a batch with other adapters
    step = {k: v[:, -1:] for k, v in ids.items()}
    with torch.no_grad(), lora_batch.rows(fast, names):
        got_step = fast(**step).logits
    assert torch.allclose(got_step, reference(**step, adapter_names=names).logits, atol=1e-5)


def test_rows_of_base_only_give_the_plain_model(ranked):
    fast, _, plain, tok = ranked
    ids = tok(["Once upon a time there", "Hello"], return_tensors="pt", padding=True)
    with torch.no_grad():
        with lora_batch.rows(fast, [BASE, BASE]):
            got = fast(**ids).logits
        with lora_batch.rows(fast, ["r8", BASE]):
            mixed = fast(**ids).logits
        want = plain(**ids).logits
    assert torch.equal(got, want)
    assert torch.equal(mixed[1], want[1]) and not torch.allclose(mixed[0], want[0])


def test_rows_reject_unknown_adapters_and_wrong_batch_sizes(ranked):
    fast, _, _, tok = ranked
    ids = tok(["Hello", "World"], return_tensors="pt")
    with pytest.raises(ValueError, match="non-existing adapter"):
        with lora_batch.rows(fast, ["r4", "nope"]):
            pass
    with pytest.raises(ValueError, match="adapter names for a batch"), torch.no_grad():
        with lora_batch.rows(fast, ["r4"]):
            fast(**ids)


def test_rows_follow_adapter_unload_and_reload(ranked, tmp_path):
    fast, _, _, tok = ranked
    ids = tok(["Hello"], return_tensors="pt")
    with torch.no_grad(), lora_batch.rows(fast, ["r8"]):
        before = fast(**ids).logits
    other = make_lora(tiny_llama_dir(), tmp_path / "other", seed=13, rank=2)
    fast.load_adapter(other, adapter_name="r2")
    lora_batch.install(fast)
    assert lora_batch.rows_supported(fast)
    with torch.no_grad():
        with lora_batch.rows(fast, ["r8"]):
            assert torch.allclose(fast(**ids).logits, before, atol=1e-6)
        with lora_batch.rows(fast, ["r2"]):
            assert not torch.allclose(fast(**ids).logits, before)
    fast.delete_adapter("r2")
    with torch.no_grad(), lora_batch.rows(fast, ["r8"]):
        assert torch.allclose(fast(**ids).logits, before, atol=1e-6)


def test_ignore_eos_generates_the_full_length(setup):
    engine, tok, _ = setup
    prompt = tok("Once upon a time", return_tensors="pt")
    with torch.no_grad(), lora_batch.rows(engine.model, ["a1"]):
        first_token = int(engine.model(**prompt).logits[0, -1].argmax())
    saved = engine.eos_ids
    try:
        # Make the first greedy token an end-of-sequence token: it ends a normal run at once.
        engine.eos_ids = {first_token}
        (stopped,) = run(engine, tok, [("Once upon a time", "a1")], max_new_tokens=6)
        (kept,) = run(engine, tok, [("Once upon a time", "a1")], max_new_tokens=6, ignore_eos=True)
    finally:
        engine.eos_ids = saved
    assert stopped.final.finish_reason == "stop" and stopped.final.completion_tokens == 0
    assert kept.final.finish_reason == "length" and kept.final.completion_tokens == 6
