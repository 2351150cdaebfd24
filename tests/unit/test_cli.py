"""The `lorag` command line without a server: parsing, usage errors, config, error lines, metrics."""

import math

import pytest
from click.testing import CliRunner

from lorag.cli import cli, main
from lorag.cli.app import State
from lorag.cli.evaluate import load_queries, mrr_at_k, ndcg_at_k, recall_at_k, unique_docs
from lorag.client import errors


@pytest.fixture
def runner(tmp_path, monkeypatch):
    for var in ("LORAG_ENDPOINT", "LORAG_TARGET", "LORAG_API_KEY", "LORAG_TIMEOUT", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LORAG_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("LORAG_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


class _Failing:
    """A client whose every service call raises ``exc``."""

    def __init__(self, exc):
        self.exc = exc

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return None

    def __getattr__(self, name):
        return self

    def __call__(self, *a, **kw):
        raise self.exc


def test_help_lists_every_command(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in (
        "serve",
        "health",
        "ingest",
        "ask",
        "adapters",
        "train",
        "eval",
        "keys",
        "tenants",
        "login",
    ):
        assert f"  {command} " in result.output
    assert main(["--help"]) == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ask"], "Missing argument 'QUESTION'"),
        (["ask", "  "], "the question is empty"),
        (["ask", "q", "--filter", "year>=soon"], "compares numbers"),
        (["ask", "q", "--top-k", "0"], "--top-k"),
        (["ask", "q", "--routing", "sometimes"], "'sometimes' is not one of"),
        (["adapters", "promote", "bot", "two"], "'two' is not a valid integer"),
        (["adapters", "canary", "bot", "1"], "Missing option '--weight'"),
        (["serve", "--apps", "embedding,nope"], "unknown application(s) nope"),
        (["ingest"], "Missing argument 'PATHS...'"),
        (["ingest", "x.md", "-m", "novalue"], "write KEY=VALUE"),
        (["feedback", "ans_1"], "give --up, --down or --score"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_usage_errors_exit_2_with_a_message(runner, args, needle):
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_failed_calls_print_one_line_and_exit_1(runner, monkeypatch):
    monkeypatch.setattr(State, "client", lambda self: _Failing(errors.NotFoundError("adapter 'x' not found")))
    result = runner.invoke(cli, ["adapters", "promote", "x", "1"])
    assert result.exit_code == 1
    assert result.stderr == "error: NOT_FOUND: adapter 'x' not found\n"


@pytest.mark.parametrize(
    ("exc", "hint"),
    [
        (errors.UnavailableError("connection refused"), "is lorag running at 10.0.0.1:9000?"),
        (errors.UnauthenticatedError("unknown API key"), "lorag login"),
        (errors.PermissionDeniedError("needs role admin"), "higher role"),
        (errors.DeadlineExceededError("deadline"), "--timeout"),
    ],
)
def test_errors_come_with_a_hint_that_names_the_next_step(runner, monkeypatch, exc, hint):
    monkeypatch.setattr(State, "client", lambda self: _Failing(exc))
    result = runner.invoke(cli, ["--endpoint", "10.0.0.1:9000", "keys", "list"])
    assert result.exit_code == 1
    first, second = result.stderr.splitlines()
    assert first == f"error: {exc.code.name}: {exc.message}"
    assert second.startswith("hint: ") and hint in second


def test_main_returns_exit_codes_instead_of_exiting(runner, monkeypatch):
    monkeypatch.setattr(
        State, "client", lambda self: _Failing(errors.InvalidArgumentError("question: empty"))
    )
    assert main(["ask", "why?"]) == 1
    assert main(["ask"]) == 2


def test_config_set_show_and_precedence(runner, tmp_path, monkeypatch):
    assert runner.invoke(cli, ["config", "set", "endpoint", "file-host:9000"]).exit_code == 0
    assert runner.invoke(cli, ["config", "set", "api_key", "lrg_from_the_file_0123"]).exit_code == 0
    assert runner.invoke(cli, ["config", "set", "timeout", "-1"]).exit_code == 2
    shown = runner.invoke(cli, ["config", "show"]).output
    assert "file-host:9000" in shown and str(tmp_path / "config.toml") in shown
    assert "lrg_from_the_file_0123" not in shown and "lrg_from…" in shown  # the key is masked

    monkeypatch.setenv("LORAG_ENDPOINT", "env-host:9000")
    assert "env-host:9000  ($LORAG_ENDPOINT)" in runner.invoke(cli, ["config", "show"]).output
    shown = runner.invoke(cli, ["--endpoint", "flag-host:1", "config", "show"]).output
    assert "flag-host:1  (argument)" in shown

    seen = {}

    def capture(self):
        seen.update(endpoint=self.config().endpoint, key=self.config().api_key)
        return _Failing(errors.UnavailableError("down"))

    monkeypatch.setattr(State, "client", capture)
    runner.invoke(cli, ["--target", "old-flag:2", "keys", "list"])  # --target still works
    assert seen == {"endpoint": "old-flag:2", "key": "lrg_from_the_file_0123"}
    assert runner.invoke(cli, ["config", "unset", "api_key"]).exit_code == 0
    assert "(none)" in runner.invoke(cli, ["config", "show"]).output


def test_bad_config_file_is_a_one_line_error(runner, tmp_path):
    (tmp_path / "config.toml").write_text("endpoint = [\n")
    result = runner.invoke(cli, ["config", "show"])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "not valid TOML" in result.stderr


def test_ingest_dry_run_lists_files_and_document_ids(runner, tmp_path, monkeypatch):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("a")
    (tmp_path / "docs" / "sub" / "b.pdf").write_bytes(b"%PDF")
    (tmp_path / "docs" / "c.bin").write_bytes(b"\0")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["ingest", "docs", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "docs/a.md\ttext/markdown\tdocs/a.md",
        "docs/sub/b.pdf\tapplication/pdf\tdocs/sub/b.pdf",
    ]
    result = runner.invoke(cli, ["ingest", "docs/*.bin"])
    assert result.exit_code == 2 and "no files to ingest" in result.output
    result = runner.invoke(cli, ["ingest", "missing/"])
    assert result.exit_code == 1 and "error: missing/: no such file or directory" in result.stderr


# -- retrieval metrics ----------------------------------------------------------------------------


def test_ndcg_mrr_and_recall_by_hand():
    rel = {"a": 1.0, "b": 1.0}
    assert ndcg_at_k(["a", "b", "c"], rel) == pytest.approx(1.0)
    # relevant at ranks 2 and 3: (1/log2(3) + 1/log2(4)) / (1 + 1/log2(3))
    expected = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["x", "a", "b"], rel) == pytest.approx(expected)
    assert mrr_at_k(["x", "y", "b"], rel) == pytest.approx(1 / 3)
    assert mrr_at_k(["x"] * 10 + ["a"], rel, k=10) == 0.0
    assert recall_at_k(["a", "x"], rel) == 0.5
    graded = {"a": 2.0, "b": 1.0}
    assert ndcg_at_k(["b", "a"], graded) < ndcg_at_k(["a", "b"], graded) == pytest.approx(1.0)
    assert unique_docs(["a", "a", "b", "a", "c"]) == ["a", "b", "c"]


def test_load_queries_accepts_lists_and_grades_and_names_bad_lines(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "q1", "relevant": ["a"]}\n\n{"query": "q2", "relevant_doc_ids": {"b": 2}}\n')
    assert [(q.query, dict(q.relevant)) for q in load_queries(path)] == [
        ("q1", {"a": 1.0}),
        ("q2", {"b": 2.0}),
    ]
    path.write_text('{"query": "q1", "relevant": ["a"]}\n{"query": "", "relevant": ["a"]}\n')
    with pytest.raises(ValueError, match=r"q.jsonl:2: needs a non-empty"):
        load_queries(path)
    path.write_text('{"query": "q", "relevant": "a"}\n')
    with pytest.raises(ValueError, match="must be a list"):
        load_queries(path)


def test_eval_benchmarks_reject_unknown_sets_and_methods(runner):
    result = runner.invoke(cli, ["eval", "retrieval", "--sets", "dev,msmarco"])
    assert result.exit_code == 2 and "choose from dev, nyt, new_wiki" in result.output
    result = runner.invoke(cli, ["eval", "retrieval", "--methods", "dense,splade"])
    assert result.exit_code == 2 and "hybrid_rerank" in result.output
    result = runner.invoke(cli, ["eval", "rag", "--noise-levels", "0,two"])
    assert result.exit_code == 2 and "comma-separated integers" in result.output
