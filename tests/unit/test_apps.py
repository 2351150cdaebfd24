"""The application table, the Serve config under deploy/ and the contracts agree."""

from collections import Counter
from pathlib import Path
from unittest.mock import Mock

import yaml

from lorag.apps import APPS, grpc_servicer_functions, import_object
from lorag.common.rpc import all_services
from lorag.common.settings import APPLICATIONS

CONFIG = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "serve.yaml").read_text())


def test_application_names_are_fixed():
    assert tuple(spec.name for spec in APPS) == APPLICATIONS


def test_rpc_names_are_unique_within_each_application():
    # Ray Serve's proxy dispatches on the method name alone.
    for spec in APPS:
        names = Counter(m.name for svc in all_services(import_object(spec.servicer)) for m in svc.methods)
        assert not [n for n, c in names.items() if c > 1], spec.name
        assert "Check" not in names


def test_every_add_function_registers_a_hosted_service():
    for spec in APPS:
        hosted = {svc.name for svc in all_services(import_object(spec.servicer))}
        registered = {f.rsplit(".add_", 1)[1].removesuffix("Servicer_to_server") for f in spec.add_functions}
        assert hosted == registered, spec.name
        for f in spec.add_functions:
            assert callable(import_object(f))


def test_serve_config_matches_the_application_table():
    assert CONFIG["grpc_options"]["grpc_servicer_functions"] == grpc_servicer_functions()
    apps = {a["name"]: a for a in CONFIG["applications"]}
    assert list(apps) == list(APPLICATIONS)
    for spec in APPS:
        app = apps[spec.name]
        assert app["route_prefix"] == spec.route_prefix
        assert app["import_path"] == spec.import_path
        (deployment,) = app["deployments"]
        assert deployment["name"] == import_object(spec.servicer).__name__
        scaling = deployment["autoscaling_config"]
        assert 1 <= scaling["min_replicas"] <= scaling["max_replicas"]
        assert deployment["max_ongoing_requests"] >= scaling["target_ongoing_requests"]


def test_proxy_servicer_functions_register_parsers_that_mark_bad_bytes(monkeypatch):
    """The Serve config names lorag.proxy's functions; each registers the generated handlers with
    parsers that turn undecodable bytes into a MalformedRequest (Ray's proxy keeps them)."""
    from lorag import proxy
    from lorag.common.parsing import MalformedRequest

    installed = []
    monkeypatch.setattr(proxy, "answer_replica_failures_as_unavailable", lambda: installed.append(1))

    class Recorder:
        def __init__(self):
            self.registered: dict[str, dict] = {}

        def add_generic_rpc_handlers(self, handlers):
            pass

        def add_registered_method_handlers(self, service, handlers):
            self.registered[service] = handlers

    server = Recorder()
    for path in CONFIG["grpc_options"]["grpc_servicer_functions"]:
        assert path.startswith("lorag.proxy."), path
        import_object(path)(Mock(), server)  # what Ray passes: its handlers replace the servicer
    assert len(installed) == len(CONFIG["grpc_options"]["grpc_servicer_functions"])
    hosted = {svc.full_name for spec in APPS for svc in all_services(import_object(spec.servicer))}
    assert set(server.registered) == hosted | {"grpc.health.v1.Health"}
    parse = server.registered["lorag.admin.v1.AdminService"]["GetTenant"].request_deserializer
    marked = parse(b"\xff\xff\xff\xff\x0f")
    assert isinstance(marked, MalformedRequest) and marked.type_name == "lorag.admin.v1.GetTenantRequest"
