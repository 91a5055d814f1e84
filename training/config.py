"""The resolved training configuration: defaults <- preset <- config file <- command line."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from common.errors import UserError
from common.mnist import HOLDOUT_IMAGES
from common.validation import DEVICES
from evaluation.protocols import PROTOCOLS

from .objectives import CONSTRAINTS, OBJECTIVES, OPTIMIZERS
from .presets import PRESETS
from .priors import NUM_DIGITS, PRIORS, build_prior


class ConfigError(UserError):
    """A bad configuration value; the CLI prints its message on one line and exits 2."""


def _opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    variant: str = _opt("vanilla", "preset name (train-gan --list)")
    arch: str = _opt("mlp", "mlp (course template) or conv (DCGAN-style)")
    critic_arch: str = _opt("same", "critic architecture: same (as arch), mlp or conv")
    prior: str = _opt("normal", "latent prior: " + ", ".join(PRIORS))
    objective: str = _opt("bce", "adversarial loss: " + ", ".join(OBJECTIVES))
    lipschitz: str = _opt("none", "critic constraint: " + ", ".join(CONSTRAINTS))
    condition_generator: bool = _opt(False, "feed the prior's label to G")
    condition_critic: bool = _opt(False, "feed the label to the critic (D(x, i))")
    latent_dim: int = _opt(100, "latent size d")
    num_components: int = _opt(10, "mixture components K")
    mixture_radius: float = _opt(0.1, "mixture means mu_k ~ U[-c, c]^d: c")
    mixture_sigma: float = _opt(0.15, "mixture standard deviation sigma (initial value when learned)")
    label_embed_dim: int = _opt(
        10,
        "size of the label embedding concatenated to the generator's and the MLP "
        "critic's inputs (the conv critic projects the label instead)",
    )
    conv_width: int = _opt(32, "channel width w of the conv architecture")
    critic_depth: int = _opt(
        1, "conv layers at each of the conv critic's two resolutions (1 = DCGAN-style; each extra one is a 3x3 conv)"
    )
    clip_value: float = _opt(0.09, "weight clipping bound c")
    gp_lambda: float = _opt(10.0, "gradient penalty weight lambda")
    n_critic: int = _opt(1, "critic steps per generator step")
    lr_g: float = _opt(2e-4, "generator (and prior) learning rate")
    lr_d: float = _opt(2e-4, "critic learning rate")
    lr_decay_start: int = _opt(
        0, "epoch after which both learning rates fall linearly to 0 at the last epoch (0 = constant)"
    )
    optimizer: str = _opt("adam", "adam (betas beta1, beta2) or rmsprop (the WGAN paper's choice with weight clipping)")
    beta1: float = _opt(0.9, "Adam beta1")
    beta2: float = _opt(0.999, "Adam beta2")
    batch_size: int = _opt(64, "batch size")
    epochs: int = _opt(100, "epochs (an epoch = one pass of critic steps over the training images)")
    ema_decay: float = _opt(0.0, "EMA decay of the generator weights (0 = off)")
    seed: int = _opt(0, "random seed")
    device: str = _opt("auto", "auto, cpu or cuda")
    precision: str = _opt("fp32", "fp32 or bf16 (autocast)")
    holdout: int = _opt(
        HOLDOUT_IMAGES,
        "last N training images held out (DRS calibration, realism scores, `eval-gan tune-spread`), never trained on",
    )
    train_limit: int = _opt(0, "train on the first N images only (0 = all)")
    eval_every: int = _opt(5, "epochs between evaluations (sample grid, metrics, plots)")
    eval_protocol: str = _opt(
        "proxy", "metrics at each evaluation: proxy (MNIST classifier, fast), p0 (Inception, slow on CPU) or none"
    )
    eval_samples: int = _opt(10_000, "images generated for each evaluation's metrics")
    checkpoint_every: int = _opt(1, "epochs between checkpoints")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def critic_architecture(self) -> str:
        return self.arch if self.critic_arch == "same" else self.critic_arch

    @property
    def architecture(self) -> str:
        """The pair's name in manifests and tables: mlp, conv, or e.g. "mlp G + conv D" when they differ."""
        if self.critic_architecture == self.arch:
            return self.arch
        return f"{self.arch} G + {self.critic_architecture} D"

    @property
    def architecture_tag(self) -> str:
        """The pair's name in run folder and artifact names: mlp, conv, or e.g. mlp_convd."""
        if self.critic_architecture == self.arch:
            return self.arch
        return f"{self.arch}_{self.critic_architecture}d"


FIELDS = {f.name: f for f in fields(TrainConfig)}
CHOICES = {
    "arch": ("mlp", "conv"),
    "critic_arch": ("same", "mlp", "conv"),
    "prior": tuple(PRIORS),
    "objective": tuple(OBJECTIVES),
    "lipschitz": tuple(CONSTRAINTS),
    "device": DEVICES,
    "precision": ("fp32", "bf16"),
    "optimizer": tuple(OPTIMIZERS),
    "eval_protocol": (*PROTOCOLS, "none"),
}
POSITIVE = (
    "latent_dim",
    "num_components",
    "label_embed_dim",
    "conv_width",
    "critic_depth",
    "n_critic",
    "lr_g",
    "lr_d",
    "batch_size",
    "epochs",
    "eval_every",
    "eval_samples",
    "checkpoint_every",
    "clip_value",
    "mixture_sigma",
)
# Every count, size and seed fits a 32-bit int: far beyond any sensible value, within what torch takes.
MAX_INT = 2**31 - 1
NON_NEGATIVE = ("mixture_radius", "gp_lambda", "holdout", "train_limit", "seed", "lr_decay_start")


def read_config_file(path: Path) -> dict:
    """Overrides from a TOML or YAML file with TrainConfig's field names as keys."""
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"config file {path} must end in .toml, .yaml or .yml")
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as error:  # tomllib.TOMLDecodeError, yaml.YAMLError: any parse failure
        raise ConfigError(f"config file {path} is not valid: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table of option = value")
    return data


def resolve_config_file(path: Path, variant: str | None, *override_layers: dict) -> TrainConfig:
    """`train-gan [VARIANT] --config FILE`: the preset is the file's `variant` key or VARIANT (both: they must
    agree), then the file's other values, then each override layer; validated."""
    values = read_config_file(path)
    named = values.pop("variant", None)
    if named is not None and not isinstance(named, str):
        raise ConfigError(f"variant in {path} must be a preset name, got {named!r}")
    if variant is not None and named is not None and named != variant:
        raise ConfigError(f"preset {variant!r} conflicts with variant = {named!r} in {path}: give one, or the same")
    if variant is None and named is None:
        raise ConfigError(f'missing VARIANT: {path} names no preset (add variant = "PRESET" to it, or give PRESET)')
    return resolve(variant or named, values, *override_layers)


def _coerce(name: str, value):
    kind = FIELDS[name].type
    expected = {"int": int, "float": (int, float), "bool": bool, "str": str}[kind]
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, expected):
        raise ConfigError(f"{name} must be a {kind}, got {value!r}")
    if kind == "float":
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            number = math.inf
        # nan slips through every range check below (nan > 0 and nan < 0 are both False)
        if not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        return number
    return value


def resolve(variant: str, *override_layers: dict) -> TrainConfig:
    """Defaults, then the preset, then each override layer in order; validated."""
    if variant not in PRESETS:
        raise ConfigError(f"unknown preset {variant!r}; valid presets: {', '.join(PRESETS)}")
    values = {"variant": variant, **PRESETS[variant].overrides}
    for layer in override_layers:
        for name, value in layer.items():
            if name not in FIELDS:
                raise ConfigError(f"unknown option {name!r}; valid options: {', '.join(FIELDS)}")
            if value is not None:
                values[name] = _coerce(name, value)
    if values.get("variant", variant) != variant:
        raise ConfigError("the preset is chosen by the VARIANT argument, not by the 'variant' option")
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(cfg, name)!r}")
    for name in POSITIVE:
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(cfg, name)}")
    for name in NON_NEGATIVE:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    for name, field_ in FIELDS.items():
        if field_.type == "int" and getattr(cfg, name) > MAX_INT:
            raise ConfigError(f"{name} must be <= {MAX_INT:,}, got {getattr(cfg, name):,}")
    if cfg.lr_decay_start >= cfg.epochs:
        raise ConfigError(f"lr_decay_start must be < epochs ({cfg.epochs}), got {cfg.lr_decay_start}")
    if not 0 <= cfg.ema_decay < 1:
        raise ConfigError(f"ema_decay must be in [0, 1), got {cfg.ema_decay}")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    protocol = PROTOCOLS.get(cfg.eval_protocol)
    if protocol is not None and cfg.eval_samples < protocol.min_samples:
        raise ConfigError(
            f"eval_samples must be >= {protocol.min_samples} (precision/recall with k={max(protocol.ks)}), "
            f"got {cfg.eval_samples}"
        )
    if cfg.prior == "gmm_indexed" and cfg.num_components != NUM_DIGITS:
        raise ConfigError(f"prior gmm_indexed uses digits as component indices: num_components must be {NUM_DIGITS}")
    # Only the prior's labels matter here: build it on the meta device (no memory, no draw from the
    # global RNG) at latent size 1, whatever sizes were asked for.
    with torch.device("meta"):
        prior = build_prior(cfg.prior, 1, cfg.num_components, cfg.mixture_radius, cfg.mixture_sigma)
    if cfg.condition_critic and not prior.labels_are_digits:
        raise ConfigError(
            f"condition_critic needs digit labels: prior {cfg.prior} has none (use class_gaussian or gmm_indexed)"
        )
    if cfg.condition_generator and prior.num_labels == 0:
        raise ConfigError(f"condition_generator needs a prior that draws labels, not {cfg.prior}")


def load_run_config(run_dir: Path) -> TrainConfig:
    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"{path} is missing or unreadable ({type(error).__name__}); is {run_dir} a run folder?"
        ) from None
    variant = data.pop("variant", None)
    if not isinstance(variant, str):
        raise ConfigError(f"{path} names no preset")
    data.setdefault("optimizer", "adam")  # every run from before the option existed used Adam
    return resolve(variant, data)
