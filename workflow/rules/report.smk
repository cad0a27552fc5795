# Aggregate every run into the tidy table, the claims, the paper-style tables and the figures.
# The outputs flagged with report() make up `snakemake --report results/report.html`.


rule report:
    input:
        finals=all_runs(f"{RUN}/eval/final.json"),
        curves=all_runs(f"{RUN}/eval/curve.csv"),
    output:
        claims=report(
            "results/claims.html", caption="../report/claims.rst", category="1. Claims"
        ),
        claims_md="results/claims.md",
        # Every table the study has (table1, its 2-step and online versions, table2, table3,
        # mu_sweep, toy) is one page of the report.
        tables=report(
            directory("results/tables"),
            patterns=["{name}.html"],
            caption="../report/tables.rst",
            category="2. Tables",
        ),
        figures=report(
            directory("results/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="3. Figures",
        ),
        tidy="results/tidy.csv",
        readme="results/README.md",
        # Written only when this rule succeeds, never by the onerror report: the tables a failed
        # study leaves behind must not make the rerun say "Nothing to be done".
        complete=touch("results/logs/report/complete"),
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    params:
        gcbench=GCBENCH,
        args=report_args(),
    shell:
        "{params.gcbench} report --results results {params.args} > {log} 2>&1"
