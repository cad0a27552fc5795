"""Where a study's files live: the one module that builds and parses result paths.

<outdir>/                         `outdir:` in the study config (default: results)
  runs/<experiment>/<variant>/s<seed>/   one training run; shared by every study that
                                         asks for the same run (drift is refused, study.py)
  logs/, benchmarks/              per-run Snakemake logs and timings (shared like the runs)
  digits_classifier.pt            the digits feature network (deterministic, shared)
  forgotten/<date>/...            runs moved aside by `gcbench forget` (never deleted)
  <study>/                        one study's report: claims, tables, figures, README.md,
                                  report.html, and its own checks, logs and benchmarks
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_OUTDIR = "results"
RUNS = "runs"
FORGOTTEN = "forgotten"
# Folders of <outdir> that a study's name must not shadow.
RESERVED = frozenset({RUNS, FORGOTTEN, "logs", "benchmarks", "data"})
# A `run:` init names another run of the study; the study resolves it under its outdir.
RUN_REF = "run:"

_RUN_DIR = re.compile(
    r"^(?:(?P<outdir>.*)/)?runs/(?P<exp>[^/]+)/(?P<variant>[^/]+)/s(?P<seed>\d+)$"
)


@dataclass(frozen=True)
class RunId:
    experiment: str
    variant: str  # the name in the config (e.g. gc_mu0.3), not only the coupling
    seed: int

    def __str__(self) -> str:
        return f"{self.experiment}/{self.variant}/s{self.seed}"

    @classmethod
    def parse(cls, text: str) -> RunId:
        """`EXPERIMENT/VARIANT/sSEED`, as printed by str()."""
        match = re.fullmatch(r"([^/]+)/([^/]+)/s(\d+)", text.strip("/"))
        if not match:
            raise ValueError(f"{text!r} is not a run name: write EXPERIMENT/VARIANT/sSEED")
        return cls(match[1], match[2], int(match[3]))


def run_dir(outdir: str, run: RunId) -> str:
    return f"{outdir}/{RUNS}/{run}"


def run_pattern(outdir: str) -> str:
    """The run directory as a Snakemake wildcard pattern."""
    return f"{outdir}/{RUNS}/{{exp}}/{{variant}}/s{{seed}}"


def parse_run_dir(path: str | Path) -> tuple[str, RunId]:
    """(outdir, run) of a run directory; an error for a path outside the layout."""
    text = Path(path).as_posix().rstrip("/")
    match = _RUN_DIR.match(text)
    if not match:
        raise ValueError(
            f"{path} is not a run directory of a study: expected OUTDIR/{RUNS}/EXPERIMENT/VARIANT/sSEED"
        )
    outdir = match["outdir"] if match["outdir"] is not None else "."
    return outdir, RunId(match["exp"], match["variant"], int(match["seed"]))


def resolve_init(init: str, outdir: str) -> str:
    """A `run:EXPERIMENT/VARIANT/sSEED` init as that run's directory under `outdir`; any other
    init unchanged."""
    if not init.startswith(RUN_REF):
        return init
    return run_dir(outdir, RunId.parse(init[len(RUN_REF) :]))


@dataclass(frozen=True)
class StudyLayout:
    """The paths of one study under its outdir."""

    outdir: str
    name: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name) or self.name in RESERVED:
            raise ValueError(
                f"study name {self.name!r} cannot name a folder of {self.outdir}/: use letters, "
                f"digits, '_', '.', '-', and none of {sorted(RESERVED)}"
            )

    @property
    def runs(self) -> str:
        return f"{self.outdir}/{RUNS}"

    @property
    def report(self) -> str:
        """The study's own folder: claims, tables, figures, README.md, report.html."""
        return f"{self.outdir}/{self.name}"

    @property
    def html_report(self) -> str:
        return f"{self.report}/report.html"

    @property
    def digits_classifier(self) -> str:
        # Trained from a fixed seed, so one file serves every study of an outdir.
        return f"{self.outdir}/digits_classifier.pt"

    def check(self, experiment: str) -> str:
        # Shared like the runs it guards: another study's check of the same experiment must not
        # make those runs (and their evaluations) look stale to Snakemake.
        return f"{self.outdir}/checks/{experiment}.json"

    def log(self, rule: str, name: str) -> str:
        """A study-level rule's log (report, checks); run-level logs go under outdir/logs."""
        return f"{self.report}/logs/{rule}/{name}"

    def benchmark(self, rule: str, name: str) -> str:
        return f"{self.report}/benchmarks/{rule}/{name}"

    def run_log(self, kind: str, rule: str, suffix: str) -> str:
        """A per-run log or benchmark pattern (kind: logs or benchmarks), shared like runs."""
        return f"{self.outdir}/{kind}/{rule}/{{exp}}/{{variant}}/s{{seed}}{suffix}"
