"""Data-parallel training inside one job: gloo on the CPU, two ranks against one process."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from gcbench import checkpoint
from gcbench.distributed import Shard, local_batch
from gcbench.launch import TrainJob, make_executor

# Adam, not Lion: Lion's update is the sign of the gradient, so a gradient that is zero up to
# the summation order could flip a whole step; Adam's update is continuous in the gradient.
OVERRIDES = [
    "keep_state=true",  # tests compare final resume states
    "model_channels=8",
    "batch_size=16",
    "total_steps=20",
    "log_every=1",
    "snapshot_every=1000",
    "device=cpu",
    "optimizer=adam",
    "lr=1e-3",
]
# Two ranks sum the gradient in another order than one process: float32 rounding, amplified by
# 20 Adam steps. Measured: max |weight difference| 1.9e-6 (net), 2.4e-7 (EMA), loss rel 2e-8.
WEIGHT_ATOL = 1e-4
LOSS_RTOL = 1e-4


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_rows_split_the_global_batch_evenly():
    assert [Shard(r, 4).rows(16) for r in range(4)] == [slice(4 * r, 4 * r + 4) for r in range(4)]
    with pytest.raises(ValueError, match="batch_size=10 does not divide over 4 GPUs"):
        local_batch(10, 4)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "extra"),
    [
        ("digits8-gc", []),
        # ECT from random weights, without dropout (ranks draw their own masks), through stages,
        # under a wall-clock cap that does not bind but makes the ranks agree at every step.
        (
            "digits8_ect_long-gc",
            ["init=random", "dropout=0", "ect_stage_steps=5", "max_train_seconds=1000"],
        ),
    ],
)
def test_two_ranks_through_submitit_match_one_process(tmp_path, uninterrupted, recipe, extra):
    overrides = OVERRIDES + extra
    job = make_executor("local", tmp_path / "jobs", None, "train", tasks=2).submit(
        TrainJob(recipe, overrides, str(tmp_path / "ddp"), threads=1, tasks=2)
    )
    results = job.results()  # one per task: rank 0 returns the outputs, rank 1 nothing
    assert list(results[0]) == [str(tmp_path / "ddp" / "done.json")] and results[1] == {}
    one = uninterrupted(recipe, overrides, tmp_path / "one")
    two = checkpoint.load(tmp_path / "ddp" / "state.pt")
    assert two["step"] == one["step"] == 20
    assert len(two["rng"]["ranks"]) == 2 and len(one["rng"]["ranks"]) == 1
    for part in ("net", "ema"):
        assert _max_diff(two[part], one[part]) < WEIGHT_ATOL, part
    loss_two = [r["loss"] for r in checkpoint.read_metrics(tmp_path / "ddp")]
    loss_one = [r["loss"] for r in checkpoint.read_metrics(tmp_path / "one")]
    assert loss_two == pytest.approx(loss_one, rel=LOSS_RTOL)
    # Only rank 0 wrote: one provenance line, one metrics row per step.
    assert len(checkpoint.read_jsonl(tmp_path / "ddp" / "provenance.jsonl")) == 1
    assert len(loss_two) == 20
    assert checkpoint.read_jsonl(tmp_path / "ddp" / "provenance.jsonl")[0]["world_size"] == 2


RANK_SCRIPT = """
import json, sys
import torch, torch.distributed as dist
from gcbench.distributed import Shard
from gcbench.recipes import resolve
from gcbench.train import train

run_dir, stop_at, overrides = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
torch.set_num_threads(1)
dist.init_process_group("gloo")
shard = Shard(dist.get_rank(), dist.get_world_size())
# Only rank 0 asks to stop, as only rank 0 gets submitit's checkpoint call.
print(train(resolve("digits8-gc", overrides), run_dir,
            lambda step: shard.is_main and step == stop_at, progress=False, shard=shard))
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(script, run_dir, stop_at: int, overrides: list[str]) -> list[str]:
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(run_dir), str(stop_at), json.dumps(overrides)],
            env=os.environ
            | dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r), WORLD_SIZE="2"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    return [out.strip().splitlines()[-1] for out, _ in outs]


@pytest.mark.slow
def test_two_rank_run_resumes_bitwise(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    overrides = [*OVERRIDES, "dropout=0.1"]  # each rank's own dropout stream must resume too
    assert _two_ranks(script, tmp_path / "resumed", 7, overrides) == ["stopped", "stopped"]
    assert _two_ranks(script, tmp_path / "resumed", -1, overrides) == ["done", "done"]
    assert _two_ranks(script, tmp_path / "straight", -1, overrides) == ["done", "done"]
    a = checkpoint.load(tmp_path / "resumed" / "state.pt")
    b = checkpoint.load(tmp_path / "straight" / "state.pt")
    assert a["step"] == b["step"] == 20
    for part in ("net", "ema", "optimizer"):
        flat_a, flat_b = _tensors(a[part]), _tensors(b[part])
        assert len(flat_a) == len(flat_b) and all(map(torch.equal, flat_a, flat_b)), part
    events = [p["event"] for p in checkpoint.read_jsonl(tmp_path / "resumed" / "provenance.jsonl")]
    assert events == ["start", "resume"]


def _tensors(tree) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        return [t for k in sorted(tree, key=str) for t in _tensors(tree[k])]
    if isinstance(tree, list | tuple):
        return [t for v in tree for t in _tensors(v)]
    return []
