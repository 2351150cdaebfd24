"""The application table, the Serve config under deploy/ and the contracts agree."""

from collections import Counter
from pathlib import Path

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
