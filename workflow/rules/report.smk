# Aggregate every run into the tidy table, the paper-style tables and the figures.


rule report:
    input:
        finals=all_runs(f"{RUN}/eval/final.json"),
        curves=all_runs(f"{RUN}/eval/curve.csv"),
    output:
        table="results/tables/table1.md",
        tidy="results/tidy.csv",
        readme="results/README.md",
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    params:
        gcbench=GCBENCH,
        expect=" ".join(f"--expect {r.path}" for r in RUNS),
        tables=" ".join(
            f"--table {name}={exp.get('table', 'table1')}"
            for name, exp in config["experiments"].items()
        ),
    shell:
        "{params.gcbench} report --results results {params.expect} {params.tables} > {log} 2>&1"
