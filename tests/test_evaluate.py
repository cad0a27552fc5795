import csv
import json

import numpy as np
import pytest
import torch
from cleanfid.fid import compute_fid
from gcbench import digits_metric, features, metrics
from gcbench import evaluate as evaluate_module
from gcbench.assets import MissingAssetError, sha256
from gcbench.evaluate import EvalSpec, evaluate, evaluate_curve
from gcbench.recipes import resolve
from gcbench.sample import load_network, sample, to_uint8
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


def test_fid_of_shifted_and_scaled_copies_has_the_closed_form():
    feats = np.random.default_rng(1).normal(size=(300, 32)) @ np.diag(np.linspace(0.5, 2, 32))
    shift = np.linspace(-1, 1, 32)
    mu, sigma = metrics.gaussian_moments(feats)
    # Same covariance: only ||shift||^2 remains.
    shifted = metrics.frechet_distance(mu, sigma, *metrics.gaussian_moments(feats + shift))
    assert shifted == pytest.approx((shift**2).sum(), rel=1e-6)
    # S2 = a^2 S1: tr(S1 + a^2 S1 - 2 a S1) = (1 - a)^2 tr S1 (the matrix square root at work).
    scaled = metrics.frechet_distance(mu, sigma, *metrics.gaussian_moments(3 * feats - 2 * mu))
    assert scaled == pytest.approx(4 * np.trace(sigma), rel=1e-6)


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


def test_sliced_wasserstein_of_equal_sizes_is_the_quantile_matching_it_defines():
    # Equal sizes take a sort; the definition matches quantiles on a common grid (numpy's).
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(500, 2)), 0.5 * rng.normal(size=(500, 2)) + 0.2
    directions = np.random.default_rng(0).normal(size=(256, 2))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    qs = np.linspace(0, 1, 500)
    pa, pb = (np.quantile(x @ directions.T, qs, axis=0) for x in (a, b))
    assert metrics.sliced_wasserstein(a, b) == pytest.approx(np.sqrt(((pa - pb) ** 2).mean()))
    # Unequal sizes match on the smaller sample's grid: close to the equal-size value.
    assert abs(metrics.sliced_wasserstein(a, b[:400]) - metrics.sliced_wasserstein(a, b)) < 0.05


def test_offline_inception_computes_fid_end_to_end(tmp_path, cache, monkeypatch):
    rng = np.random.default_rng(4)
    data = tmp_path / "data" / "cifar10"
    data.mkdir(parents=True)
    np.save(data / "train.npy", rng.integers(0, 256, size=(12, 32, 32, 3), dtype=np.uint8))
    manifest = {"construction": "torchvision-train", "sha256": sha256(data / "train.npy")}
    (data / "manifest.json").write_text(json.dumps(manifest))
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
    calls = []  # what the Frechet distance (tested above against closed forms) was given
    real = metrics.frechet_distance

    def spy(*args):
        calls.append([*args, real(*args)])
        return calls[-1][-1]

    monkeypatch.setattr(metrics, "frechet_distance", spy)
    record = evaluate(tmp_path / "run", spec=spec)
    fid = next(m for m in record["metrics"] if m["metric"] == "fid")
    ((mu, sigma, ref_mu, ref_sigma, value),) = calls
    # The same samples again (per-image seeds) give its first moments ...
    net, config, _ = load_network(tmp_path / "run", device="cpu")
    samples = to_uint8(sample(net, 6, (3, 32, 32), seed=0, sigma_max=config.sigma_max))
    feats = features.offline_inception("cpu", workers=1)(samples)
    np.testing.assert_allclose(mu, feats.mean(0, dtype=np.float64), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(feats, rowvar=False), rtol=1e-3, atol=1e-6)
    # ... and the cached reference moments of this prepared array its second.
    tag = f"data{manifest['sha256'][:12]}"
    (stored,) = [
        np.load(p) for p in cache.glob(f"reference/cifar10-train-clean-*{tag}.moments.npz")
    ]
    assert np.array_equal(ref_mu, stored["mu"]) and np.array_equal(ref_sigma, stored["sigma"])
    assert fid["value"] == value
    assert "OFFLINE" in fid["extractor"] and fid["mode"] == "clean"
    assert {m["metric"] for m in record["metrics"]} >= {"fid", "kid", "precision", "recall"}
    pr = next(m for m in record["metrics"] if m["metric"] == "precision")
    for m in (fid, pr):  # how the reference array was built, in every row that uses it
        assert m["reference_construction"] == "torchvision-train"
        assert m["reference_dataset_sha256"] == manifest["sha256"]
    assert pr["reference_subset"] | {"rule": ""} == {"size": 12, "of": 12, "seed": 0, "rule": ""}


@pytest.mark.parametrize("mode", ["clean", "legacy_tensorflow"])
def test_our_feature_path_matches_clean_fid_compute_fid(tmp_path, mode):
    # What is compared is the path around the network (resize, channels, batching, moments),
    # so the offline Inception runs at 96x96 here, ten times cheaper on a CPU than at 299, its
    # fixed 8x8 pool replaced by a global mean, and only 64 of its 2048 features are kept: the
    # matrix square root of a 2048x2048 covariance takes tens of CPU seconds.
    layers = torch.jit.load(str(features.offline_inception_path())).net.layers
    body = torch.nn.Sequential(*list(layers.children())[:-1]).eval()

    @torch.no_grad()
    def network(x):
        x = torch.nn.functional.interpolate(x, size=(96, 96), mode="bilinear", antialias=True)
        return body((x - 128) / 128).mean((2, 3))[:, :64]

    ours = features.InceptionFeatures(network, mode, "test", "", torch.device("cpu"), workers=2)
    rng = np.random.default_rng(6)
    base = rng.integers(0, 256, size=(1, 32, 32, 3))
    a = np.clip(base + rng.integers(-40, 40, size=(6, 32, 32, 3)), 0, 255).astype(np.uint8)
    b = np.clip(base[..., ::-1] + rng.integers(-60, 60, size=(6, 32, 32, 3)), 0, 255)
    b = b.astype(np.uint8)
    fa, fb = ours(a, batch_size=3), ours(b, batch_size=3)
    theirs = compute_fid(
        str(digits_metric.write_png_folder(a, tmp_path / "a")),
        str(digits_metric.write_png_folder(b, tmp_path / "b")),
        mode=mode,
        custom_feat_extractor=network,
        device=torch.device("cpu"),
        num_workers=0,
        batch_size=5,
        verbose=False,
    )
    ours_fid = metrics.frechet_distance(
        *metrics.gaussian_moments(fa), *metrics.gaussian_moments(fb)
    )
    assert ours_fid == pytest.approx(theirs, rel=1e-3) and theirs > 1


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


def test_digits_classifier_is_accurate(cache):
    model, _, acc = digits_metric.classifier(cache)
    assert acc >= 0.95
    assert digits_metric.accuracy(model, "test") == acc


def test_digits_classifier_training_is_deterministic():
    def weights(seed):
        return digits_metric.train_classifier(seed=seed, epochs=2).state_dict()

    first, second, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(v, second[k]) for k, v in first.items())  # trained twice, bitwise
    assert not all(torch.equal(v, other[k]) for k, v in first.items())  # the seed matters


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
        "quantisation": evaluate_module.CLIP,
    }
    assert written["sampling"]["quantisation"].startswith("clipped to [-1, 1], quantised to uint8")
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
    assert record["sampling"]["quantisation"] == "none"  # 2-D points are not images
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


def test_transport_cost_beside_what_the_preconditioning_forces():
    # An untrained network: at sigma_min its endpoint is the noisy input, exactly what the
    # preconditioning forces whatever the network; the forced row is that endpoint.
    from gcbench.data import toy2d
    from gcbench.recipes import build_network

    c = resolve("toy2d-gc", ["device=cpu"])
    torch.manual_seed(0)
    net = build_network(c).eval()
    sigmas = torch.tensor([c.sigma_min, 1.0, 10.0])
    rows = evaluate_module.transport_cost_per_sigma(net, toy2d(256, seed=1), sigmas, 64, seed=3)
    cost = {}
    for r in rows:  # the sigmas come back as floats of the tensor: keyed by position
        cost[sorted({x["sigma"] for x in rows}).index(r["sigma"]), r["coupling"]] = r[
            "transport_cost"
        ]
    assert {k[1] for k in cost} == {"ic", "ot", "gc", "forced"}
    assert cost[0, "gc"] == pytest.approx(cost[0, "forced"], rel=1e-5)
    # At sigma = 10 the forced endpoint is c_skip (x + 10 z), on the same noise as the others.
    x = toy2d(256, seed=1)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    c_skip = c.sigma_data**2 / ((10.0 - c.sigma_min) ** 2 + c.sigma_data**2)
    expected = (c_skip * (x + 10.0 * z) - z).square().sum(1).mean().item()
    assert cost[2, "forced"] == pytest.approx(expected, rel=1e-5)
    assert cost[2, "ic"] == pytest.approx((x - z).square().sum(1).mean().item(), rel=1e-5)
    # One draw per training seed (and evaluation seed), so an interval over training seeds
    # includes it.
    draws = {evaluate_module.transport_seed(e, s) for e in range(2) for s in range(3)}
    assert len(draws) == 6
