"""cluster/aws.yaml: Ray's own launcher validation (schema + defaults, no cloud calls) and
the project's rules (pinned image, explicit resources, GPU types scale from zero on spot)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AWS_YAML = REPO / "cluster" / "aws.yaml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(AWS_YAML.read_text())


@pytest.fixture(scope="module")
def prepared(raw) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = prepare_config(copy.deepcopy(raw))  # fills AWS defaults; no AWS calls
    validate_config(cfg)  # Ray's ray-schema.json + its cross-field checks
    return cfg


def _ray_version() -> str:
    import ray

    return ray.__version__


def test_ray_validation_accepts_the_launcher_config(prepared):
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_ray_validation_rejects_a_broken_copy(raw):
    """The validation used above is not vacuous: a typo'd key or a bad type is caught."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    bad = copy.deepcopy(raw)
    bad["available_node_types"]["gpu_g5"]["min_worker"] = 0  # typo
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))
    bad = copy.deepcopy(raw)
    bad["available_node_types"]["gpu_g5"]["resources"]["GPU"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


def test_images_are_pinned_to_the_installed_ray(raw):
    ver = _ray_version()
    images = [raw["docker"][k] for k in ("image", "head_image", "worker_image") if k in raw["docker"]]
    images += [t["docker"]["worker_image"] for t in raw["available_node_types"].values()
               if "docker" in t and "worker_image" in t["docker"]]
    assert images
    for image in images:
        assert re.fullmatch(rf"rayproject/ray:{re.escape(ver)}-py311-(gpu|cpu)", image), image
    assert raw["docker"]["image"] == f"rayproject/ray:{ver}-py311-gpu"


def _is_gpu_instance(node_type: dict) -> bool:
    return node_type["node_config"]["InstanceType"].split(".")[0].rstrip("0123456789de") in ("g", "p")


def test_node_types_declare_resources_and_gpu_types_scale_from_zero_on_spot(raw):
    types = raw["available_node_types"]
    gpu_types = {n: t for n, t in types.items() if _is_gpu_instance(t)}
    families = {t["node_config"]["InstanceType"].split(".")[0] for t in gpu_types.values()}
    assert "g5" in families and families & {"p4d", "p5"}, families
    for name, t in types.items():
        assert t["resources"].get("CPU", 0) >= 1, f"{name}: declare CPU explicitly"
        if name in gpu_types:
            assert t["resources"].get("GPU", 0) >= 1, f"{name}: a GPU instance must declare GPU"
            assert t["min_workers"] == 0, f"{name}: GPU types scale from zero"
            assert t["max_workers"] >= 1
            assert t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
            assert "-gpu" in t.get("docker", {}).get("worker_image", raw["docker"]["image"])
        else:
            assert "GPU" not in t["resources"], f"{name}: a CPU type must not advertise GPUs"
    head = types[raw["head_node_type"]]
    assert "InstanceMarketOptions" not in head["node_config"], "the head must not be spot"
    cpu_workers = [n for n, t in types.items() if n != raw["head_node_type"] and n not in gpu_types]
    assert cpu_workers and all(types[n]["max_workers"] > 0 and types[n]["min_workers"] == 0 for n in cpu_workers)
    assert 0 < raw["max_workers"] <= sum(t.get("max_workers", 0) for t in types.values())  # a cost cap


def test_file_mounts_exist_in_the_repo(raw):
    for remote, local in raw.get("file_mounts", {}).items():
        assert (REPO / local).exists(), f"file_mounts {remote}: {local} is not in the repo"
