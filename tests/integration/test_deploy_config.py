"""deploy/serve.yaml is a valid Ray Serve config whose import paths build the applications."""

from pathlib import Path

import yaml
from ray.serve.schema import ServeDeploySchema

from lorag.apps import import_object

CONFIG = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "serve.yaml").read_text())


def test_serve_config_validates_against_rays_schema():
    schema = ServeDeploySchema.model_validate(CONFIG)
    assert {a.name for a in schema.applications} == {a["name"] for a in CONFIG["applications"]}
    assert schema.grpc_options.port == 9000


def test_import_paths_resolve_to_bound_applications():
    from ray.serve.deployment import Application

    for app in CONFIG["applications"]:
        assert isinstance(import_object(app["import_path"]), Application), app["import_path"]
