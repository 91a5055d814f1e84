"""DRS calibration (Azadi et al. 2019; docs/artifacts.md): the rejection head, chosen on held-out data, and its tables.

1. Calibration data: held-out real MNIST images (label 1: the run's held-out tail of MNIST train, never trained on
   and never the test set P0 scores against) against images of the final generator (label 0), split into a
   training part, a selection part (early stopping and the choice of head) and a report part (the AUC and accuracy
   the manifest records; no choice reads it).
2. Candidate heads (HEAD_KINDS), each trained with class-balanced BCE on the training part:
   score      sigmoid(a * s(x) + b) on the frozen critic's raw score s (two parameters; the original head);
   features   a small MLP on the frozen critic's last hidden layer h, plus a per-digit projection <u_y, h> for
              conditional models (as the conv critic's own label projection);
   classifier the same MLP and projection on the proxy MNIST classifier's 64-d penultimate features (frozen, in
              the graphs): it ranks by digit shape, what Inception's and the classifier's features see, where the
              critic's features also see cues those barely do (docs/experiment-log.md, 2026-12-07);
   finetuned  a copy of the critic fine-tuned as a discriminator (early stopping), then a score head on it.
   `auto` keeps the candidate with the best AUC on the selection part.
3. D~_M = max D~ over a burn-in of generated images (>= 10,000 from the CLI).
4. F = D~ - D~_M - log(1 - exp(D~ - D~_M - eps)) on the burn-in sample; for each target acceptance rate, gamma is
   solved so the mean of sigmoid(F - gamma) over the burn-in equals the rate (per digit as well for conditional
   models, so `--digit 3 --drs 0.2` accepts 20 % of threes).

A model is given as a frozen critic (torch) and an ImageSampler, so one path serves a fresh run (its torch generator)
and a shipped export (its generator graph on onnxruntime, export/reexport.py).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import mannwhitneyu
from torch import nn
from tqdm import tqdm

from common.drs import EPSILON, RATE_GRID, drs_f, gamma_table
from common.manifest import DRS_HEAD_KINDS, DrsCalibration
from evaluation.proxy_classifier import load_classifier
from training.data import to_signed_unit
from training.models import GeneratorBundle
from training.priors import NUM_DIGITS

MIN_BURN_IN = 10_000  # SPEC: D~_M over a burn-in of at least 10k samples
HEAD_KINDS = DRS_HEAD_KINDS  # what the manifest accepts is what export trains
AUTO = "auto"
# Shares of the held-out real images; the rest trains. 15 % of 5,000 is 750 real images per part, so an AUC is
# known to about +-0.01.
SELECTION_SHARE = REPORT_SHARE = 0.15
FAKES_PER_REAL = 2  # in the training part: generated images cost little, real ones are all there are
# A little L2 on the standardised slope keeps the fit finite when real and fake separate perfectly.
HEAD_L2 = 1e-4
FEATURE_HIDDEN, FEATURE_STEPS, FEATURE_LR, FEATURE_DECAY = 64, 400, 1e-2, 1e-3
FEATURE_CHECK_EVERY = 10  # steps between selection-AUC checks (early stopping)
FINETUNE_LR, FINETUNE_BATCH, FINETUNE_EPOCHS, FINETUNE_PATIENCE = 1e-4, 64, 12, 3
_BATCH = 1000

# n, rng -> (images in [-1, 1] [n, 1, 28, 28], labels [n]) of the generator being calibrated
ImageSampler = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def sample_labels(conditional: bool, label_weights: torch.Tensor | None, n: int, rng: torch.Generator) -> torch.Tensor:
    """Labels as the runtime samples freely: every digit equally often, mixture weights, or none."""
    if conditional:
        return torch.arange(n) % NUM_DIGITS
    if label_weights is not None:
        return torch.multinomial(label_weights, n, replacement=True, generator=rng)
    return torch.zeros(n, dtype=torch.long)


def generator_sampler(generator: GeneratorBundle, latent_dim: int) -> ImageSampler:
    """A frozen torch generator (a run being exported) as an ImageSampler."""
    prior = generator.prior
    weights = prior.label_weights() if prior.num_labels else None

    @torch.no_grad()
    def sample(n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        labels = sample_labels(prior.labels_are_digits, weights, n, rng)
        return generator(torch.randn(n, latent_dim, generator=rng), labels), labels

    return sample


class ScoreHead(nn.Module):
    """D~ = scale * critic score + bias."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("bias", torch.tensor(bias, dtype=torch.float32))

    def forward(self, critic: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return critic(images, labels) * self.scale + self.bias


def read_features(
    critic: nn.Module, classifier: nn.Module | None, images: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """What a FeatureHead reads of images in [-1, 1]: the critic's last hidden layer, or the classifier's."""
    if classifier is None:
        return critic.hidden(images, labels)
    return classifier.body((images + 1) / 2)  # the classifier reads [0, 1]


class FeatureHead(nn.Module):
    """D~ = MLP(h) (+ <u_y, h> with a learned u per digit), h standardised features of the image: the critic's last
    hidden layer, or the proxy MNIST classifier's penultimate layer when a classifier is given (frozen; its weights
    travel in the graphs as head.classifier.*)."""

    def __init__(
        self, center: torch.Tensor, spread: torch.Tensor, num_labels: int, classifier: nn.Module | None = None
    ):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("center", center.float())
        self.register_buffer("spread", spread.float())
        width = len(center)
        self.mlp = nn.Sequential(nn.Linear(width, FEATURE_HIDDEN), nn.LeakyReLU(0.2), nn.Linear(FEATURE_HIDDEN, 1))
        self.projection = nn.Embedding(num_labels, width) if num_labels else None
        if self.projection is not None:
            nn.init.zeros_(self.projection.weight)  # start as an unconditional head

    def from_hidden(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = (hidden - self.center) / self.spread
        logit = self.mlp(h).squeeze(1)
        if self.projection is not None:
            logit = logit + (self.projection(labels) * h).sum(1)
        return logit

    def forward(self, critic: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.from_hidden(read_features(critic, self.classifier, images, labels), labels)


@dataclasses.dataclass
class LabelledImages:
    """Real (target 1) and generated (target 0) images in [-1, 1] with their labels."""

    images: torch.Tensor
    labels: torch.Tensor
    targets: torch.Tensor

    @classmethod
    def of(cls, real: tuple[torch.Tensor, torch.Tensor], fake: tuple[torch.Tensor, torch.Tensor]) -> LabelledImages:
        targets = torch.cat([torch.ones(len(real[0])), torch.zeros(len(fake[0]))])
        return cls(torch.cat([real[0], fake[0]]), torch.cat([real[1], fake[1]]).long(), targets)

    def class_weights(self) -> torch.Tensor:
        """Per-sample weights that give both classes the same total weight (1 in all), whatever their counts."""
        real = self.targets.sum()
        return torch.where(self.targets > 0, 0.5 / real, 0.5 / (len(self.targets) - real))


@dataclasses.dataclass
class Candidate:
    critic: nn.Module  # frozen
    head: nn.Module  # frozen
    selection_auc: float


@torch.no_grad()
def logits_of(critic: nn.Module, head: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """D~ (float64) of images in [-1, 1], in batches."""
    return (
        torch.cat([head(critic, images[i : i + _BATCH], labels[i : i + _BATCH]) for i in range(0, len(images), _BATCH)])
        .double()
        .numpy()
    )


def roc_auc(logits: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor) -> float:
    """Area under the ROC curve: the chance that a random real image scores above a random generated one (ties 1/2),
    which is the Mann-Whitney U statistic over the product of the class sizes."""
    logits, real = np.asarray(logits, dtype=np.float64), np.asarray(targets) > 0
    return float(mannwhitneyu(logits[real], logits[~real]).statistic / (real.sum() * (~real).sum()))


def fit_logistic_head(real_scores: np.ndarray, fake_scores: np.ndarray) -> tuple[float, float]:
    """(scale, bias) of the class-balanced BCE fit of sigmoid(scale * s + bias): real 1, fake 0."""
    scores = torch.from_numpy(np.concatenate([real_scores, fake_scores])).double()
    targets = torch.cat([torch.ones(len(real_scores)), torch.zeros(len(fake_scores))]).double()
    weights = torch.where(targets > 0, 0.5 / len(real_scores), 0.5 / len(fake_scores)).double()
    center, spread = scores.mean(), scores.std().clamp_min(1e-12)
    standard = (scores - center) / spread  # standardised so one L2 weight suits every critic's scale
    line = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # slope, intercept
    optimizer = torch.optim.LBFGS(
        [line], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def loss_fn():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(line[0] * standard + line[1], targets, reduction="none") * weights
        loss = loss.sum() + HEAD_L2 * line[0] ** 2
        loss.backward()
        return loss

    optimizer.step(loss_fn)
    slope, intercept = line.detach().tolist()
    scale = slope / float(spread)
    return scale, intercept - scale * float(center)


def train_score_head(critic: nn.Module, train: LabelledImages, selection: LabelledImages) -> Candidate:
    head = ScoreHead()  # scale 1, bias 0: the raw score, fitted below
    scores = logits_of(critic, head, train.images, train.labels)
    real = train.targets.numpy() > 0
    head = ScoreHead(*fit_logistic_head(scores[real], scores[~real]))
    return Candidate(
        critic, head, roc_auc(logits_of(critic, head, selection.images, selection.labels), selection.targets)
    )


@torch.no_grad()
def _hidden(critic: nn.Module, classifier: nn.Module | None, data: LabelledImages) -> torch.Tensor:
    return torch.cat(
        [
            read_features(critic, classifier, data.images[i : i + _BATCH], data.labels[i : i + _BATCH])
            for i in range(0, len(data.images), _BATCH)
        ]
    )


def train_feature_head(
    critic: nn.Module,
    train: LabelledImages,
    selection: LabelledImages,
    num_labels: int,
    seed: int,
    classifier: nn.Module | None = None,
) -> Candidate:
    """Full-batch Adam on the cached features (the critic's, or the frozen classifier's where given); the step with
    the best selection AUC is kept."""
    torch.manual_seed(seed)
    hidden, selection_hidden = _hidden(critic, classifier, train), _hidden(critic, classifier, selection)
    head = FeatureHead(hidden.mean(0), hidden.std(0).clamp_min(1e-6), num_labels, classifier)
    # A frozen classifier's weights get no gradient, and Adam leaves them as they are.
    optimizer = torch.optim.Adam(head.parameters(), FEATURE_LR, weight_decay=FEATURE_DECAY)
    weights = train.class_weights()
    best = (-1.0, copy.deepcopy(head.state_dict()))
    for step in range(1, FEATURE_STEPS + 1):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(
            head.from_hidden(hidden, train.labels), train.targets, reduction="none"
        )
        (loss * weights).sum().backward()
        optimizer.step()
        if step % FEATURE_CHECK_EVERY == 0:
            with torch.no_grad():
                auc = roc_auc(head.from_hidden(selection_hidden, selection.labels), selection.targets)
            if auc > best[0]:
                best = (auc, copy.deepcopy(head.state_dict()))
    head.load_state_dict(best[1])
    return Candidate(critic, head.eval().requires_grad_(False), best[0])


def train_finetuned_critic(critic: nn.Module, train: LabelledImages, selection: LabelledImages, seed: int) -> Candidate:
    """A copy of the critic trained on balanced minibatches with BCE; the epoch with the best selection AUC is kept
    (at most FINETUNE_EPOCHS, stopping after FINETUNE_PATIENCE epochs without a better one)."""
    generator = torch.Generator().manual_seed(seed)
    tuned = copy.deepcopy(critic).train().requires_grad_(True)
    optimizer = torch.optim.Adam(tuned.parameters(), FINETUNE_LR, betas=(0.5, 0.999))
    real_rows, fake_rows = torch.nonzero(train.targets > 0).squeeze(1), torch.nonzero(train.targets == 0).squeeze(1)
    raw = ScoreHead()
    best, since_best = (-1.0, copy.deepcopy(tuned.state_dict())), 0
    for _ in range(FINETUNE_EPOCHS):
        tuned.train()
        real_order = real_rows[torch.randperm(len(real_rows), generator=generator)]
        fake_order = fake_rows[torch.randperm(len(fake_rows), generator=generator)]
        for start in range(0, len(real_order), FINETUNE_BATCH):
            rows = torch.cat([real_order[start : start + FINETUNE_BATCH], fake_order[start : start + FINETUNE_BATCH]])
            optimizer.zero_grad()
            loss = F.binary_cross_entropy_with_logits(
                tuned(train.images[rows], train.labels[rows]), train.targets[rows]
            )
            loss.backward()
            optimizer.step()
        tuned.eval()
        auc = roc_auc(logits_of(tuned, raw, selection.images, selection.labels), selection.targets)
        if auc > best[0]:
            best, since_best = (auc, copy.deepcopy(tuned.state_dict())), 0
        else:
            since_best += 1
            if since_best >= FINETUNE_PATIENCE:
                break
    tuned.load_state_dict(best[1])
    return train_score_head(tuned.eval().requires_grad_(False), train, selection)


def _generated(sample: ImageSampler, n: int, rng: torch.Generator, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [
        sample(min(_BATCH, n - start), rng)
        for start in tqdm(range(0, n, _BATCH), desc="DRS samples", unit="batch", disable=not progress, leave=False)
    ]
    return torch.cat([images for images, _ in parts]), torch.cat([labels for _, labels in parts])


def split_calibration_data(
    sample: ImageSampler, real_images: np.ndarray, real_labels: np.ndarray, rng: torch.Generator, progress: bool
) -> dict[str, LabelledImages]:
    """part name (train, selection, report) -> its real images and generated ones (FAKES_PER_REAL times as many in
    training, as many in the others)."""
    order = torch.randperm(len(real_images), generator=rng)
    images, labels = to_signed_unit(real_images)[order], torch.from_numpy(real_labels).long()[order]
    held = [max(1, round(share * len(order))) for share in (SELECTION_SHARE, REPORT_SHARE)]
    sizes = {"train": len(order) - sum(held), "selection": held[0], "report": held[1]}
    parts, start = {}, 0
    for name, size in sizes.items():
        real = (images[start : start + size], labels[start : start + size])
        start += size
        parts[name] = LabelledImages.of(
            real, _generated(sample, size * (FAKES_PER_REAL if name == "train" else 1), rng, progress)
        )
    return parts


def choose_head(
    critic: nn.Module, parts: dict[str, LabelledImages], head_kind: str, num_labels: int, seed: int
) -> tuple[str, Candidate, dict[str, dict]]:
    """(kind, candidate, {kind: {selection_auc, held_out_auc}}) of `head_kind`, or of the best candidate for AUTO."""
    train, selection, report = parts["train"], parts["selection"], parts["report"]
    trainers = {
        "score": lambda: train_score_head(critic, train, selection),
        "features": lambda: train_feature_head(critic, train, selection, num_labels, seed),
        "finetuned": lambda: train_finetuned_critic(critic, train, selection, seed),
        "classifier": lambda: train_feature_head(
            critic, train, selection, num_labels, seed, load_classifier()[0].requires_grad_(False)
        ),
    }
    candidates = {kind: trainers[kind]() for kind in (HEAD_KINDS if head_kind == AUTO else (head_kind,))}
    summary = {
        kind: {
            "selection_auc": round(candidate.selection_auc, 4),
            "held_out_auc": round(
                roc_auc(logits_of(candidate.critic, candidate.head, report.images, report.labels), report.targets), 4
            ),
        }
        for kind, candidate in candidates.items()
    }
    kind = max(candidates, key=lambda name: candidates[name].selection_auc)
    return kind, candidates[kind], summary


def calibrate(
    critic: nn.Module,
    sample: ImageSampler,
    real_images: np.ndarray,
    real_labels: np.ndarray,
    conditional: bool,
    num_labels: int,
    head_kind: str = AUTO,
    burn_in: int = MIN_BURN_IN,
    seed: int = 0,
    progress: bool = False,
) -> tuple[nn.Module, nn.Module, DrsCalibration]:
    """(critic, head, calibration): train and choose the head, estimate D~_M, solve the gamma tables.

    critic: frozen; the returned critic is it, or its fine-tuned copy. real_images: uint8 [N, 28, 28] held-out MNIST
    train images; real_labels: their digits. num_labels: labels the critic takes (0: none).
    """
    rng = torch.Generator().manual_seed(seed)
    parts = split_calibration_data(sample, real_images, real_labels, rng, progress)
    kind, chosen, candidates = choose_head(critic, parts, head_kind, num_labels if conditional else 0, seed)
    report = parts["report"]
    logits = torch.from_numpy(logits_of(chosen.critic, chosen.head, report.images, report.labels))
    real = report.targets > 0
    fit = {
        "real_images": int(real.sum()),
        "generated_images": int((~real).sum()),
        "training_real_images": int(parts["train"].targets.sum()),
        "selection_real_images": int(parts["selection"].targets.sum()),
        "bce": float(
            (
                F.binary_cross_entropy_with_logits(logits, report.targets.double(), reduction="none")
                * report.class_weights().double()
            ).sum()
        ),
        "accuracy": float(((logits > 0) == real).double().mean()),
        "auc": candidates[kind]["held_out_auc"],
        "mean_logit_real": float(logits[real].mean()),
        "mean_logit_generated": float(logits[~real].mean()),
    }

    burn_images, burn_labels = _generated(sample, burn_in, rng, progress)
    burn_logits = logits_of(chosen.critic, chosen.head, burn_images, burn_labels)
    max_logit = float(burn_logits.max())
    f = drs_f(burn_logits, max_logit, EPSILON)
    by_digit = None
    if conditional:
        digits = burn_labels.numpy()
        by_digit = [gamma_table(f[digits == digit]) for digit in range(NUM_DIGITS)]
    scale, bias = (
        (float(chosen.head.scale), float(chosen.head.bias)) if isinstance(chosen.head, ScoreHead) else (None, None)
    )
    calibration = DrsCalibration(
        HEAD_DESCRIPTIONS[kind],
        scale,
        bias,
        max_logit,
        EPSILON,
        burn_in,
        list(RATE_GRID),
        gamma_table(f),
        by_digit,
        fit,
        head_kind=kind,
        candidates=candidates,
    )
    return chosen.critic, chosen.head, calibration


HEAD_DESCRIPTIONS = {  # what the manifest says each head is
    "score": "logit = scale * raw critic score + bias (class-balanced BCE fit, frozen critic)",
    "features": "logit = MLP(critic's last hidden layer) + per-digit projection (BCE fit, frozen critic)",
    "finetuned": "logit = scale * score of a copy of the critic fine-tuned as a BCE discriminator + bias",
    "classifier": "logit = MLP(MNIST classifier's penultimate layer) + per-digit projection (BCE fit, frozen)",
}
