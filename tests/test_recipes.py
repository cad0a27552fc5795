import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from gcbench import catalog
from gcbench.cli import main
from gcbench.recipes import RECIPES, ConfigError, from_dict, resolve


def test_every_paper_dataset_has_every_variant():
    for name in ("cifar10", "imagenet32", "celeba64", "lsun_church64", "digits8", "toy2d"):
        for variant in ("ic", "ot", "gc", "gc_ot"):
            assert f"{name}-{variant}" in RECIPES


def test_paper_recipes_follow_table1():
    c = resolve("cifar10-ic")
    assert (c.batch_size, c.total_steps, c.lr, c.optimizer) == (512, 100_000, 1e-4, "lion")
    assert (c.beta1, c.beta2, c.dropout) == (0.9, 0.99, (0.3, 0.3, 0.3))
    gc = resolve("cifar10-gc")
    assert (gc.mu, gc.dropout, gc.endpoint) == (0.5, (0.0, 0.0, 0.0), "ema")
    lsun, celeba = resolve("lsun_church64-ic"), resolve("celeba64-ic")
    assert lsun.channel_mult == celeba.channel_mult and lsun.lr == celeba.lr == 8e-5
    toy = resolve("toy2d-gc")
    assert (toy.sigma_max, toy.s1, toy.loss, toy.network) == (5.0, 100, "l2", "mlp")


def test_overrides_are_typed():
    c = resolve("cifar10-gc", ["mu=0.3", "channel_mult=1,2", "num_blocks=2", "tf32=true"])
    assert c.mu == 0.3 and c.channel_mult == (1, 2) and c.num_blocks == (2, 2) and c.tf32
    assert c.dropout == (0.0, 0.0)


@pytest.mark.parametrize(
    ("recipe", "overrides", "message"),
    [
        ("cifar10-gc", ["mue=0.3"], "unknown key 'mue'; did you mean 'mu'?"),
        ("cifar10-gc", ["mu=1.5"], "mu=1.5 is outside [0, 1]"),
        ("cifar10-gc", ["mu=-0.1"], "mu=-0.1 is outside [0, 1]"),
        ("cifar10-gc", ["total_steps=0"], "total_steps=0 must be a positive integer"),
        ("cifar10-gc", ["total_steps=-5"], "total_steps=-5 must be a positive integer"),
        ("cifar10-gc", ["dataset=cifar100"], "unknown dataset 'cifar100'; did you mean 'cifar10'?"),
        ("cifar10-ic", ["mu=0.5"], "mu=0.5 has no effect with coupling=ic"),
        ("cifar10-gc", ["lr=abc"], "cannot read lr='abc'"),
        ("imagenet32-gc", ["channel_mult=1,2"], "num_blocks=[3, 5, 7] has 3 entries"),
        ("cifar10-gc", ["optimizer=sgd"], "unknown optimizer 'sgd'"),
        ("cifar10-gc", ["mu"], "is not key=value"),
        ("cifar11-gc", [], "unknown recipe 'cifar11-gc'; did you mean 'cifar10-gc'?"),
    ],
)
def test_bad_configurations_are_rejected_with_their_message(recipe, overrides, message):
    with pytest.raises(ConfigError) as err:
        resolve(recipe, overrides)
    assert message in str(err.value)


def test_cli_rejects_bad_config_before_training(tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--recipe", "digits8-gc", "--set", "mu=1.5", "--run-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "mu=1.5 is outside [0, 1]" in result.output
    assert not any(tmp_path.iterdir())


def test_cli_dry_run_prints_the_resolved_config(tmp_path):
    args = ["train", "--recipe", "digits8-gc", "--set", "seed=4", "--run-dir", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["seed"] == 4


def test_cli_recipes_json_lists_names_and_parameters():
    result = CliRunner().invoke(main, ["recipes", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["cifar10-gc"]["parameters"] == 34_711_811
    assert rows["celeba64-ic"]["dataset"] == "celeba64"
    assert set(rows) == set(RECIPES)


def test_missing_dataset_says_how_to_prepare_it(tmp_path):
    args = ["train", "--recipe", "cifar10-ic", "--set", f"data_dir={tmp_path}", "--run-dir"]
    result = CliRunner().invoke(main, [*args, str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "dataset 'cifar10' not found" in result.output
    assert "uint8 array of shape (N, H, W, C)" in result.output


def test_the_study_schema_names_what_the_catalog_defines():
    # The schema is YAML, so it cannot import the catalog: it must list the same names.
    schema = yaml.safe_load(Path("workflow/schemas/config.schema.yaml").read_text())
    experiment = schema["properties"]["experiments"]["additionalProperties"]["properties"]
    assert experiment["dataset"]["enum"] == list(catalog.DATASETS)
    prepared = schema["properties"]["prepare_data"]["propertyNames"]["enum"]
    assert prepared == list(catalog.PAPER_DATASETS)
    variant = experiment["variants"]["additionalProperties"]["properties"]
    assert variant["coupling"]["enum"] == list(catalog.COUPLINGS)
    assert schema["$defs"]["eval"]["properties"]["modes"]["items"]["enum"] == list(
        catalog.FID_MODES
    )


def test_a_run_config_written_before_the_rename_still_loads_and_resumes(tmp_path):
    from gcbench import checkpoint
    from gcbench.train import _check_config

    written = resolve("digits8-gc").to_dict()
    written["variant"] = written.pop("coupling")  # config.json of runs before the rename
    assert from_dict(written) == resolve("digits8-gc")
    checkpoint.write_json(written, tmp_path / "config.json")
    _check_config(tmp_path, resolve("digits8-gc"))  # the same run: resumes
    with pytest.raises(ConfigError, match="coupling"):
        _check_config(tmp_path, resolve("digits8-ic"))
