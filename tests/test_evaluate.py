import csv
import json

import numpy as np
import pytest
import torch
from gcbench import digits_metric, features, metrics
from gcbench import evaluate as evaluate_module
from gcbench.assets import MissingAssetError
from gcbench.evaluate import EvalSpec, evaluate, evaluate_curve
from gcbench.recipes import resolve
from gcbench.train import train

PROVENANCE = {"implementation", "version", "reference_split", "extractor", "extractor_sha256"}


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("metric-cache")


def test_frechet_distance_matches_the_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 2, 16), rng.uniform(0.5, 2, 16)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    # Diagonal covariances commute: tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt a - sqrt b)^2.
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(
        closed, rel=1e-6
    )
    # A general 2x2 pair: clean-fid's sqrtm against the exact 2x2 formula.
    x, y = rng.normal(size=(400, 2)) @ [[1, 0.5], [0, 1]], rng.normal(size=(300, 2)) * [2, 0.3]
    m1, m2 = metrics.gaussian_moments(x), metrics.gaussian_moments(y)
    assert metrics.frechet_distance(*m1, *m2) == pytest.approx(metrics.frechet_2d(x, y), rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    feats = np.random.default_rng(1).normal(size=(300, 32))
    assert metrics.frechet_distance(
        *metrics.gaussian_moments(feats), *metrics.gaussian_moments(feats)
    ) == pytest.approx(0, abs=1e-6)


def test_clean_fid_and_torch_fidelity_agree_on_the_same_features():
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    rng = np.random.default_rng(2)
    fa, fb = rng.normal(size=(500, 24)), rng.normal(size=(400, 24)) * 1.3 + 0.2
    (mu1, s1), (mu2, s2) = metrics.gaussian_moments(fa), metrics.gaussian_moments(fb)
    ours = metrics.frechet_distance(mu1, s1, mu2, s2)
    theirs = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, False)
    assert ours == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)


def test_toy_metrics_separate_equal_and_shifted_sets():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    assert metrics.sliced_wasserstein(a, b) < 0.1 < metrics.sliced_wasserstein(a, b + [1, 0])
    assert metrics.frechet_2d(a, b + [1, 0]) == pytest.approx(1.0, abs=0.1)


def test_offline_inception_computes_fid_end_to_end(tmp_path, cache):
    rng = np.random.default_rng(4)
    data = tmp_path / "data" / "cifar10"
    data.mkdir(parents=True)
    np.save(data / "train.npy", rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8))
    c = resolve(
        "cifar10-gc",
        [
            "model_channels=8",
            "channel_mult=1,2",
            "num_blocks=1",
            "batch_size=4",
            "total_steps=2",
            f"data_dir={data.parent}",
            "device=cpu",
        ],
    )
    train(c, tmp_path / "run", progress=False)
    spec = EvalSpec(
        n=6,
        modes=("clean",),
        extractor="offline",
        cache=cache,
        device="cpu",
        batch_size=3,
        workers=2,
    )
    record = evaluate(tmp_path / "run", spec=spec)
    fid = next(m for m in record["metrics"] if m["metric"] == "fid")
    assert np.isfinite(fid["value"]) and fid["value"] > 0
    assert "OFFLINE" in fid["extractor"] and fid["mode"] == "clean"
    assert {m["metric"] for m in record["metrics"]} >= {"fid", "kid", "precision", "recall"}
    pr = next(m for m in record["metrics"] if m["metric"] == "precision")
    assert pr["reference_subset"] | {"rule": ""} == {"size": 12, "of": 12, "seed": 0, "rule": ""}
    assert list(cache.glob("reference/cifar10-train-clean-*.moments.npz"))  # cached once
    # The same images against themselves: FID 0 through the whole pipeline.
    extractor = features.offline_inception("cpu", workers=1)
    f = extractor(np.load(data / "train.npy")[:6])
    assert metrics.frechet_distance(
        *metrics.gaussian_moments(f), *metrics.gaussian_moments(f)
    ) == pytest.approx(0, abs=1e-3)


def test_missing_asset_fails_before_sampling(tmp_path):
    c = resolve(
        "cifar10-ic",
        ["model_channels=8", "channel_mult=1,2", "num_blocks=1", "total_steps=1", "device=cpu"],
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(c.to_dict()))
    with pytest.raises(MissingAssetError) as err:
        evaluate(run, spec=EvalSpec(cache=tmp_path / "empty-cache"))
    message = str(err.value)
    assert "inception-2015-12-05.pt is missing" in message
    assert "https://nvlabs-fi-cdn.nvidia.com" in message
    assert "gcbench assets fetch --cache-dir" in message
    assert not (run / "eval").exists()


def test_digits_classifier_is_accurate_and_deterministic(cache):
    model, _, acc = digits_metric.classifier(cache)
    assert acc >= 0.95
    assert digits_metric.accuracy(model, "test") == acc


def test_fd_digits_of_real_held_out_digits_is_far_below_noise(cache):
    model, weights, _ = digits_metric.classifier(cache)
    reference = digits_metric.reference_images("train")
    held_out = digits_metric.reference_images("test")
    noise = np.random.default_rng(5).integers(0, 256, size=held_out.shape, dtype=np.uint8)
    real, fake = (digits_metric.fd_digits(x, reference, model, "cpu") for x in (held_out, noise))
    assert real * 10 < fake, (real, fake)
    kid_real = digits_metric.kid_digits(held_out, reference, weights, "cpu")["kid"]
    kid_noise = digits_metric.kid_digits(noise, reference, weights, "cpu")["kid"]
    assert kid_real * 10 < kid_noise


def test_eval_json_holds_every_provenance_field(tmp_path, cache, tiny_digits):
    train(tiny_digits("gc", "total_steps=20", "snapshot_every=10"), tmp_path, progress=False)
    spec = EvalSpec(n=200, steps=2, weights="online", seed=7, cache=cache, device="cpu")
    record = evaluate(tmp_path, spec=spec)
    written = json.loads(
        next((tmp_path / "eval").glob("*2step-online-n200-seed7.json")).read_text()
    )
    assert written == json.loads(json.dumps(record))
    assert written["sampling"] | {} == {
        "n": 200,
        "steps": 2,
        "weights": "online",
        "seed": 7,
        "resamplings": 1,
        "quantisation": written["sampling"]["quantisation"],
    }
    assert "clipped" in written["sampling"]["quantisation"]
    assert written["snapshot_step"] == 20
    for m in written["metrics"]:
        assert PROVENANCE <= m.keys(), m
        assert m["metric"] in ("fd_digits", "kid_digits") and m["value"] is not None
    assert {"git_commit", "versions", "host"} <= written["provenance"].keys()
    curve = evaluate_curve(tmp_path, EvalSpec(n=100, cache=cache, device="cpu"))
    rows = list(csv.DictReader(curve.open()))
    assert sorted({int(r["step"]) for r in rows}) == [10, 20]
    assert all(r["label"].endswith("@ 100 samples") for r in rows)


def test_resamplings_record_each_value_in_fp32(tmp_path, cache, tiny_digits, monkeypatch):
    train(tiny_digits("gc", "total_steps=10"), tmp_path, progress=False)
    seen = []

    def spy(wrapped):
        def call(*args, **kwargs):
            tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
            seen.append((wrapped.__name__, kwargs.get("seed"), tf32))
            return wrapped(*args, **kwargs)

        return call

    monkeypatch.setattr(evaluate_module, "sample", spy(evaluate_module.sample))
    monkeypatch.setattr(digits_metric, "fd_digits", spy(digits_metric.fd_digits))
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)  # cuDNN's default
    spec = EvalSpec(n=64, seed=4, resamplings=3, cache=cache, device="cpu")
    record = evaluate(tmp_path, spec=spec)
    assert [s for name, s, _ in seen if name == "sample"] == [4, 5, 6]
    assert [name for name, *_ in seen].count("fd_digits") == 3
    assert all(tf32 == (False, False) for *_, tf32 in seen)  # sampling and features in fp32
    assert record["precision"]["tf32_cudnn"] is False and torch.backends.cudnn.allow_tf32
    fd, kid = (
        next(m for m in record["metrics"] if m["metric"] == k) for k in ("fd_digits", "kid_digits")
    )
    r = fd["resamplings"]
    assert r["seeds"] == [4, 5, 6] and len(set(r["values"])) == 3
    assert fd["value"] == pytest.approx(np.mean(r["values"]))
    assert r["std"] == pytest.approx(np.std(r["values"], ddof=1)) and "resamplings" not in kid
    assert (tmp_path / "eval" / "step-0000010-1step-ema-n64-seed4-r3.json").exists()


def test_toy_transport_cost_per_sigma(tmp_path):
    c = resolve("toy2d-gc", ["total_steps=50", "device=cpu"])
    train(c, tmp_path, progress=False)
    record = evaluate(tmp_path, spec=EvalSpec(n=500, device="cpu"))
    names = {m["metric"] for m in record["metrics"]}
    assert names == {"frechet_2d", "sliced_wasserstein"}
    by_sigma = {}
    for row in record["transport_cost"]:
        by_sigma.setdefault(row["sigma"], {})[row["coupling"]] = row["transport_cost"]
    assert len(by_sigma) == 12
    for costs in by_sigma.values():  # batch OT minimises exactly this cost
        assert costs["ot"] <= costs["ic"] + 1e-6
    assert torch.isfinite(
        torch.tensor([r["transport_cost"] for r in record["transport_cost"]])
    ).all()


def test_evaluation_does_not_import_the_training_loop():
    import subprocess
    import sys

    code = "import sys, gcbench.evaluate; print('gcbench.train' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
