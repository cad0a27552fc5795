import subprocess
import sys

import numpy as np
import pytest
from gcbench import metrics


def test_chunked_moments_match_numpy_on_offset_float32_features():
    # A large common offset is where sum(x x^T) - n mu mu^T would lose digits without a shift.
    x = (np.random.default_rng(0).normal(size=(1000, 16)) + 300).astype(np.float32)
    mu, sigma = metrics.gaussian_moments(x, chunk=64)
    reference = x.astype(np.float64)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, reference.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(reference, rowvar=False), rtol=1e-9, atol=1e-11)


def test_reference_subset_is_seeded_sorted_and_spread():
    idx = metrics.reference_subset(200_000)
    assert len(idx) == len(np.unique(idx)) == 50_000
    assert np.array_equal(idx, np.sort(idx)) and np.array_equal(
        idx, metrics.reference_subset(200_000)
    )
    assert idx[-1] > 190_000  # drawn from the whole set, not its first rows
    assert not np.array_equal(idx, metrics.reference_subset(200_000, seed=1))
    assert np.array_equal(metrics.reference_subset(30), np.arange(30))


def test_precision_recall_counts_samples_inside_the_other_manifold():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(400, 8)).astype(np.float32)
    inside = rng.normal(size=(300, 8)).astype(np.float32)
    pr_in = metrics.precision_recall(inside, ref, batch_size=64)
    pr_far = metrics.precision_recall(inside + 10, ref, batch_size=64)
    assert pr_in["precision"] > 0.8 and pr_in["recall"] > 0.8
    assert pr_far["precision"] == pr_far["recall"] == 0.0


# Run in a fresh process: its peak resident memory (VmHWM) is then this computation's alone,
# torch-fidelity's torch tensors included (tracemalloc would see only numpy's).
_BIG_REFERENCE = """
import numpy as np
from gcbench import metrics

rng = np.random.default_rng(0)
ref = np.empty((200_000, 2048), dtype=np.float32)  # 1.6 GB: ImageNet-like in kind, not in size
for rows in np.array_split(ref, 20):
    rng.standard_normal(out=rows, dtype=np.float32)
mu, sigma = metrics.gaussian_moments(ref)
subset = ref[metrics.reference_subset(len(ref))]
generated = rng.standard_normal((2_000, 2048), dtype=np.float32)
kid = metrics.kid(generated, subset)
pr = metrics.precision_recall(generated, subset)  # k-NN radii over the whole 50k subset
assert np.isfinite(sigma).all() and abs(sigma[0, 0] - 1) < 0.02 and np.isfinite(kid["kid"])
assert len(subset) == 50_000 and 0 <= pr["precision"] <= 1 and 0 <= pr["recall"] <= 1
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) * 1024)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_moments_and_pr_on_a_200k_x_2048_reference_fit_in_4_gb():
    out = subprocess.run(
        [sys.executable, "-c", _BIG_REFERENCE], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    peak = int(out.stdout.split()[-1])
    # A float64 copy of the reference alone (3.3 GB) on top of it (1.6 GB) would exceed this.
    assert peak < 4 * 2**30, f"peak resident memory {peak / 2**30:.2f} GiB"
