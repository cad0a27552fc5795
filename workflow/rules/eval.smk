# The digits benchmark's feature network, trained once (a few seconds, from a fixed seed) so
# that every FD-digits is measured with the same weights.
#
# Per run, one evaluation job (a GPU job through `gcbench launch`): the convergence curve over
# every snapshot (fewer samples, labelled), then the final metrics of the last snapshot, in one
# process, so that the job starts once. Then the run keeps the snapshots `keep_snapshots` says.


rule digits_classifier:
    output:
        PATHS.digits_classifier,
    log:
        f"{PATHS.outdir}/logs/digits_classifier.log",
    benchmark:
        f"{PATHS.outdir}/benchmarks/digits_classifier.tsv"
    params:
        gcbench=GCBENCH,
    localrule: True
    shell:
        "{params.gcbench} assets digits-classifier --out {output} > {log} 2>&1"


rule evaluate:
    input:
        # ancient: a finished run's no-op rerun rewrites the marker, which must not make its
        # evaluation stale.
        trained=ancient(study.train_marker(RUN)),
        classifier=lambda w: study.classifier_inputs(config, w.exp),
    output:
        curve=f"{RUN}/eval/curve.csv",
        final=f"{RUN}/eval/final.json",
    log:
        PATHS.run_log("logs", "evaluate", ".log"),
    benchmark:
        PATHS.run_log("benchmarks", "evaluate", ".tsv")
    params:
        gcbench=GCBENCH,
        run=lambda w: run_of(w).path,
        curve=lambda w: study.eval_args(config, w.exp, curve=True),
        final=lambda w: study.eval_args(config, w.exp, curve=False),
        launch=launch_options(),
        slurm=lambda w: study.slurm_args(config, w.exp, "evaluate"),
        keep=config.get("keep_snapshots", "curve"),
        label=lambda w: f"{w.exp}/{w.variant}/s{w.seed}",  # the SLURM job name gc:LABEL:evaluate
    resources:
        gpu_jobs=1,
    shell:
        "({params.gcbench} launch eval {params.launch} {params.slurm} --label {params.label} "
        "--name evaluate --run-dir {params.run} -- {params.curve} --out {output.curve} :: "
        "{params.final} --out {output.final} && {params.gcbench} prune {params.run} "
        "--keep {params.keep}) > {log} 2>&1"
