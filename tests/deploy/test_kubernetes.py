"""The Kubernetes manifests (docker/kubernetes/: common/ + cpu/ or gpu/, plain YAML applied as they are) against the
Kubernetes OpenAPI schemas shipped by kubernetes-validate (offline, strict: unknown fields fail), at the oldest
Kubernetes release the README names and at the newest the package has; then what the schemas cannot see: the
selectors match the pod labels, the probes and the Service reach the server's port and routes, the HPA scales the
Deployment on a metric the server exports and the Prometheus adapter's rules serve, the grace period covers preStop
plus the server's shutdown timeout, every POSE_* variable is a valid setting, the volumes and the Secret line up."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from tests.conftest import REPO_ROOT

kv = pytest.importorskip("kubernetes_validate", reason="the dev extra installs kubernetes-validate")

KUBE = REPO_ROOT / "docker" / "kubernetes"
VARIANTS = ("cpu", "gpu")
#: The oldest Kubernetes release the manifests claim (README: Kubernetes): autoscaling/v2, policy/v1, batch/v1
#: ttlSecondsAfterFinished are GA long before it.
OLDEST = "1.27.0"
#: The server exits at most about this long after its shutdown timeout (service/server.py: SHUTDOWN_MARGIN_S, plus
#: the process's exit).
EXIT_MARGIN_S = 1
README = (REPO_ROOT / "README.md").read_text()


def _docs(path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[tuple[str, dict]]:
    out = []
    for folder in ("common", *VARIANTS):
        for path in sorted((KUBE / folder).glob("*.yaml")):
            out += [(f"{folder}/{path.name}", d) for d in _docs(path)]
    return out


def _variant(name: str) -> dict[str, dict]:
    """kind -> manifest of what `kubectl apply -f common/ -f <name>/` creates."""
    found: dict[str, dict] = {}
    for where, doc in _manifests():
        if where.split("/")[0] in ("common", name):
            assert doc["kind"] not in found, f"two {doc['kind']} in the {name} variant"
            found[doc["kind"]] = doc
    return found


def _container(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_there_are_manifests_for_both_variants():
    names = {w for w, _ in _manifests()}
    assert {"cpu/deployment.yaml", "gpu/deployment.yaml", "common/service.yaml", "common/hpa.yaml",
            "common/pdb.yaml", "common/models-pvc.yaml", "common/models-job.yaml"} <= names  # fmt: skip


@pytest.mark.parametrize("version", [OLDEST, kv.latest_version() + ".0"])
@pytest.mark.parametrize("where,doc", _manifests(), ids=lambda x: x if isinstance(x, str) else x.get("kind", ""))
def test_every_manifest_validates_against_the_kubernetes_schemas(where, doc, version):
    kv.validate(doc, version, strict=True)  # raises ValidationError with the failing path


def test_the_validator_rejects_what_it_should():
    """The check above can fail: a misspelt field and a wrong type are refused."""
    dep = _variant("cpu")["Deployment"]
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, OLDEST, strict=True)
    bad = yaml.safe_load(yaml.safe_dump(dep))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, OLDEST, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_selectors_match_the_pod_labels(variant):
    m = _variant(variant)
    labels = m["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for selector in (
        m["Deployment"]["spec"]["selector"]["matchLabels"],
        m["Service"]["spec"]["selector"],
        m["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector and selector.items() <= labels.items()
    # the Job's pods are not the server's
    job_labels = m["Job"]["spec"]["template"]["metadata"]["labels"]
    assert not m["Service"]["spec"]["selector"].items() <= job_labels.items()
    hpa = m["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": m["Deployment"]["metadata"]["name"]}  # fmt: skip
    assert m["PodDisruptionBudget"]["spec"]["minAvailable"] < hpa["minReplicas"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_service_and_scrape_reach_the_server_port_and_routes(variant):
    from service.routes import router

    m = _variant(variant)
    pod = m["Deployment"]["spec"]["template"]
    container = _container(m["Deployment"])
    env = _env(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(env["POSE_PORT"])}
    assert env["POSE_HOST"] == "0.0.0.0"
    assert m["Service"]["spec"]["ports"][0]["targetPort"] in ports
    routes = {r.path for r in router.routes}
    probes = {k: container[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz" and probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["path"] in routes and probe["port"] in ports
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # model loading and warm-up
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/path"] in routes and int(notes["prometheus.io/port"]) == ports["http"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_grace_period_covers_pre_stop_and_the_shutdown_timeout(variant):
    from core.settings import Settings

    m = _variant(variant)
    spec = m["Deployment"]["spec"]["template"]["spec"]
    container = _container(m["Deployment"])
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    shutdown = int(_env(container).get("POSE_SHUTDOWN_TIMEOUT_S", Settings.model_fields["shutdown_timeout_s"].default))
    assert shutdown >= Settings.model_fields["shutdown_timeout_s"].default
    assert spec["terminationGracePeriodSeconds"] >= int(sleep[1]) + shutdown + EXIT_MARGIN_S


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pose_variable_is_a_valid_setting(variant, monkeypatch):
    from core.settings import Settings

    env = _env(_container(_variant(variant)["Deployment"]))
    fields = {f"POSE_{name.upper()}" for name in Settings.model_fields}
    assert {k for k in env if k.startswith("POSE_")} <= fields
    for key in [k for k in os.environ if k.startswith("POSE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # raises on a value the server would refuse
    assert settings.prepare_defaults is False and str(settings.cache_dir) == "/models"


@pytest.mark.parametrize("variant", VARIANTS)
def test_gpu_only_in_the_gpu_variant_and_resources_everywhere(variant):
    container = _container(_variant(variant)["Deployment"])
    res = container["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]
    providers = _env(container)["POSE_PROVIDERS"]
    if variant == "gpu":
        assert res["limits"]["nvidia.com/gpu"] == 1 and "CUDAExecutionProvider" in providers
    else:
        assert "nvidia.com/gpu" not in {**res["requests"], **res["limits"]}
        assert providers == '["CPUExecutionProvider"]'
        assert _env(container)["POSE_INTRA_OP_THREADS"] == str(res["requests"]["cpu"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_models_volume_secret_and_images_line_up(variant):
    m = _variant(variant)
    pvc = m["PersistentVolumeClaim"]["metadata"]["name"]
    server, job = m["Deployment"]["spec"]["template"]["spec"], m["Job"]["spec"]["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in server["volumes"] + job["volumes"]
              if "persistentVolumeClaim" in v}  # fmt: skip
    assert set(claims.values()) == {pvc}
    assert "ReadWriteMany" in m["PersistentVolumeClaim"]["spec"]["accessModes"]
    container, export = _container(m["Deployment"]), job["containers"][0]
    mounts = {v["name"]: v for v in container["volumeMounts"]}
    env = _env(container)
    assert mounts["models"]["mountPath"] == env["POSE_CACHE_DIR"] and mounts["models"]["readOnly"]
    assert export["args"] == ["defaults", "--cache-dir", export["volumeMounts"][0]["mountPath"]]
    # the API keys: the Secret the README creates, its `keys` file at POSE_API_KEYS_FILE
    (secret,) = [v["secret"]["secretName"] for v in server["volumes"] if "secret" in v]
    assert re.search(rf"kubectl create secret generic {secret} --from-file=keys=", README)
    assert env["POSE_API_KEYS_FILE"] == mounts["api-keys"]["mountPath"] + "/keys"
    # images: poseserve:<a Dockerfile stage>; the export stage's entry point is pose-export; the images' user
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    for image in (container["image"], export["image"]):
        target = image.split(":")[1]
        assert re.search(rf"^FROM \S+ AS {target}$", dockerfile, re.M), image
    assert re.search(r'AS export\n(?:.*\n)*?ENTRYPOINT \["pose-export"\]', dockerfile)
    uid = re.search(r"--uid (\d+)", (REPO_ROOT / "docker" / "setup-base.sh").read_text()).group(1)
    for spec in (server, job):
        assert spec["securityContext"]["runAsUser"] == int(uid)


def test_the_hpa_metric_is_exported_by_the_server_and_served_by_the_adapter():
    from core.settings import Settings
    from service.state import ServiceState

    exported = {m.name for m in ServiceState(Settings()).registry.collect()}
    hpa = _variant("cpu")["HorizontalPodAutoscaler"]["spec"]
    names = [x["pods"]["metric"]["name"] for x in hpa["metrics"] if x["type"] == "Pods"]
    assert names and set(names) <= {"pose_inflight_requests", "pose_queued_crops"}
    rules = yaml.safe_load((KUBE / "prometheus-adapter" / "values.yaml").read_text())["rules"]["custom"]
    served = {}
    for rule in rules:
        series = re.match(r"(\w+)\{", rule["seriesQuery"]).group(1)
        assert series in exported, series  # a gauge of GET /metrics
        assert re.fullmatch(rule["name"]["matches"], series)
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
        served[rule["name"]["as"]] = series
    assert set(names) <= set(served)
