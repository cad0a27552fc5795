# Per run: the convergence curve over every snapshot (smaller sample count, labelled), then the
# final metrics of the last snapshot. Both are GPU jobs through `gcbench launch`.


rule eval_curve:
    input:
        done=f"{RUN}/done.json",
    output:
        curve=f"{RUN}/eval/curve.csv",
    log:
        "results/logs/eval_curve/{exp}/{variant}/s{seed}.log",
    benchmark:
        "results/benchmarks/eval_curve/{exp}/{variant}/s{seed}.tsv"
    params:
        gcbench=GCBENCH,
        run=lambda w: run_of(w).path,
        args=lambda w: study.eval_args(config, w.exp, curve=True),
        launch=launch_options(),
    resources:
        gpu_jobs=1,
    shell:
        "{params.gcbench} launch eval {params.launch} --name eval-curve --run-dir {params.run} -- "
        "{params.args} --out {output.curve} > {log} 2>&1"


rule eval_final:
    input:
        done=f"{RUN}/done.json",
        curve=f"{RUN}/eval/curve.csv",
    output:
        final=f"{RUN}/eval/final.json",
    log:
        "results/logs/eval_final/{exp}/{variant}/s{seed}.log",
    benchmark:
        "results/benchmarks/eval_final/{exp}/{variant}/s{seed}.tsv"
    params:
        gcbench=GCBENCH,
        run=lambda w: run_of(w).path,
        args=lambda w: study.eval_args(config, w.exp, curve=False),
        launch=launch_options(),
    resources:
        gpu_jobs=1,
    shell:
        "{params.gcbench} launch eval {params.launch} --name eval-final --run-dir {params.run} -- "
        "{params.args} --out {output.final} > {log} 2>&1"
