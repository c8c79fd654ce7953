"""Decoding over time: cross-validated linear (ridge) classifiers of a trial's content from a signal, one per
step of the trial, all steps at once.

A ridge classifier regresses the one-hot class onto the standardised features (each feature's mean and
standard deviation over all trials: no label enters them) with penalty ``ridge * n_train``, and predicts
the class with the largest output.
With more features than training trials it is solved in its dual (kernel) form, which gives the same
weights. Every step, every fold and every label set (the content and its shuffled controls) share one
Gram matrix per fold: the decoders of all steps are one batched linear solve.

Folds are drawn by trial identity (``groups``): trials with identical inputs (twins: a finite task's
analysis set repeats contents) always share a fold, so a decoder is never scored on the twin of a trial
it was trained on. Without this, a decoder that memorises trials scores above chance on twins, and the
shuffled-label control cannot see it (a twin's shuffled label is unrelated to its twin's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Penalty of the ridge classifier, relative to the number of training trials.
RIDGE = 0.1
N_FOLDS = 5
#: Quantile bins a continuous content (an orientation, a stimulus value) is decoded as.
N_BINS = 4


def as_classes(values: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Integer classes ``[B]``: integer values as they are (relabelled 0..C-1), continuous values in
    ``n_bins`` quantile bins (about equally many trials each)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.bool_):
        return np.unique(values, return_inverse=True)[1].reshape(-1)
    edges = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def chance_level(classes: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class."""
    return float(np.bincount(classes).max() / len(classes))


def fold_index(
    n_trials: int, n_folds: int, rng: np.random.Generator, groups: np.ndarray | None = None
) -> np.ndarray:
    """The fold of every trial ``[B]``: a random, balanced assignment, of whole groups when ``groups
    [B]`` is given (trials of one group always share a fold; groups are dealt to folds in a random order,
    the largest first, each to the fold with the fewest trials so far)."""
    if groups is None:
        return rng.permutation(np.arange(n_trials) % n_folds)
    names, inverse, sizes = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    order = rng.permutation(len(names))
    order = order[np.argsort(-sizes[order], kind="stable")]
    folds_of_group = np.zeros(len(names), dtype=int)
    filled = np.zeros(n_folds, dtype=int)
    for g in order:
        k = int(np.argmin(filled))
        folds_of_group[g] = k
        filled[k] += sizes[g]
    return folds_of_group[inverse.reshape(-1)]


def trial_groups(inputs: np.ndarray | torch.Tensor) -> np.ndarray:
    """Trial identity ``[B]`` from the inputs ``[T, B, D]``: trials with identical inputs at every step
    share a label (twins)."""
    x = torch.as_tensor(inputs).detach().cpu()
    rows = x.transpose(0, 1).reshape(x.shape[1], -1).numpy()
    return np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)


def cv_accuracy(
    features: np.ndarray | torch.Tensor,
    labels: list[np.ndarray],
    n_folds: int = N_FOLDS,
    ridge: float = RIDGE,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Cross-validated accuracy of ridge classifiers ``[L, T]``: for every label set ``labels[l] [B]``
    (integer classes) decoded at every step from ``features [T, B, F]``, with folds of whole ``groups``
    (:func:`fold_index`).

    The features are standardised over all trials (their mean and spread, which do not depend on the
    labels); the products of the features are computed once (float32, ``[T, F, F]`` or ``[T, B, B]``)
    and every fold's ridge solve (float64) uses its blocks."""
    X = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features)
    X = X.detach().to(torch.float32)
    T, B, F = X.shape
    std = X.std(1, keepdim=True)
    X = (X - X.mean(1, keepdim=True)) / torch.where(std > 1e-6, std, torch.ones_like(std))
    folds = fold_index(B, n_folds, np.random.default_rng(seed), groups)
    onehots = [np.eye(int(y.max()) + 1)[y] for y in labels]
    widths = [o.shape[1] for o in onehots]
    Y = torch.as_tensor(np.concatenate(onehots, axis=1))  # [B, sum C] float64
    scores = torch.zeros(T, B, Y.shape[1], dtype=torch.float64)
    primal = F <= B - B // n_folds
    gram = (X.transpose(1, 2) @ X if primal else X @ X.transpose(1, 2)).double()  # [T, F, F] | [T, B, B]
    Xd = X.double()
    for k in range(n_folds):
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        Ytr = Y[train]
        y_mean = Ytr.mean(0)
        penalty = ridge * len(train)
        if primal:
            held = Xd[:, test]
            inner = gram - held.transpose(1, 2) @ held + penalty * torch.eye(F, dtype=torch.float64)
            weights = torch.linalg.solve(inner, Xd[:, train].transpose(1, 2) @ (Ytr - y_mean))  # [T, F, C]
            scores[:, test] = held @ weights + y_mean
        else:
            inner = gram[:, train][:, :, train] + penalty * torch.eye(len(train), dtype=torch.float64)
            dual = torch.linalg.solve(inner, (Ytr - y_mean).expand(T, -1, -1))  # [T, n, C]
            scores[:, test] = gram[:, test][:, :, train] @ dual + y_mean
    out = np.zeros((len(labels), T))
    start = 0
    for i, (y, width) in enumerate(zip(labels, widths, strict=True)):
        predicted = scores[:, :, start : start + width].argmax(-1).numpy()  # [T, B]
        out[i] = (predicted == y[None, :]).mean(1)
        start += width
    return out


@dataclass
class DecodingCurves:
    """Accuracy over the steps of a trial, per content: decoded from the signal and from shuffled labels."""

    accuracy: dict[str, np.ndarray]  # content -> [T]
    shuffled: dict[str, np.ndarray]  # content -> [T], mean over the shuffles
    chance: dict[str, float]  # content -> majority-class accuracy


def decode_over_time(
    features: np.ndarray | torch.Tensor,
    contents: dict[str, np.ndarray],
    n_shuffles: int = 2,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> DecodingCurves:
    """Per step and content, the cross-validated accuracy of a linear decoder of the content from
    ``features [T, B, F]``, and the same with the labels shuffled across trials (the control: chance,
    whatever the features); folds of whole ``groups`` (trial identity, :func:`trial_groups`)."""
    rng = np.random.default_rng(seed)
    names = list(contents)
    classes = [as_classes(contents[name]) for name in names]
    shuffled = [rng.permutation(y) for _ in range(n_shuffles) for y in classes]
    accuracy = cv_accuracy(features, classes + shuffled, seed=seed, groups=groups)
    real, control = accuracy[: len(names)], accuracy[len(names) :].reshape(n_shuffles, len(names), -1)
    return DecodingCurves(
        accuracy=dict(zip(names, real, strict=True)),
        shuffled=dict(zip(names, control.mean(0), strict=True)),
        chance={name: chance_level(y) for name, y in zip(names, classes, strict=True)},
    )
