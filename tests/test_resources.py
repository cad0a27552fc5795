"""SLURM resources per kind of job and per experiment (gc/resources.py), read from
cluster.yaml and rendered into the sbatch script submitit writes. The real cluster's view of
the same settings is tested in test_slurm.py."""

import re

import pytest
import yaml
from gcbench import resources, study
from gcbench.launch import LaunchError, make_executor

CLUSTER = {
    "partition": "gpu",
    "account": "proj",
    "max_num_timeout": 7,
    "train": {"gpus_per_node": 2, "mem_gb": 64, "timeout_min": 1440, "qos": "long"},
    "evaluate": {"gpus_per_node": 1, "mem_gb": 32, "timeout_min": 240, "constraint": "a100"},
}


@pytest.fixture
def cluster_yaml(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(CLUSTER))
    return path


def _script(executor) -> dict[str, str]:
    """The #SBATCH flags of the script submitit would submit (its own generator)."""
    text = executor._executor._make_submission_file_text("true", "uid")
    return dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", text, flags=re.M))


def test_layers_shared_then_section_then_experiment(cluster_yaml):
    train = resources.read(cluster_yaml, "train", {"timeout_min": 30})
    assert train == {
        "partition": "gpu",
        "account": "proj",
        "max_num_timeout": 7,
        "gpus_per_node": 2,
        "mem_gb": 64,
        "timeout_min": 30,
        "qos": "long",
    }
    assert resources.read(cluster_yaml, "evaluate")["constraint"] == "a100"
    assert "qos" not in resources.read(cluster_yaml, "evaluate")


def test_the_sbatch_scripts_of_two_experiments_carry_their_own_values(tmp_path, cluster_yaml):
    small = {"timeout_min": 30, "mem_gb": 8, "additional_parameters": {"exclusive": True}}
    for exp, extra, want_time in (("big", {}, "1440"), ("small", small, "30")):
        train = _script(
            make_executor("slurm", tmp_path / exp, cluster_yaml, "train", 2, "train", extra)
        )
        assert train["time"] == want_time
        assert train["mem"] == ("8GB" if extra else "64GB")
        assert train["gpus-per-node"] == "2" and train["ntasks-per-node"] == "2"
        assert train["partition"] == "gpu" and train["account"] == "proj"
        assert train["qos"] == "long" and "constraint" not in train
        assert ("exclusive" in train) == bool(extra)
        evaluate = _script(
            make_executor("slurm", tmp_path / exp, cluster_yaml, "evaluate", 1, "evaluate")
        )
        assert evaluate["time"] == "240" and evaluate["mem"] == "32GB"
        assert evaluate["gpus-per-node"] == "1" and evaluate["constraint"] == "a100"
        assert evaluate["ntasks-per-node"] == "1" and "qos" not in evaluate


def test_cpu_jobs_ask_for_no_gpu(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("gpus_per_node: 1\ntimeout_min: 60\nprepare: {gpus_per_node: 0}\n")
    flags = _script(make_executor("slurm", tmp_path, path, "prepare", 1, "prepare"))
    assert "gpus-per-node" not in flags and flags["time"] == "60"


def test_multi_node_training_has_one_task_per_gpu_on_each_node(tmp_path, cluster_yaml):
    flags = _script(
        make_executor("slurm", tmp_path, cluster_yaml, "train", 4, "train", {"nodes": 2})
    )
    assert flags["nodes"] == "2" and flags["ntasks-per-node"] == "2"


def test_slurm_jobs_are_refused_without_resources(tmp_path):
    with pytest.raises(LaunchError, match="needs --slurm-config"):
        make_executor("slurm", tmp_path, None, "train")
    bare = tmp_path / "bare.yaml"
    bare.write_text("partition: gpu\ntrain: {timeout_min: 60}\n")
    with pytest.raises(LaunchError, match="no timeout_min for evaluate jobs"):
        make_executor("slurm", tmp_path, bare, "evaluate", 1, "evaluate")
    with pytest.raises(LaunchError, match=r"unknown keys \['memory'\]"):
        make_executor("slurm", tmp_path, bare, "train", 1, "train", {"memory": 4})


def test_the_repository_defaults_give_every_kind_of_job_a_time_limit():
    from pathlib import Path

    path = Path(__file__).parent.parent / "slurm" / "cluster.yaml"
    for section in resources.SECTIONS:
        assert resources.read(path, section)["timeout_min"] >= 60


def test_preempt_signal_is_term_unless_told():
    import signal

    assert resources.preempt_signal({}) == signal.SIGTERM
    assert resources.preempt_signal({"preempt_signal": "none"}) is None
    assert resources.preempt_signal({"preempt_signal": "INT"}) == signal.SIGINT
    with pytest.raises(resources.ResourceError, match="preempt_signal=BOGUS"):
        resources.preempt_signal({"preempt_signal": "bogus"})


def test_an_experiments_slurm_block_becomes_slurm_set_flags():
    config = {"experiments": {"a": {"slurm": {"train": {"timeout_min": 30, "qos": "x y"}}}}}
    assert study.slurm_args(config, "a", "train") == (
        "--slurm-set timeout_min=30 --slurm-set 'qos=\"x y\"'"
    )
    assert study.slurm_args(config, "a", "evaluate") == ""
    assert resources.parse_overrides(["timeout_min=30", 'qos="x y"']) == {
        "timeout_min": 30,
        "qos": "x y",
    }
