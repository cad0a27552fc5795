# One training job per experiment x variant x seed, through `gcbench launch` (submitit).
# The declared output is the completion file only: resumable state (state.pt) must never be a
# Snakemake output, since Snakemake deletes the outputs of failed jobs.


rule train:
    input:
        check="results/checks/{exp}.json",
        init=lambda w: study.init_inputs(run_of(w)),
    output:
        done=f"{RUN}/done.json",
    log:
        "results/logs/train/{exp}/{variant}/s{seed}.log",
    benchmark:
        "results/benchmarks/train/{exp}/{variant}/s{seed}.tsv"
    params:
        gcbench=GCBENCH,
        run=lambda w: run_of(w).path,
        recipe=lambda w: run_of(w).recipe,
        overrides=lambda w: study.shell_overrides(run_of(w)),
        launch=launch_options(),
        label=lambda w: f"{w.exp}/{w.variant}/s{w.seed}",  # the SLURM job name gc:LABEL:train
        env=lambda w: study.asset_env(config, w.exp),
    resources:
        gpu_jobs=1,
    shell:
        "{params.env}{params.gcbench} launch train {params.launch} --label {params.label} --recipe {params.recipe} {params.overrides} "
        "--run-dir {params.run} > {log} 2>&1"
