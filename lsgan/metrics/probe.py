"""Linear probe: how linearly separable the classes are in a feature space (scikit-learn's
logistic regression). Not a ``torchmetrics.Metric``: it fits a classifier on one split and tests it on
another, a training run rather than a state summed over steps or ranks."""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def _np(a: ArrayLike) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def linear_probe(train_feats: ArrayLike, train_labels: ArrayLike, test_feats: ArrayLike, test_labels: ArrayLike,
                 C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> float:
    """Test accuracy of a multinomial logistic regression fitted on standardised train features.

    Standardisation statistics come from the training features only.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, ytr, xte, yte = _np(train_feats), _np(train_labels), _np(test_feats), _np(test_labels)
    if xtr.ndim != 2 or xte.ndim != 2 or xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train_feats / test_feats: need N×d with equal d, got {xtr.shape} and {xte.shape}")
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError("features and labels must have the same number of rows")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed))
    model.fit(xtr.astype(np.float64), ytr)
    return float((model.predict(xte.astype(np.float64)) == yte).mean())
