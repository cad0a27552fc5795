import multiprocessing

import numpy as np
import torch
from gcbench import features


def test_clean_resize_forks_one_pool_per_extraction_not_per_chunk(monkeypatch):
    pools = []
    real = multiprocessing.get_context

    class Counting:
        def __init__(self, method):
            self.ctx = real(method)

        def Pool(self, workers):
            pools.append(workers)
            return self.ctx.Pool(workers)

    monkeypatch.setattr(features.multiprocessing, "get_context", Counting)
    network = lambda x: x.mean((2, 3))  # only the path around the network matters here
    images = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8, 3), dtype=np.uint8)

    def extract(workers):
        extractor = features.InceptionFeatures(network, "clean", "t", "", torch.device("cpu"))
        extractor.workers = workers
        return extractor(images, batch_size=10)

    pooled = extract(workers=2)
    assert pools == [2]  # four chunks of 10, one pool
    np.testing.assert_array_equal(pooled, extract(workers=1))  # same as resizing in-process
    assert pooled.shape == (40, 3) and pooled.dtype == np.float32
