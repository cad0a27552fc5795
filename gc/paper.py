"""What the paper reports, and each dataset's headline metric (docs/design.md#paper-numbers)."""

from __future__ import annotations

FID_SAMPLES = 50_000  # every FID the paper reports is over 50k samples
# Table 1 (1-step FID, 50k samples, training-set statistics) and Table 3 (CIFAR-10 ablations of
# GC mu = 0.5), keyed by the role of a run (selection.role).
FID = {
    "cifar10": {"ic": 7.42, "ot": 6.75, "gc": 5.95, "gc_online": 6.73, "gc_dropout": 7.77},
    "imagenet32": {"ic": 14.89, "ot": 14.13, "gc": 13.99},
    "celeba64": {"ic": 15.82, "ot": 13.63, "gc": 11.74},
    "lsun_church64": {"ic": 10.58, "ot": 9.71, "gc": 9.88},
}
TABLE3_ROLES = frozenset({"gc_online", "gc_dropout"})  # FID's rows from Table 3, not Table 1
# Beside Table 1's FIDs, for CIFAR-10 (docs/design.md#paper-numbers).
KID_X100 = {"cifar10": {"ic": 0.44, "ot": 0.36, "gc": 0.26}}
INCEPTION_SCORE = {"cifar10": {"ic": 8.76, "ot": 8.86, "gc": 9.10}}
SAME_WALLCLOCK_FID = {"cifar10": 6.38}  # GC mu = 0.5 given IC's training time (Table 3)
STEP_OVERHEAD = 0.20  # GC's extra wall-clock per step in the official code (about +20%)

# Table 2 (1-step FID): ECT fine-tuning EDM's pretrained denoiser, IC vs GC mu = 0.3, keyed by
# dataset, run length (short: about one GPU-hour; long: 100k steps) and role. The paper gives
# no number for the pretrained denoiser itself.
ECT_FID = {
    "cifar10": {"short": {"ic": 7.37, "gc": 6.41}, "long": {"ic": 4.11, "gc": 3.74}},
    "ffhq64": {"short": {"ic": 13.29, "gc": 11.73}, "long": {"ic": 9.68, "gc": 8.51}},
}
# Rows of Table 2 that appear only in other versions of the paper and could not be confirmed
# from its text (docs/ect.md#what-the-paper-reports).
ECT_UNCONFIRMED = frozenset({"ffhq64"})

# A run's training setting (selection.setting_name): which of the paper's tables speaks for it.
ICT, ECT_SHORT, ECT_LONG, EDM_PRETRAINING = "iCT", "ECT short", "ECT long", "EDM pretraining"

# The headline metric of each dataset: (metric, mode). Published consistency-model FIDs use
# clean-fid's legacy_tensorflow mode.
PRIMARY_OTHER = {"digits8": ("fd_digits", ""), "toy2d": ("frechet_2d", "")}  # not FID
_DEFAULT_PRIMARY = ("fid", "legacy_tensorflow")


def primary(dataset: str) -> tuple[str, str]:
    return PRIMARY_OTHER.get(dataset, _DEFAULT_PRIMARY)


def paper_value(dataset: str, role: str, setting: str = ICT, metric: str = "fid") -> float | None:
    """The paper's 1-step number for a run of `role` in `setting`: Tables 1 and 3 for iCT
    (metric "fid", "kid_x100" or "inception_score"), Table 2's FID for ECT short or long, None
    where the paper gives none (e.g. the EDM denoiser, or KID in Table 2)."""
    if setting == ICT:
        table = {"fid": FID, "kid_x100": KID_X100, "inception_score": INCEPTION_SCORE}[metric]
        return table.get(dataset, {}).get(role)
    if setting in (ECT_SHORT, ECT_LONG) and metric == "fid":
        return ECT_FID.get(dataset, {}).get(setting.removeprefix("ECT "), {}).get(role)
    return None


def paper_source(dataset: str, role: str, setting: str = ICT) -> str:
    """Where paper_value's FID comes from ("" where there is none)."""
    if paper_value(dataset, role, setting) is None:
        return ""
    if setting != ICT:
        if dataset in ECT_UNCONFIRMED:
            return "Table 2 (unconfirmed: only in other versions of the paper)"
        return "Table 2"
    return "Table 3" if role in TABLE3_ROLES else "Table 1"
