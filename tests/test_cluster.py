"""Running on a Ray cluster: ``cluster.yaml`` passes the checks ``ray up`` makes, and a run
on a simulated two-node cluster (``ray.cluster_utils.Cluster`` on this machine) places the
env actors on the node that has the ``env_node`` resource and the learner on the one that
has ``learner_node``, through the real entry point with ``ray.address``. About a minute."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 600


def cluster_config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_validates_against_rays_schema() -> None:
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = cluster_config()
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)  # the file as written: no unknown or mistyped field
    validate_config(prepare_config(config))  # what `ray up` checks after filling defaults


def test_cluster_yaml_places_learner_on_gpus_and_env_actors_on_cpu_nodes() -> None:
    types = cluster_config()["available_node_types"]
    head = types[cluster_config()["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "no work on the head"
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    env = [t for t in types.values() if t["resources"].get("env_node", 0) >= 1]
    assert gpu and all("env_node" not in t["resources"] for t in gpu)
    assert env and all(t["resources"]["env_node"] == t["resources"]["CPU"] for t in env)
    assert any("make install" in c for c in cluster_config()["setup_commands"])


def test_a_bad_cluster_yaml_fails_the_schema() -> None:
    import jsonschema
    import ray.autoscaler

    config = cluster_config()
    config["available_node_types"]["cpu_worker"]["resources"]["env_node"] = 0.5  # must be an integer
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)


@pytest.mark.slow
def test_two_node_run_places_env_actors_on_the_env_node(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"learner_node": 1}})
    try:
        worker = cluster.add_node(num_cpus=2, resources={"env_node": 2})
        cluster.wait_for_nodes()
        run_dir = tmp_path / "two-node"
        proc = subprocess.run(
            [sys.executable, str(ROOT / "launch.py"), "+experiment=smoke", "loop.cycles=1", "loop.report=false",
             f"run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'hydra'}", f"ray.address={cluster.address}",
             "ray.num_cpus=null", "env.pool.num_actors=2", "env.pool.actor_resources={env_node: 1}",
             "ray.learner_resources={learner_node: 1}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
            env={**os.environ, "COLUMNS": "400"})
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        placed = re.search(r"placement: env actors on nodes \[([^\]]*)\]", proc.stdout)
        assert placed, proc.stdout[-3000:]
        assert re.findall(r"'(\w+)'", placed.group(1)) == [worker.node_id] * 2
        learner = re.search(r"'node_id': '(\w+)'", proc.stdout)
        assert learner and learner.group(1) == cluster.head_node.node_id
        assert worker.node_id != cluster.head_node.node_id
        assert (run_dir / "checkpoints" / "cycle-000001").is_dir(), "the run completed its cycle"
    finally:
        cluster.shutdown()
