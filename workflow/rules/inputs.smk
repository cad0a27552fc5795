# Data and metric assets first: each experiment's training data, config and the assets its
# evaluation will read are checked on the login node before any of its jobs is submitted.


rule check_inputs:
    output:
        check="results/checks/{exp}.json",
    log:
        "results/logs/check_inputs/{exp}.log",
    benchmark:
        "results/benchmarks/check_inputs/{exp}.tsv"
    params:
        gcbench=GCBENCH,
        args=lambda w: study.check_args(config, w.exp),
    localrule: True
    shell:
        "{params.gcbench} check {params.args} --out {output.check} > {log} 2>&1"
