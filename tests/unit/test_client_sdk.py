"""SDK logic without a server: filters, retry table, error classes, proto -> dataclass, config, files."""

import datetime as dt
import json
import os
import stat

import grpc
import pytest
from google.protobuf import struct_pb2

from lorag.client import errors
from lorag.client.config import ConfigError, config_path, read_config_file, resolve, write_config_file
from lorag.client.documents import Document, document_from_path, find_files
from lorag.client.filters import parse_expressions, to_filter
from lorag.client.retries import IDEMPOTENT, is_retried, service_config
from lorag.client.services import ingest_options
from lorag.client.types import Adapter, Answer, Embeddings, IngestProgress, enum_name, enum_value
from lorag.common.v1 import common_pb2 as cpb

# -- filters --------------------------------------------------------------------------------------


def _conds(f: cpb.Filter) -> list[tuple]:
    return [(c.field, cpb.FilterOp.Name(c.op), [_py(v) for v in c.values]) for c in f.conditions]


def _py(v: struct_pb2.Value):
    kind = v.WhichOneof("kind")
    return {"string_value": v.string_value, "number_value": v.number_value, "bool_value": v.bool_value}[kind]


def test_filter_dict_compiles_to_conditions_with_typed_values():
    f = to_filter(
        {
            "lang": "en",
            "year": {"gte": 2020, "lt": 2025},
            "tags": {"contains": "faq"},
            "region": ["eu", "us"],
            "draft": False,
            "author": {"exists": True},
            "score": {"range": [0.5, 1]},
            "status": {"nin": ["old"]},
        }
    )
    assert _conds(f) == [
        ("lang", "FILTER_OP_EQ", ["en"]),
        ("year", "FILTER_OP_GTE", [2020.0]),
        ("year", "FILTER_OP_LT", [2025.0]),
        ("tags", "FILTER_OP_CONTAINS", ["faq"]),
        ("region", "FILTER_OP_IN", ["eu", "us"]),
        ("draft", "FILTER_OP_EQ", [False]),
        ("author", "FILTER_OP_EXISTS", []),
        ("score", "FILTER_OP_RANGE", [0.5, 1.0]),
        ("status", "FILTER_OP_NOT_IN", ["old"]),
    ]
    assert f.conditions[5].values[0].WhichOneof("kind") == "bool_value"  # a bool is not the number 0
    passthrough = cpb.Filter(conditions=[cpb.FilterCondition(field="x", op=cpb.FILTER_OP_EQ)])
    assert to_filter(passthrough) is passthrough
    assert to_filter(None) == cpb.Filter()


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"year": {"between": 1}}, "unknown operator"),
        ({"year": {"gte": "2020"}}, "compares numbers"),
        ({"tags": {"in": []}}, "at least one value"),
        ({"tags": {"in": "a"}}, "takes a list"),
        ({"x": {"range": [3, 1]}}, "low <= high"),
        ({"x": {"exists": False}}, "'exists' takes true"),
        ({"x": {"eq": {"nested": 1}}}, "strings, numbers or booleans"),
        ({"x": {}}, "empty condition"),
        ({"": 1}, "non-empty"),
        (["lang", "en"], "dict of field"),
    ],
)
def test_bad_filters_fail_before_any_call_with_a_clear_message(spec, needle):
    with pytest.raises(errors.FilterError) as info:
        to_filter(spec)
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_command_line_filter_expressions():
    assert parse_expressions(["lang=en", "year>=2020", "year<2025", "tags~faq", "draft=false"]) == {
        "lang": {"eq": "en"},
        "year": {"gte": 2020, "lt": 2025},
        "tags": {"contains": "faq"},
        "draft": {"eq": False},
    }
    assert parse_expressions(['region=["eu","us"]', "n!=3"]) == {
        "region": {"in": ["eu", "us"]},
        "n": {"ne": 3},
    }
    assert parse_expressions(['{"year": {"gte": 2020}, "lang": "en"}']) == {
        "year": {"gte": 2020},
        "lang": {"eq": "en"},
    }
    for bad, needle in [
        ("lang", "cannot read filter"),
        ("lang=", "cannot read filter"),
        ("{not json", "not valid JSON"),
        ("year>=soon", "compares numbers"),
    ]:
        with pytest.raises(errors.FilterError, match=needle):
            parse_expressions([bad])
    with pytest.raises(errors.FilterError, match="given twice"):
        parse_expressions(["year>=1", "year>=2"])


# -- retries --------------------------------------------------------------------------------------


def test_retry_table_names_every_rpc_of_every_service_once():
    from lorag.client.base import SERVICES

    assert set(IDEMPOTENT) == set(SERVICES)
    import importlib

    for key, (full_name, methods) in IDEMPOTENT.items():
        module = importlib.import_module(SERVICES[key].stub_path.split(":")[0].removesuffix("_grpc"))
        service = next(s for s in module.DESCRIPTOR.services_by_name.values() if s.full_name == full_name)
        assert set(methods) == {m.name for m in service.methods}, key


def test_only_idempotent_rpcs_are_retried():
    for service, method in [("rag", "Ingest"), ("rag", "Feedback"), ("adapters", "UploadAdapterVersion")]:
        assert not is_retried(service, method)
    for service, method in [
        ("adapters", "Rollback"),
        ("admin", "CreateApiKey"),
        ("training", "StartTraining"),
    ]:
        assert not is_retried(service, method)
    for service, method in [
        ("rag", "Ask"),
        ("admin", "WhoAmI"),
        ("retrieval", "Search"),
        ("embedding", "Embed"),
    ]:
        assert is_retried(service, method)
    (config,) = json.loads(service_config())["methodConfig"]
    names = {(n["service"], n["method"]) for n in config["name"]}
    assert ("lorag.rag.v1.RagService", "Ask") in names
    assert ("lorag.rag.v1.RagService", "Ingest") not in names
    assert all(n.get("method") for n in config["name"])  # never a wildcard over a whole service
    assert config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]


# -- errors ---------------------------------------------------------------------------------------


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


@pytest.mark.parametrize(
    ("code", "klass"),
    [
        (grpc.StatusCode.NOT_FOUND, errors.NotFoundError),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgumentError),
        (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDeniedError),
        (grpc.StatusCode.UNAUTHENTICATED, errors.UnauthenticatedError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhaustedError),
        (grpc.StatusCode.UNAVAILABLE, errors.UnavailableError),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPreconditionError),
        (grpc.StatusCode.UNIMPLEMENTED, errors.UnimplementedError),
        (grpc.StatusCode.INTERNAL, errors.InternalError),
    ],
)
def test_rpc_errors_become_the_class_of_their_code(code, klass):
    rpc = _FakeRpcError(code, "adapter 'x' not found")
    exc = errors.LoragClientError.from_rpc_error(rpc)
    assert type(exc) is klass and isinstance(exc, errors.LoragClientError)
    assert exc.code == code and exc.message == "adapter 'x' not found" and exc.rpc_error is rpc
    assert str(exc) == f"{code.name}: adapter 'x' not found"


def test_every_status_code_but_ok_has_a_class():
    assert set(errors.BY_CODE) == set(grpc.StatusCode) - {grpc.StatusCode.OK}
    assert errors.NotFoundError("gone").code == grpc.StatusCode.NOT_FOUND


# -- proto -> dataclass ---------------------------------------------------------------------------


def test_answer_from_proto_keeps_every_field_and_the_raw_message():
    from lorag.rag.v1 import rag_pb2 as pb

    m = pb.AskResponse(
        answer="Use the reset link [1].",
        citations=[
            pb.Citation(
                index=1, doc_id="faq.md", chunk_id="c1", score=0.9, text="reset", char_start=3, char_end=9
            ),
            pb.Citation(
                index=2, doc_id="b.md", chunk_id="c2", score=0.5, text="x", char_start=-1, char_end=-1
            ),
        ],
        rejected=False,
        timings=[cpb.StageTiming(stage="search", duration_ms=12.5)],
        usage=cpb.Usage(prompt_tokens=100, completion_tokens=20, total_tokens=120),
        answer_id="ans_1",
        trace_id="t" * 32,
        search_queries=["reset password"],
        retrieval_performed=True,
    )
    a = Answer.from_proto(m)
    assert (a.answer, a.answer_id, a.rejected, a.retrieval_performed) == (
        "Use the reset link [1].",
        "ans_1",
        False,
        True,
    )
    assert [(c.doc_id, c.char_start, c.char_end) for c in a.citations] == [
        ("faq.md", 3, 9),
        ("b.md", None, None),
    ]
    assert (
        a.timings[0].stage == "search"
        and a.usage.total_tokens == 120
        and a.search_queries == ("reset password",)
    )
    assert a.raw is m and a.citations[0].raw is m.citations[0]
    assert a == Answer.from_proto(pb.AskResponse.FromString(m.SerializeToString()))  # raw not compared
    with pytest.raises(AttributeError):
        a.answer = "changed"  # frozen


def test_enum_names_timestamps_and_nested_messages():
    from lorag.adapters.v1 import adapters_pb2 as pb
    from lorag.admin.v1 import admin_pb2

    assert enum_name(admin_pb2.Role, admin_pb2.ROLE_ADMIN) == "admin"
    assert enum_name(admin_pb2.Role, 0) == "" and enum_name(admin_pb2.Role, 99) == "99"
    assert enum_value(admin_pb2.Role, "operator") == admin_pb2.ROLE_OPERATOR
    assert enum_value(admin_pb2.Role, "ROLE_USER") == admin_pb2.ROLE_USER
    with pytest.raises(ValueError, match="user, admin, operator"):
        enum_value(admin_pb2.Role, "root")
    m = pb.Adapter(
        name="bot",
        kind=pb.ADAPTER_KIND_RERANKING,
        latest_version=3,
        aliases=[
            pb.Alias(name="canary", version=3, traffic_weight=10),
            pb.Alias(name="production", version=2),
        ],
    )
    m.create_time.FromDatetime(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    a = Adapter.from_proto(m)
    assert a.kind == "reranking" and a.alias("production").version == 2 and a.alias("x") is None
    assert a.create_time == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC) and a.update_time is None


def test_embeddings_and_ingest_progress():
    from lorag.embedding.v1 import embedding_pb2 as epb
    from lorag.rag.v1 import rag_pb2 as pb

    e = Embeddings.from_proto(
        epb.EmbedResponse(
            embeddings=[
                epb.Embedding(values=[1, 0], token_count=3),
                epb.Embedding(values=[0, 1], truncated=True),
            ],
            model="m",
            dimension=2,
        )
    )
    assert (
        len(e) == 2 and e[0] == (1.0, 0.0) and e.truncated == (False, True) and e.to_numpy().shape == (2, 2)
    )
    p = IngestProgress.from_proto(
        pb.IngestResponse(
            result=pb.DocumentResult(doc_id="a", status=pb.INGEST_STATUS_FAILED, error="bad pdf"),
            totals=pb.IngestTotals(received=1, failed=1),
        )
    )
    assert p.failed and p.status == "failed" and p.totals.failed == 1


def test_ingest_options_map_chunking_to_the_contract_fields():
    from lorag.rag.v1 import rag_pb2 as pb

    assert ingest_options() is None
    opts = ingest_options(chunk_size=512, chunk_overlap=0, force=True)
    fields = {f.name: v for f, v in opts.ListFields()}
    names = pb.IngestOptions.DESCRIPTOR.fields_by_name
    size = "chunk_tokens" if "chunk_tokens" in names else "chunk_size"
    overlap = "overlap_tokens" if "overlap_tokens" in names else "chunk_overlap"
    assert fields == {size: 512, overlap: 0, "force": True}  # an explicit 0 overlap is sent


# -- config ---------------------------------------------------------------------------------------


def test_config_precedence_argument_env_file_default(tmp_path):
    path = tmp_path / "config.toml"
    write_config_file({"endpoint": "file:1", "api_key": "k-file", "timeout": 12}, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_config_file(path) == {"endpoint": "file:1", "api_key": "k-file", "timeout": 12.0}

    cfg = resolve(env={}, path=path, local_key=False)
    assert (cfg.endpoint, cfg.api_key, cfg.timeout) == ("file:1", "k-file", 12.0)
    assert cfg.sources["endpoint"] == str(path)
    env = {"LORAG_ENDPOINT": "env:2", "LORAG_API_KEY": "k-env", "LORAG_TIMEOUT": "7"}
    cfg = resolve(env=env, path=path, local_key=False)
    assert (cfg.endpoint, cfg.api_key, cfg.timeout) == ("env:2", "k-env", 7.0)
    assert cfg.sources == {
        "endpoint": "$LORAG_ENDPOINT",
        "api_key": "$LORAG_API_KEY",
        "timeout": "$LORAG_TIMEOUT",
    }
    cfg = resolve(endpoint="arg:3", api_key="k-arg", timeout=3, env=env, path=path, local_key=False)
    assert (cfg.endpoint, cfg.api_key, cfg.timeout) == ("arg:3", "k-arg", 3)
    cfg = resolve(env={"LORAG_TARGET": "legacy:4"}, path=tmp_path / "none.toml", local_key=False)
    assert (cfg.endpoint, cfg.api_key, cfg.timeout) == ("legacy:4", None, 30.0)
    assert resolve(env={}, path=tmp_path / "none.toml", local_key=False).endpoint == "127.0.0.1:9000"


def test_config_errors_and_path(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("endpoint = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(bad)
    bad.write_text('colour = "red"\n')
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        read_config_file(bad)
    bad.write_text('timeout = "soon"\n')
    with pytest.raises(ConfigError, match="timeout must be a float"):
        read_config_file(bad)
    with pytest.raises(ConfigError, match="positive"):
        resolve(timeout=0, env={}, path=tmp_path / "none.toml", local_key=False)
    assert config_path({"LORAG_CONFIG": "/x/c.toml"}) == tmp_path.__class__("/x/c.toml")
    assert str(config_path({"XDG_CONFIG_HOME": "/cfg"})) == "/cfg/lorag/config.toml"
    write_config_file({"api_key": 'we"ird\\key'}, tmp_path / "q.toml")  # quoting survives
    assert read_config_file(tmp_path / "q.toml") == {"api_key": 'we"ird\\key'}


# -- documents ------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path, monkeypatch):
    root = tmp_path / "work"
    (root / "docs" / "guide").mkdir(parents=True)
    (root / "docs" / ".git").mkdir()
    (root / "docs" / "intro.md").write_text("# Intro\nhello")
    (root / "docs" / "guide" / "setup.html").write_text("<p>setup</p>")
    (root / "docs" / "guide" / "notes.txt").write_text("notes")
    (root / "docs" / "image.png").write_bytes(b"\x89PNG")
    (root / "docs" / ".git" / "config.txt").write_text("hidden")
    (root / "README").write_text("readme")
    monkeypatch.chdir(root)
    return root


def test_find_files_walks_directories_globs_and_names_documents_by_relative_path(tree, tmp_path):
    found = find_files(["docs"])
    assert [(f.doc_id, f.mime_type) for f in found] == [
        ("docs/guide/notes.txt", "text/plain"),
        ("docs/guide/setup.html", "text/html"),
        ("docs/intro.md", "text/markdown"),
    ]
    assert [f.doc_id for f in find_files(["docs"], recursive=False)] == ["docs/intro.md"]
    assert "docs/.git/config.txt" in [f.doc_id for f in find_files(["docs"], include_hidden=True)]
    assert [f.doc_id for f in find_files(["docs/**/*.txt", "docs/intro.md", "docs"])] == [
        "docs/guide/notes.txt",
        "docs/intro.md",
        "docs/guide/setup.html",
    ]  # each file once, first occurrence wins
    assert [(f.doc_id, f.mime_type) for f in find_files(["README"])] == [("README", "text/plain")]
    assert [f.doc_id for f in find_files(["docs/intro.md"], id_prefix="kb/")] == ["kb/docs/intro.md"]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.md").write_text("x")
    assert [f.doc_id for f in find_files([str(outside)])] == ["a.md"]  # relative to its root
    with pytest.raises(FileNotFoundError, match="no such file"):
        find_files(["missing"])
    with pytest.raises(FileNotFoundError, match="no file matches"):
        find_files(["docs/*.rst"])


def test_document_from_path_and_document_to_proto(tree):
    d = document_from_path("docs/intro.md", metadata={"lang": "en"})
    assert (d.doc_id, d.text, d.mime_type, d.data) == (
        "docs/intro.md",
        "# Intro\nhello",
        "text/markdown",
        None,
    )
    (tree / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    raw = document_from_path("latin1.txt")
    assert raw.text is None and raw.data == b"caf\xe9"  # not decodable: sent as bytes for the server
    proto = d.to_proto()
    assert proto.text == "# Intro\nhello" and dict(proto.metadata) == {"lang": "en"}
    assert Document("x", data=b"%PDF", mime_type="application/pdf").to_proto().data == b"%PDF"
    with pytest.raises(ValueError, match="exactly one"):
        Document("x")
