# gcbench: the reproduction study of "Improving Consistency Models with Generator-Induced
# Coupling" (arXiv 2406.09570). Rules live in workflow/rules/; logic lives in the gcbench package.
#
#   snakemake --cores 2                 the embedded default (digits8 + toy2d, CPU)
#   snakemake --cores 2 --configfile workflow/config/claims_extended.yaml   another study
#   snakemake --profile slurm           the paper study on a SLURM cluster (slurm/config.yaml)

from snakemake.utils import min_version

min_version("8.0")


# The embedded default unless a study config is given (--configfile, or the slurm profile).
# Config files merge key by key, so the default must not be loaded under another study.
# (Found beside this Snakefile, so that `--directory` elsewhere works too.)
if "experiments" not in config:

    configfile: f"{workflow.basedir}/workflow/config/default.yaml"


# The HTML report's front page: what the study is and where to start reading.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        rules.report.output,


# A finished study also gets its HTML report (claims, tables, figures with captions): what
# `snakemake --report results/<study>/report.html` writes.
onsuccess:
    write_html_report()


# A failed run (e.g. under --keep-going) must not cost the tables: the report is written from
# what finished, listing the failed and missing runs.
onerror:
    shell(
        f"mkdir -p {PATHS.log('report', '')} && {GCBENCH} report {report_args()} "
        f"> {PATHS.log('report', 'onerror.log')} 2>&1 || true"
    )
