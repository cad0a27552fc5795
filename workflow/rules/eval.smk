# The digits benchmark's feature network, trained once per study (a few seconds) so that every
# FD-digits of the study is measured with the same weights.
#
# Per run, one evaluation job (a GPU job through `gcbench launch`): the convergence curve over
# every snapshot (fewer samples, labelled), then the final metrics of the last snapshot, in one
# process, so that the job starts once.


rule digits_classifier:
    output:
        study.DIGITS_CLASSIFIER,
    log:
        "results/logs/digits_classifier.log",
    benchmark:
        "results/benchmarks/digits_classifier.tsv"
    params:
        gcbench=GCBENCH,
    localrule: True
    shell:
        "{params.gcbench} assets digits-classifier --out {output} > {log} 2>&1"


rule evaluate:
    input:
        done=f"{RUN}/done.json",
        classifier=lambda w: study.classifier_inputs(config, w.exp),
    output:
        curve=f"{RUN}/eval/curve.csv",
        final=f"{RUN}/eval/final.json",
    log:
        "results/logs/evaluate/{exp}/{variant}/s{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{exp}/{variant}/s{seed}.tsv"
    params:
        gcbench=GCBENCH,
        run=lambda w: run_of(w).path,
        curve=lambda w: study.eval_args(config, w.exp, curve=True),
        final=lambda w: study.eval_args(config, w.exp, curve=False),
        launch=launch_options(),
        label=lambda w: f"{w.exp}/{w.variant}/s{w.seed}",  # the SLURM job name gc:LABEL:evaluate
    resources:
        gpu_jobs=1,
    shell:
        "{params.gcbench} launch eval {params.launch} --label {params.label} --name evaluate --run-dir {params.run} -- "
        "{params.curve} --out {output.curve} :: {params.final} --out {output.final} > {log} 2>&1"
