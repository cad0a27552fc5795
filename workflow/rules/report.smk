# Aggregate every run into the study's tidy table, claims, paper-style tables and figures, in
# the study's own folder (<outdir>/<study>/). The outputs flagged with report() make up
# `snakemake --report <outdir>/<study>/report.html`.


rule report:
    input:
        finals=all_runs(f"{RUN}/eval/final.json"),
        curves=all_runs(f"{RUN}/eval/curve.csv"),
    output:
        claims=report(
            f"{PATHS.report}/claims.html", caption="../report/claims.rst", category="1. Claims"
        ),
        claims_md=f"{PATHS.report}/claims.md",
        # Every table the study has (table1, its 2-step and online versions, table2, table3,
        # mu_sweep, toy) is one page of the report.
        tables=report(
            directory(f"{PATHS.report}/tables"),
            patterns=["{name}.html"],
            caption="../report/tables.rst",
            category="2. Tables",
        ),
        figures=report(
            directory(f"{PATHS.report}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="3. Figures",
        ),
        tidy=f"{PATHS.report}/tidy.csv",
        readme=f"{PATHS.report}/README.md",
        # Written only when this rule succeeds, never by the onerror report: the tables a failed
        # study leaves behind must not make the rerun say "Nothing to be done".
        complete=touch(PATHS.log("report", "complete")),
    log:
        PATHS.log("report", "report.log"),
    benchmark:
        PATHS.benchmark("report", "report.tsv")
    params:
        gcbench=gcbench_for("report", PATHS.report),
        args=report_args(),
    shell:
        "{params.gcbench} report {params.args} > {log} 2>&1"
