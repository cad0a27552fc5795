"""gcbench: reproduce "Improving Consistency Models with Generator-Induced Coupling".

The source folder is `gc/`, installed under the import name `gcbench` because `gc` is Python's
built-in garbage-collector module.
"""

__version__ = "0.1.0"
