"""Every `snakemake` command the README shows does what it says: each is run as a dry-run
against the study it names, and what it plans is checked against that study's runs."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
from gcbench import compose, study
from test_workflow import _job_counts, _snakemake

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", README, re.M | re.S)


def readme_commands() -> list[str]:
    """The snakemake commands of the README's bash blocks, continuation lines joined and
    trailing comments dropped."""
    commands = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0].endswith("snakemake"):
                commands.append(shlex.join(words))
    return commands


def readme_files() -> dict[str, str]:
    """Config files the README writes out in a yaml block headed `# NAME.yaml: ...`."""
    files = {}
    for block in _blocks("yaml"):
        if match := re.match(r"# ([\w.-]+\.yaml):", block):
            files[match[1]] = block
    return files


def _study_of(words: list[str], workdir: Path) -> dict:
    """The study a command runs: its --configfile, the profile's, or the default."""
    if "--configfile" in words:
        return compose.load_study(workdir / words[words.index("--configfile") + 1])
    if "--profile" in words:
        return compose.load_study(workdir / "workflow/config/paper.yaml")
    return compose.load_study(workdir / "workflow/config/default.yaml")


def test_the_readme_shows_the_commands_researchers_need():
    commands = readme_commands()
    assert ".venv/bin/snakemake --cores 2" in commands  # the quick start
    assert any(" -f " in c and c.endswith("eval/final.json") for c in commands)
    assert not any("--forcerun" in c for c in commands)  # it swallows the target
    assert "more_cifar10.yaml" in readme_files()


@pytest.mark.parametrize("command", readme_commands())
def test_readme_snakemake_command_plans_what_it_says(workdir, command):
    for name, text in readme_files().items():
        (workdir / name).write_text(text)
    shutil.copytree(ROOT / "workflow", workdir / "workflow", dirs_exist_ok=True)
    words = shlex.split(command)[1:]
    out = _snakemake(workdir, "-n", *words)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    counts = _job_counts(out.stdout)
    targets = [w for w in words if w.endswith("/eval/final.json")]
    if targets:  # one run's target: that run's training and evaluation, nothing else
        assert counts["evaluate"] == 1 and counts.get("train", 0) == 1
        assert "report" not in counts
        assert f"output: {targets[0].replace('final.json', 'curve.csv')}" in out.stdout
    else:  # a whole study: every run it holds, and its report in its own folder
        config = _study_of(words, workdir)
        runs = study.runs(config)
        assert counts["train"] == counts["evaluate"] == len(runs)
        assert f"{study.paths(config).report}/claims.md" in out.stdout


def test_the_readme_plan_of_the_paper_study_is_what_gcbench_plan_prints():
    import subprocess
    import sys

    key = "`gcbench plan workflow/config/paper.yaml`:\n\n```text\n"
    shown = README[README.index(key) + len(key) :].split("```", 1)[0]
    out = subprocess.run(
        [sys.executable, "-m", "gcbench", "plan", "workflow/config/paper.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == shown.strip()
