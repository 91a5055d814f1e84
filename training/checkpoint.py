"""Checkpoints: one safetensors file whose header metadata holds the JSON state.

Tensors and the JSON that describes them live in one file, replaced atomically, so a kill at any
moment leaves either the previous checkpoint or the new one, never a mismatched pair.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from common.errors import UserError
from common.files import atomic_write_bytes

STATE_KEY = "state_json"


class CheckpointError(UserError):
    """A checkpoint that cannot be read; the CLI prints it on one line and exits 2."""


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    cpu_tensors = {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in tensors.items()}
    atomic_write_bytes(path, save_safetensors(cpu_tensors, metadata={STATE_KEY: json.dumps(state)}))


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror}") from None
    try:
        tensors = load_safetensors(raw)
        header_len = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8 : 8 + header_len]).get("__metadata__", {})
        state = json.loads(metadata[STATE_KEY])
    except (SafetensorError, ValueError, KeyError, TypeError):
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not one of ours (not a train-gan safetensors file)"
        ) from None
    return tensors, state


def prefixed(prefix: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{name}": tensor for name, tensor in state_dict.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = len(prefix) + 1
    return {name[start:]: tensor for name, tensor in tensors.items() if name.startswith(prefix + ".")}


def optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """Flatten an optimizer's per-parameter state into named tensors; param groups stay JSON."""
    state_dict = optimizer.state_dict()
    tensors = {
        f"{prefix}.{param_id}.{key}": value
        for param_id, param_state in state_dict["state"].items()
        for key, value in param_state.items()
    }
    return tensors, state_dict["param_groups"]


def restore_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict, param_groups: list) -> None:
    state: dict[int, dict] = {}
    for name, tensor in unprefixed(prefix, tensors).items():
        param_id, key = name.split(".", 1)
        state.setdefault(int(param_id), {})[key] = tensor
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
