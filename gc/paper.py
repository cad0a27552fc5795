"""What the paper reports, and which metric stands for each dataset (DESIGN.md section 4)."""

from __future__ import annotations

# Table 1 (1-step FID, 50k samples, training-set statistics) and Table 3 (CIFAR-10 ablations of
# GC mu = 0.5), keyed by the role of a run (claims.role).
FID = {
    "cifar10": {"ic": 7.42, "ot": 6.75, "gc": 5.95, "gc_online": 6.73, "gc_dropout": 7.77},
    "imagenet32": {"ic": 14.89, "ot": 14.13, "gc": 13.99},
    "celeba64": {"ic": 15.82, "ot": 13.63, "gc": 11.74},
    "lsun_church64": {"ic": 10.58, "ot": 9.71, "gc": 9.88},
}
# Beside Table 1's FIDs, for CIFAR-10 (DESIGN.md section 4).
KID_X100 = {"cifar10": {"ic": 0.44, "ot": 0.36, "gc": 0.26}}
INCEPTION_SCORE = {"cifar10": {"ic": 8.76, "ot": 8.86, "gc": 9.10}}
SAME_WALLCLOCK_FID = {"cifar10": 6.38}  # GC mu = 0.5 given IC's training time (Table 3)
STEP_OVERHEAD = 0.20  # GC's extra wall-clock per step in the official code (about +20%)

# The headline metric of each dataset: (metric, mode). Published consistency-model FIDs use
# clean-fid's legacy_tensorflow mode.
PRIMARY_OTHER = {"digits8": ("fd_digits", ""), "toy2d": ("frechet_2d", "")}  # not FID
_DEFAULT_PRIMARY = ("fid", "legacy_tensorflow")


def primary(dataset: str) -> tuple[str, str]:
    return PRIMARY_OTHER.get(dataset, _DEFAULT_PRIMARY)
