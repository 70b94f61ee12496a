"""cluster/kuberay/rayjob.yaml against KubeRay's own CRD schema (../shared/kuberay-crds) and
the operator's webhook rules that the schema cannot express, plus the project's rules."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RAYJOB = REPO / "cluster" / "kuberay" / "rayjob.yaml"
CRDS = REPO.parent / "shared" / "kuberay-crds"
DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


@pytest.fixture(scope="module")
def job() -> dict:
    return yaml.safe_load(RAYJOB.read_text())


@functools.lru_cache(maxsize=None)
def _validator(kind_file: str):
    """One validator per CRD (building it checks the 1 MB schema once, not per document)."""
    import jsonschema

    schema = _schema(kind_file)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def _schema(kind_file: str) -> dict:
    path = CRDS / kind_file
    if not path.exists():
        pytest.skip(f"KubeRay CRDs not found at {CRDS} (CI has ../shared/kuberay-crds beside the repo)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 1 MB: libyaml is 5x faster
    crd = yaml.load(path.read_text(), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]


def _validate(doc: dict) -> None:
    _validator("ray.io_rayjobs.yaml").validate(doc)


def test_rayjob_matches_the_crd_schema(job):
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    _validate(job)


def test_the_crd_check_is_not_vacuous(job):
    import jsonschema

    bad = copy.deepcopy(job)
    del bad["spec"]["rayClusterSpec"]["headGroupSpec"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(bad)
    bad = copy.deepcopy(job)
    bad["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplicas"] = "many"
    with pytest.raises(jsonschema.ValidationError):
        _validate(bad)


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def _gpus(group: dict) -> int:
    return sum(int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) for c in _containers(group))


def test_webhook_rules(job):
    """The checks of KubeRay's validation.go that the schema does not carry."""
    spec = job["spec"]
    assert DNS1035.fullmatch(job["metadata"]["name"]) and len(job["metadata"]["name"]) <= 47
    assert ("rayClusterSpec" in spec) != ("clusterSelector" in spec)
    assert spec.get("ttlSecondsAfterFinished", 0) >= 0
    if spec.get("suspend"):
        assert spec.get("shutdownAfterJobFinishes")
    cluster = spec["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for g in groups:
        assert _containers(g), "every group needs a container"
        assert g["template"]["spec"].get("restartPolicy") in (None, "Never"), "autoscaler v2 needs Never/unset"
        both = set(g.get("resources", {})) & {k.replace("num-", "").upper() for k in g.get("rayStartParams", {})}
        assert not both, f"resources given twice: {both}"
    names = [g["groupName"] for g in cluster["workerGroupSpecs"]]
    assert len(set(names)) == len(names)
    for g in cluster["workerGroupSpecs"]:
        assert DNS1035.fullmatch(g["groupName"])
        assert 0 <= g["minReplicas"] <= g.get("replicas", 0) <= g["maxReplicas"]


def test_project_rules(job):
    import ray

    ver = ray.__version__
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ver
    assert cluster["enableInTreeAutoscaling"] is True
    gpu_groups = [g for g in cluster["workerGroupSpecs"] if _gpus(g) > 0]
    assert gpu_groups, "a GPU worker group is required"
    for g in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        for c in _containers(g):
            assert re.fullmatch(rf"rayproject/ray:{re.escape(ver)}-py311-(gpu|cpu)", c["image"]), c["image"]
    for g in gpu_groups:
        assert g["minReplicas"] == 0 and g["maxReplicas"] >= 1, "GPU groups scale from zero"
        for c in _containers(g):
            assert c["image"].endswith("-gpu")
            assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"]
        assert any(t["key"] == "nvidia.com/gpu" for t in g["template"]["spec"].get("tolerations", []))
    # the entrypoint's config ships with the working dir
    cfg_path = spec["entrypoint"].split("--config", 1)[1].split()[0]
    assert (REPO / cfg_path).exists()
    # the driver is pinned to the head's custom resource
    import json

    assert set(json.loads(spec["entrypointResources"])) <= set(cluster["headGroupSpec"].get("resources", {}))


def test_runtime_env_pins_the_project_requirements(job):
    """The pip list in the RayJob is requirements.txt minus ray (which the image has)."""
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    pins = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    pins = sorted(p for p in pins if p and not p.startswith("ray"))
    assert sorted(env["pip"]["packages"]) == pins
    assert env["working_dir"].startswith("s3://") and env["working_dir"].endswith(".zip")
