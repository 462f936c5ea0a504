"""cluster.yaml passes Ray's own cluster-launcher validation, offline and with no cloud credentials
(``ray-schema.json`` on the file as written; ``prepare_config`` merges the AWS defaults and
``validate_config`` checks the result and the node-type rules), and broken copies of it fail."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.conftest import REPO

CLUSTER_YAML = REPO / "cluster.yaml"
Config = dict[str, Any]


def _load() -> Config:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _validate(config: Config) -> Config:
    """The file as written against Ray's schema, then what ``ray up`` does to a config before it
    talks to the cloud: merge the provider's defaults and validate the result."""
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_rays_validation() -> None:
    prepared = _validate(_load())
    types = prepared["available_node_types"]
    head, worker = types[prepared["head_node_type"]], types["troupe.worker"]
    assert prepared["provider"]["type"] == "aws" and set(types) == {"troupe.head", "troupe.worker"}
    assert head["max_workers"] == 0 and 0 <= worker["min_workers"] <= worker["max_workers"] <= prepared["max_workers"]
    assert all(isinstance(t["resources"].get("CPU"), int) for t in types.values())


def test_cluster_yaml_installs_troupe_and_opens_the_ports() -> None:
    config = _load()
    setup = "\n".join(config["setup_commands"])
    assert f'"ray[default]=={ray.__version__}"' in setup  # the cluster runs the Ray this project runs
    assert '"$HOME/troupe[local]"' in setup and config["file_mounts"]["/home/ubuntu/troupe"] == "."
    assert "TROUPE_LAKE=" in setup
    head = " ".join(config["head_start_ray_commands"])
    assert "--head" in head and "--dashboard-port=8265" in head and "--metrics-export-port=8080" in head
    workers = " ".join(config["worker_start_ray_commands"])
    assert "--address=$RAY_HEAD_IP:6379" in workers and "--metrics-export-port=8080" in workers
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in workers
    assert "/home/ubuntu/.ray/auth_token" in config["file_mounts"]  # one token on every node


def test_every_placeholder_is_marked_fill_in() -> None:
    lines = CLUSTER_YAML.read_text().splitlines()
    placeholders = re.compile(r"ami-0123456789abcdef0|123456789012|YOUR-BUCKET")
    marked = [i for i, line in enumerate(lines) if placeholders.search(line)]
    assert len(marked) >= 5
    for i in marked:
        assert "FILL IN" in lines[i] or "FILL IN" in lines[i - 1], lines[i]


def _set(*path: str, value: Any) -> Callable[[Config], None]:
    def change(config: Config) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _drop(*path: str) -> Callable[[Config], None]:
    def change(config: Config) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


WORKER = ("available_node_types", "troupe.worker")


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (_set("max_worker", value=4), jsonschema.ValidationError, "Additional properties are not allowed"),  # a typo
        (_set("head_node_type", value="troupe.nohead"), ValueError, "must be one of `available_node_types`"),
        (_set(*WORKER, "resources", value={"CPU": "eight"}), jsonschema.ValidationError, "is not of type 'integer'"),
        (_drop(*WORKER, "node_config"), jsonschema.ValidationError, "'node_config' is a required property"),
        (_set(*WORKER, "min_workers", value=9), ValueError, "smaller than the sum of `min_workers`"),
        (_set("setup_commands", value="pip install troupe"), jsonschema.ValidationError, "is not of type 'array'"),
    ],
    ids=["typo", "unknown-head-type", "string-resource", "no-node-config", "min-above-max", "commands-not-a-list"],
)
def test_a_broken_copy_fails_validation(change: Callable[[Config], None], error: type[Exception], message: str) -> None:
    config = _load()
    change(config)
    with pytest.raises(error, match=re.escape(message)):
        _validate(config)
