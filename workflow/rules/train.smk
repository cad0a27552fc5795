# One training job per experiment x variant x seed, through `gcbench launch` (submitit).
# The declared output is a marker, never done.json or the snapshots: Snakemake deletes a job's
# outputs before rerunning it (a changed parameter, --forcerun) and after it fails, and a run's
# results and resumable state must survive both. Rerunning a finished run is a no-op.


rule train:
    input:
        check=PATHS.check("{exp}"),
        init=lambda w: study.init_inputs(run_of(w)),
    output:
        complete=study.train_marker(RUN),
    log:
        PATHS.run_log("logs", "train", ".log"),
    benchmark:
        PATHS.run_log("benchmarks", "train", ".tsv")
    params:
        gcbench=GCBENCH,
        run=lambda w: run_of(w).path,
        recipe=lambda w: run_of(w).recipe,
        overrides=lambda w: study.shell_overrides(run_of(w)),
        launch=launch_options(),
        label=lambda w: f"{w.exp}/{w.variant}/s{w.seed}",  # the SLURM job name gc:LABEL:train
        slurm=lambda w: study.slurm_args(config, w.exp, "train"),
        env=lambda w: study.asset_env(config, w.exp),
    resources:
        gpu_jobs=1,
    shell:
        "{params.env}{params.gcbench} launch train {params.launch} {params.slurm} --label {params.label} --recipe {params.recipe} {params.overrides} "
        "--run-dir {params.run} > {log} 2>&1 && touch {output.complete}"
