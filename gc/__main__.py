"""`python -m gcbench ...` is `gcbench ...` (the workflow calls it this way, so that the rules
use the interpreter Snakemake runs in, whether or not its environment is activated)."""

from .cli import main

main()
