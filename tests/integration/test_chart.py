"""charts/lorag, rendered with the pinned helm for each ci/ value set: what operators rely on."""

from __future__ import annotations

import base64
import json
import re
import subprocess

import pytest
import yaml

from lorag.apps import APPS, grpc_servicer_functions, import_object
from tests.support.helm import (
    CHART,
    ROOT,
    TOOLKIT,
    TOOLS_PYTHON,
    find,
    helm_template,
    ray_pod_specs,
    render,
    require_tools,
)

VALUE_SETS = sorted(p.name for p in (CHART / "ci").glob("*.yaml"))
DEPLOY = ROOT / "deploy"
SECRET_ENV = re.compile(r"(TOKEN|PASSWORD|SECRET|API_KEY|REGISTRY_URL|ACCESS_KEY)")


@pytest.fixture(scope="module", autouse=True)
def _helm():
    require_tools()


_cache: dict[tuple[str, ...], list[dict]] = {}


def rendered(*args: str) -> list[dict]:
    if args not in _cache:
        _cache[args] = render(*args)
    return _cache[args]


def ci(name: str) -> list[dict]:
    return rendered("-f", str(CHART / "ci" / name))


def rayservice(docs: list[dict]) -> dict:
    (rs,) = find(docs, "RayService")
    return rs


def serve_config(docs: list[dict]) -> dict:
    return yaml.safe_load(rayservice(docs)["spec"]["serveConfigV2"])


def pod_specs(docs: list[dict]):
    """Every pod template: RayService/RayJob groups, StatefulSets, Pods."""
    yield from ray_pod_specs(docs)
    for d in docs:
        if d["kind"] in ("StatefulSet", "Deployment"):
            yield d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d["spec"]


def containers(docs: list[dict]):
    for spec in pod_specs(docs):
        yield from spec.get("initContainers", [])
        yield from spec["containers"]


def test_value_sets_exist():
    expected = {
        "default-values.yaml",
        "external-milvus-values.yaml",
        "gpu-values.yaml",
        "monitoring-values.yaml",
    }
    assert expected <= set(VALUE_SETS)


def test_chart_files_are_copies_of_deploy_files():
    pairs = {
        "serve.yaml": DEPLOY / "serve.yaml",
        "lorag-dashboard.json": DEPLOY / "grafana" / "lorag-dashboard.json",
        "lorag-rules.yaml": DEPLOY / "prometheus" / "lorag-rules.yaml",
    }
    for copy, source in pairs.items():
        assert (CHART / "files" / copy).read_bytes() == source.read_bytes(), f"run make chart-sync ({copy})"


@pytest.mark.parametrize("values", VALUE_SETS)
def test_serve_config_has_every_application_with_autoscaling(values):
    cfg = serve_config(ci(values))
    assert [a["name"] for a in cfg["applications"]] == [spec.name for spec in APPS]
    assert cfg["grpc_options"]["grpc_servicer_functions"] == grpc_servicer_functions()
    for spec, app in zip(APPS, cfg["applications"], strict=True):
        assert app["import_path"] == spec.import_path
        assert app["route_prefix"] == spec.route_prefix
        (deployment,) = app["deployments"]
        scaling = deployment["autoscaling_config"]
        assert 1 <= scaling["min_replicas"] <= scaling["max_replicas"], spec.name
        assert deployment["ray_actor_options"]["num_cpus"] > 0


@pytest.mark.parametrize("values", VALUE_SETS)
def test_grpc_proxy_gets_lorag_answers_from_the_servicer_functions(values):
    """KubeRay starts Serve through the dashboard's REST API: no job runtime_env (so no
    ``worker_process_setup_hook``) reaches the controller or its gRPC proxies. What lorag needs in
    the proxy (bad request bytes answered INVALID_ARGUMENT, a dead replica UNAVAILABLE without
    Ray's internals) comes with the servicer functions the serveConfigV2 names, which the proxy
    imports and calls itself (tests/e2e/test_kuberay_e2e.py runs this config that way)."""
    from lorag import proxy

    functions = serve_config(ci(values))["grpc_options"]["grpc_servicer_functions"]
    assert functions and all(f.startswith("lorag.proxy.add_") for f in functions), functions
    assert [import_object(f) for f in functions] == list(proxy.FOR_PROXY.values())


def test_default_serve_config_is_deploy_serve_yaml_and_valid_for_ray():
    from ray.serve.schema import ServeDeploySchema

    cfg = serve_config(rendered())
    assert cfg == yaml.safe_load((DEPLOY / "serve.yaml").read_text())
    schema = ServeDeploySchema.model_validate(cfg)
    assert schema.grpc_options.port == 9000


def test_application_override_changes_that_application_only():
    base = {a["name"]: a for a in serve_config(rendered())["applications"]}
    docs = rendered(
        "--set", "serve.applications.generation.rayActorOptions.num_gpus=1",
        "--set", "serve.applications.generation.autoscaling.max_replicas=7",
        "--set", "serve.applications.generation.env.LORAG_GENERATION_MAX_BATCH_SIZE=32",
    )  # fmt: skip
    apps = {a["name"]: a for a in serve_config(docs)["applications"]}
    gen = apps["generation"]["deployments"][0]
    assert gen["ray_actor_options"] == {"num_cpus": 2, "num_gpus": 1}
    assert gen["autoscaling_config"]["max_replicas"] == 7
    base_scaling = base["generation"]["deployments"][0]["autoscaling_config"]
    assert gen["autoscaling_config"]["min_replicas"] == base_scaling["min_replicas"]
    assert apps["generation"]["runtime_env"] == {"env_vars": {"LORAG_GENERATION_MAX_BATCH_SIZE": "32"}}
    others = [name for name in apps if name != "generation"]
    assert [apps[name] for name in others] == [base[name] for name in others]


@pytest.mark.parametrize(
    ("setting", "mentions"),
    [
        ("serve.applications.embeding.autoscaling.max_replicas=3", "embeding"),  # unknown application
        ("serve.applications.rag.autoscaling.max_replica=3", "max_replica"),  # unknown autoscaling key
        ("monitoring.enabeld=true", "enabeld"),  # typo in a section
        ("ray.workers.maxReplicas=-1", "maxReplicas"),  # out of range
        ("service.type=Loadbalancer", "type"),  # not one of the allowed values
    ],
)
def test_schema_rejects_typos_and_bad_values(setting, mentions):
    proc = helm_template("--set", setting)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert mentions in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "serve.applications.rag.autoscaling.min_replicas=9"], "min_replicas 9 > max_replicas 8"),
        (["--set", "externalMilvus.uri=http://milvus:19530"], "choose the subchart or an external Milvus"),
        (["--set", "milvus.enabled=false"], "milvus.enabled=true (bundled standalone) or externalMilvus.uri"),
        (["--set", "gateway.enabled=true"], "gateway.parentRefs"),
    ],
)
def test_contradictory_values_fail_with_a_clear_message(args, message):
    proc = helm_template(*args)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_a_wrong_rayservice_field_fails_crd_validation(tmp_path):
    proc = helm_template()
    assert proc.returncode == 0
    good = tmp_path / "good.yaml"
    good.write_text(proc.stdout)
    bad = tmp_path / "bad.yaml"
    bad.write_text(proc.stdout.replace("workerGroupSpecs:", "workerGroupSpec:", 1))
    validate = [str(TOOLS_PYTHON), str(TOOLKIT / "crd-validate.py"), "--schemas", str(TOOLKIT / "schemas")]
    ok = subprocess.run([*validate, str(good)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    failed = subprocess.run([*validate, str(bad)], capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0
    hint = 'unknown field "workerGroupSpec" (did you mean "workerGroupSpecs"?)'
    assert hint in failed.stdout + failed.stderr


@pytest.mark.parametrize("values", VALUE_SETS)
def test_network_policy_exposes_only_the_grpc_port(values):
    docs = ci(values)
    policies = {p["metadata"]["name"]: p for p in find(docs, "NetworkPolicy")}
    rs_name = rayservice(docs)["metadata"]["name"]
    ray = policies[rs_name]["spec"]
    assert ray["policyTypes"] == ["Ingress", "Egress"]
    assert ray["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "lorag"
    release = {"app.kubernetes.io/instance": "lorag"}
    for rule in ray["ingress"]:
        peers = rule.get("from")
        if peers == [{"podSelector": {"matchLabels": release}}]:
            continue  # within the release: Ray's own dynamic ports
        ports = {p["port"] for p in rule["ports"]}
        if peers is None:  # open to anyone: the gRPC port (and metrics when no scraper peers are set)
            assert ports <= {"grpc", "metrics"}, rule
        else:
            assert ports <= {"grpc", "metrics", 8265, 52365, 8000}, rule
    assert any(rule.get("ports") == [{"port": "grpc", "protocol": "TCP"}] for rule in ray["ingress"])
    egress_ports = {p["port"] for rule in ray["egress"] for p in rule.get("ports", [])}
    assert {53, 5432} <= egress_ports
    assert egress_ports <= {53, 5432, 443, 6443, 9000, 19530}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_no_secret_in_clear_text(values):
    docs = ci(values)
    for secret in find(docs, "Secret"):
        assert "stringData" not in secret
        for value in secret["data"].values():
            plain = base64.b64decode(value).decode()
            others = [d for d in docs if d is not secret]
            assert plain not in yaml.safe_dump_all(others), secret["metadata"]["name"]
    for container in containers(docs):
        for env in container.get("env", []):
            if SECRET_ENV.search(env["name"]):
                assert "secretKeyRef" in env.get("valueFrom", {}), (container["name"], env["name"])
    cfg = serve_config(docs)
    for app in cfg["applications"]:
        for name in app.get("runtime_env", {}).get("env_vars", {}):
            assert not SECRET_ENV.search(name), name


def test_bootstrap_key_generated_once_or_taken_from_an_existing_secret():
    docs = rendered()
    (secret,) = [s for s in find(docs, "Secret") if s["metadata"]["name"] == "lorag-bootstrap"]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    assert 20 <= len(key) <= 256 and key.isprintable()
    assert key not in (CHART / "values.yaml").read_text()
    # Random, not a default: each render without a cluster draws a new key (in a cluster `lookup`
    # returns the existing Secret, so upgrades keep it).
    (again,) = find(render(), "Secret", "lorag-bootstrap")
    assert again["data"]["api-key"] != secret["data"]["api-key"]

    docs = ci("external-milvus-values.yaml")
    assert not find(docs, "Secret", "lorag-bootstrap")
    head = rayservice(docs)["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    (init,) = [c for c in head["initContainers"] if c["name"] == "bootstrap"]
    (env,) = [e for e in init["env"] if e["name"] == "LORAG_BOOTSTRAP_API_KEY"]
    assert env["valueFrom"]["secretKeyRef"]["name"] == "lorag-operator-key"


def test_monitoring_objects_only_when_enabled():
    for values in VALUE_SETS:
        docs = ci(values)
        kinds = {d["kind"] for d in docs}
        dashboards = [c for c in find(docs, "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]
        if values == "monitoring-values.yaml":
            assert {"ServiceMonitor", "PrometheusRule"} <= kinds
            (dashboard,) = dashboards
            assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
            assert json.loads(dashboard["data"]["lorag-dashboard.json"]) == json.loads(
                (DEPLOY / "grafana" / "lorag-dashboard.json").read_text()
            )
            (rule,) = find(docs, "PrometheusRule")
            assert rule["spec"] == yaml.safe_load((DEPLOY / "prometheus" / "lorag-rules.yaml").read_text())
            (monitor,) = find(docs, "ServiceMonitor")
            assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
            (metrics,) = [s for s in find(docs, "Service") if s["metadata"]["name"].endswith("-metrics")]
            assert monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
            assert monitor["spec"]["endpoints"][0]["port"] == metrics["spec"]["ports"][0]["name"]
            # Ray exports lorag's series as ray_lorag_*; the scrape renames them for the rules
            (rename,) = monitor["spec"]["endpoints"][0]["metricRelabelings"]
            assert rename["regex"] == "ray_(lorag_.*)" and rename["replacement"] == "$1"
        else:
            assert not {"ServiceMonitor", "PrometheusRule"} & kinds, values
            assert not dashboards, values


def test_grpc_service_targets_the_serve_proxies():
    docs = rendered()
    (svc,) = [s for s in find(docs, "Service") if s["metadata"]["name"] == "lorag"]
    assert svc["spec"]["ports"] == [
        {"name": "grpc", "port": 9000, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}
    ]
    assert svc["spec"]["selector"]["ray.io/serve"] == "true"
    cluster = rayservice(docs)["spec"]["rayClusterConfig"]
    for spec in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        labels = spec["template"]["metadata"]["labels"]
        own = {k: v for k, v in svc["spec"]["selector"].items() if k != "ray.io/serve"}
        assert own.items() <= labels.items()
        (container,) = spec["template"]["spec"]["containers"]
        assert {"name": "grpc", "containerPort": 9000} in container["ports"]
        assert container["readinessProbe"] and container["livenessProbe"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_milvus_subchart_or_external_milvus():
    docs = rendered()
    (sts,) = find(docs, "StatefulSet")
    assert sts["metadata"]["name"] == "lorag-milvus"
    assert find(docs, "Service", "lorag-milvus")
    head = rayservice(docs)["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    env = {e["name"]: e for e in head["containers"][0]["env"]}
    assert env["LORAG_RETRIEVAL_MILVUS_URI"]["value"] == "http://lorag-milvus.lorag.svc:19530"
    token = env["LORAG_RETRIEVAL_MILVUS_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "lorag-milvus-auth", "key": "token"}

    docs = ci("external-milvus-values.yaml")
    assert not find(docs, "StatefulSet")
    (group,) = rayservice(docs)["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    worker = group["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in worker["env"]}
    assert env["LORAG_RETRIEVAL_MILVUS_URI"]["value"] == "http://milvus.milvus.svc:19530"
    assert env["LORAG_RETRIEVAL_MILVUS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "lorag-milvus-token"
    assert env["LORAG_ADAPTERS_BLOB_OPTIONS"]["value"] == '{"endpoint_url":"http://minio.minio.svc:9000"}'


def test_gpu_values_add_a_gpu_group_and_a_training_job():
    docs = ci("gpu-values.yaml")
    groups = {g["groupName"]: g for g in rayservice(docs)["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    (gpu,) = groups["gpu"]["template"]["spec"]["containers"]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    apps = {a["name"]: a for a in serve_config(docs)["applications"]}
    assert apps["generation"]["deployments"][0]["ray_actor_options"]["num_gpus"] == 1
    (job,) = find(docs, "RayJob")
    assert job["spec"]["entrypoint"] == "lorag train '--tenant' 'acme' '--adapter' 'support'"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    (worker,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {p["metadata"]["name"] for p in find(docs, "PodDisruptionBudget")} == {
        "lorag-cpu-workers", "lorag-gpu-workers"
    }  # fmt: skip


def test_helm_test_pod_checks_health_and_one_authenticated_call():
    docs = rendered()
    (pod,) = find(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    script = container["command"][-1]
    assert "/ray.serve.RayServeAPIService/Healthz" in script  # needs no `application` metadata
    assert "lorag --timeout 20 health" in script  # grpc.health.v1 per application, with metadata
    assert "admin whoami" in script and "ROLE_OPERATOR" in script
    assert not [e for e in container["env"] if "valueFrom" in e]  # the key comes as a file
    (volume,) = [v for v in pod["spec"]["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "lorag-bootstrap"
    assert volume["secret"]["items"] == [{"key": "api-key", "path": "bootstrap-api-key"}]
