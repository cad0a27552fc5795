# Data and metric assets first: datasets listed under `prepare_data` are prepared, then each
# experiment's training data, config and the assets its evaluation will read are checked on the
# login node before any of its jobs is submitted.


rule prepare_data:
    output:
        array="data/{dataset}/train.npy",
        manifest="data/{dataset}/manifest.json",
    log:
        f"{PATHS.outdir}/logs/prepare_data/{{dataset}}.log",
    benchmark:
        f"{PATHS.outdir}/benchmarks/prepare_data/{{dataset}}.tsv"
    wildcard_constraints:
        dataset="|".join(PAPER_DATASETS),
    params:
        gcbench=lambda w: gcbench_for("prepare", f"data/{w.dataset}"),
        source=lambda w: prepare_source(w.dataset),
    localrule: True
    shell:
        "{params.gcbench} data prepare {wildcards.dataset} {params.source} --data-dir data "
        "> {log} 2>&1"


rule check_inputs:
    input:
        data=lambda w: prepared_data(w.exp),
    output:
        check=PATHS.check("{exp}"),
    log:
        f"{PATHS.outdir}/logs/check_inputs/{{exp}}.log",
    benchmark:
        f"{PATHS.outdir}/benchmarks/check_inputs/{{exp}}.tsv"
    params:
        gcbench=GCBENCH,
        args=lambda w: study.check_args(config, w.exp),
    localrule: True
    shell:
        "{params.gcbench} check {params.args} --out {output.check} > {log} 2>&1"
