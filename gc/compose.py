"""Reading a study config: `extends:` adds to another study, layered files never drop runs.

Snakemake layers several `--configfile`s by replacing lists, so a file that adds one seed to
an experiment would silently drop its other seeds. Two ways are offered instead:

- `extends: OTHER.yaml` (relative to the file): the other study's experiments, variants and
  seeds, plus this file's. Mappings merge key by key, lists add the items they lack, and a
  scalar set here wins.
- plain layering (`--configfile a.yaml b.yaml`) is refused where a later file would replace a
  list of an earlier one by a list that lacks some of its items, naming the key.

The study's name is `study:` if given, else the file name of the last config file; its outdir
is `outdir:` (default results).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .layout import DEFAULT_OUTDIR


class CompositionError(ValueError):
    """A set of config files that cannot be composed; the message says what to change."""


def merge_adding(base: dict, extra: dict) -> dict:
    """`base` with `extra` added: mappings merge recursively, lists gain the items they lack
    (in order), anything else in `extra` wins."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            out[key] = merge_adding(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = old + [v for v in value if v not in old]
        else:
            out[key] = value
    return out


def load(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """One study config file with its `extends:` chain resolved."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise CompositionError(f"extends: makes a cycle: {chain}")
    if not path.exists():
        raise CompositionError(f"config file {path} does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    parent = config.pop("extends", None)
    if parent is None:
        return config
    base = load(path.parent / parent, (*_seen, path))
    base.pop("study", None)  # the extending file is its own study
    return merge_adding(base, config)


def replaced_lists(earlier: dict, later: dict, where: str = "") -> list[str]:
    """Keys at which `later` replaces a list of `earlier` with one that lacks some of its
    items (a longer list that keeps them all drops nothing)."""
    found = []
    for key, value in later.items():
        old, at = earlier.get(key), f"{where}{key}"
        if isinstance(old, dict) and isinstance(value, dict):
            found += replaced_lists(old, value, f"{at}.")
        elif isinstance(old, list) and isinstance(value, list) and any(v not in value for v in old):
            found.append(f"{at}: {old} -> {value}")
    return found


def _update(base: dict, extra: dict) -> dict:
    """Snakemake's layering: mappings merge recursively, anything else is replaced."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = _update(out[key], value)
        else:
            out[key] = value
    return out


def compose(configfiles: list[str | Path], overrides: dict | None = None) -> dict:
    """The study config of these files (in order) and `--config` overrides."""
    if not configfiles:
        raise CompositionError("no config file given")
    layers = [load(p) for p in configfiles]
    config: dict = {}
    for path, layer in zip(configfiles, layers, strict=True):
        replaced = replaced_lists(config, layer)
        if replaced:
            raise CompositionError(
                f"{path} replaces lists of the config files before it, which would drop their "
                f"runs: {'; '.join(replaced)}. To add to a study, write one file with "
                f"`extends: <that study's file>` and only what it adds, and pass that file alone."
            )
        config = _update(config, layer)
    config = _update(config, dict(overrides or {}))
    config.setdefault("study", Path(configfiles[-1]).stem)
    config.setdefault("outdir", DEFAULT_OUTDIR)
    return config


def load_study(path: str | Path) -> dict:
    """A study config as the workflow reads it (for the CLI: report, plan, status)."""
    return compose([path])
