"""One recipe per shipped model: configs/NAME.toml reproduces artifacts/NAME, as its manifest recorded it.

Each recipe names its preset (`variant`) and states only what differs from it; `train-gan --config
configs/NAME.toml` resolves it (defaults <- preset <- file <- command line) to the config that
artifacts/NAME/manifest.json records under training.config.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from runtime.registry import shipped_models
from training.cli import main as train_gan
from training.config import FIELDS, read_config_file, resolve, resolve_config_file

from ..conftest import REPO

CONFIGS = REPO / "configs"
MODELS = {model.name: model for model in shipped_models(REPO / "artifacts")}

# Files in configs/ that are no shipped model's recipe, by file stem, with why. None today.
NOT_SHIPPED: dict[str, str] = {}

# The fields of training.config that may legitimately differ from the recipe, with why. No others.
NOT_COMPARED = {
    "device": "per machine, so the recipes leave it at 'auto' and the scripts pass --device (cpu; cuda for "
    "wgan_gp_cond_conv_w96)",
    "epochs": "a run stopped before its planned end records the planned count (wgan_gp_cond_conv: started "
    "with 60, stopped at 30 to free the cores; wgan_gp_cond_conv_w96: --epochs 2000, cut by a "
    "deadline); the recipe states the shipped count, compared with training.epochs_completed in "
    "test_recipe_states_the_shipped_epochs",
}
# Shipped weights cut inside an epoch: the recipe states the nearest whole epoch count.
PARTIAL_EPOCH = {"wgan_gp_cond_conv_w96": 115}  # stopped at epoch 114 + 273 of 429 steps


def recipe(name: str) -> Path:
    return CONFIGS / f"{name}.toml"


def run_train_gan(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """train-gan's entry point in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["train-gan", *map(str, args)])
    with pytest.raises(SystemExit) as stop:
        train_gan()
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def trained_with(name: str) -> dict:
    """The manifest's training.config, every field filled in."""
    recorded = MODELS[name].manifest.training["config"]
    assert set(recorded) <= set(FIELDS), f"{name}: unknown fields {set(recorded) - set(FIELDS)}"
    # Manifests exported before an option existed lack it; those runs had its default (each option came
    # with the default that keeps the earlier behaviour, as load_run_config assumes).
    return {field: recorded.get(field, spec.default) for field, spec in FIELDS.items()}


def test_every_shipped_model_has_one_recipe_and_every_recipe_a_model():
    assert len(MODELS) >= 11, sorted(MODELS)  # the 11 shipped GANs; artifacts/mnist_classifier is no GAN
    assert all(model.manifest is not None for model in MODELS.values())
    files = sorted(path.name for path in CONFIGS.iterdir())
    assert all(file.endswith(".toml") for file in files), files
    stems = {file.removesuffix(".toml") for file in files}
    assert sorted(set(MODELS) - stems) == [], "shipped models without configs/NAME.toml"
    assert sorted(stems - set(MODELS) - set(NOT_SHIPPED)) == [], "configs/*.toml of no shipped model"
    assert sorted(set(NOT_SHIPPED) & set(MODELS)) == [], "listed as not shipped but shipped"
    assert set(PARTIAL_EPOCH) <= set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recipe_resolves_to_the_manifests_config(name, monkeypatch, capsys):
    code, out, err = run_train_gan(monkeypatch, capsys, "--config", recipe(name), "--dry-run")
    assert code == 0, err
    resolved = json.loads(out)
    resolved.pop("run_dir")
    recorded = trained_with(name)
    differ = {
        field: {"recipe": resolved[field], "manifest": recorded[field]}
        for field in FIELDS
        if field not in NOT_COMPARED and resolved[field] != recorded[field]
    }
    assert differ == {}, f"configs/{name}.toml"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recipe_states_the_shipped_epochs(name):
    training = MODELS[name].manifest.training
    epochs = resolve_config_file(recipe(name), None).epochs  # as train-gan resolves it
    assert epochs == PARTIAL_EPOCH.get(name, training["epochs_completed"]), f"configs/{name}.toml"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recipe_names_its_preset_and_states_only_differences(name):
    stated = read_config_file(recipe(name))
    variant = stated.pop("variant", None)
    assert variant is not None, f"configs/{name}.toml names no preset (variant = ...)"
    preset = resolve(variant).to_dict()
    assert sorted(field for field, value in stated.items() if preset.get(field) == value) == [], (
        f"configs/{name}.toml restates its preset's values"
    )
    assert "device" not in stated, f"configs/{name}.toml: the device is per machine, given on the command line"


def test_preset_argument_agreeing_with_the_file_is_accepted(monkeypatch, capsys):
    code, out, err = run_train_gan(
        monkeypatch, capsys, "wgan_gp_cond", "--config", recipe("wgan_gp_cond_conv"), "--dry-run", "--seed", "3"
    )
    assert code == 0, err
    resolved = json.loads(out)
    assert (resolved["variant"], resolved["arch"], resolved["seed"]) == ("wgan_gp_cond", "conv", 3)


def one_line_error(code: int, out: str, err: str) -> str:
    """train-gan's bad-input contract: exit 2 and one `train-gan: error: ...` line; returns that line."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("train-gan: error: "), err
    return lines[0]


def test_preset_argument_conflicting_with_the_file_is_one_line_error(monkeypatch, capsys):
    line = one_line_error(
        *run_train_gan(monkeypatch, capsys, "vanilla", "--config", recipe("wgan_gp_cond_conv"), "--dry-run")
    )
    assert "'vanilla' conflicts with variant = 'wgan_gp_cond'" in line, line


def test_file_without_variant_needs_the_preset_argument(tmp_path, monkeypatch, capsys):
    config = tmp_path / "c.toml"
    config.write_text("seed = 7\n")
    line = one_line_error(*run_train_gan(monkeypatch, capsys, "--config", config, "--dry-run"))
    assert "missing VARIANT" in line and "names no preset" in line, line
    code, out, err = run_train_gan(monkeypatch, capsys, "wgan_gp", "--config", config, "--dry-run")
    assert code == 0, err
    resolved = json.loads(out)
    assert (resolved["variant"], resolved["seed"]) == ("wgan_gp", 7)
