"""The glue between a trained method and the metric functions: which samples, which reference,
which backbone — computed one way for every method, with the protocol stored next to each number.

``MetricSuite(method, datamodule, cfg).compute(names)`` (``cfg``: the run's config; its ``data`` and
``metrics`` nodes are read, the latter as ``metrics_cfg``) returns a JSON-ready dict
``{name: result}``. A result is either ``{"value": ..., <more numbers>, "protocol": {...}}`` or
``{"skipped": "<reason>"}`` when the metric does not apply to this method / dataset or a
needed resource is missing — never a made-up number.

Generated samples: ``n_samples`` per evaluation; a conditional method covers its conditions in
proportion to its prior (evenly when it has none; ``compute(..., spread="even")``: evenly whatever
the prior, so a 2 % mode weighs as much as a 98 % one); an exemplar-conditioned method generates one
sample per real image of the evaluation split. The same samples feed every metric of one call.
Reference: ``ref_n`` images of ``ref_split`` (a fixed seeded subset, so the cache key holds).

Every metric on generated samples or on clusters is computed by a torchmetrics Metric, a class a
LightningModule can log: ``lsgan.metrics.engine`` (clustering ACC, conditional accuracy, variety, FID /
KID, PRDC, intra-FID, the class-wise KL matrix; NMI / ARI by torchmetrics' own), ``engine_modes``
(mode counts, class masses) and ``engine_exemplars`` ("like this", z_variety). ``knn`` and ``probe``
judge a method's feature space on a whole split and stay functions (their modules say why). Which
evaluator classifier reads the samples is ``lsgan.metrics.resolve``'s answer; writing a result down
(JSON, one line, a logger row) is ``lsgan.metrics.results``'.
"""
from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torchmetrics.clustering import AdjustedRandScore, NormalizedMutualInfoScore

from lsgan.console import Progress
from lsgan.data.datasets import load_dataset
from lsgan.errors import ConfigError
from lsgan.generation import exemplar_indices, generate, prior_weights
from lsgan.metrics.clustering import kmeans_ids
from lsgan.metrics.engine import (PRDC, ClasswiseKL, ClusteringAccuracy, ConditionalAccuracy, FeatureFID, FeatureKID,
                                  IntraFID, WithinConditionVariety)
from lsgan.metrics.engine_exemplars import LikeScore, ZVariety
from lsgan.metrics.engine_modes import ClassMasses, StackedMNISTModes, ToyModes
from lsgan.metrics.fid import NO_LOGITS_REASON, ReferenceStats
from lsgan.metrics.inception import batched_features, load_inception
from lsgan.metrics.knn import knn_label_agreement
from lsgan.metrics.probe import linear_probe
# evaluator resolution and the JSON helpers live in their own modules; the names are re-exported below
# (``from lsgan.metrics.suite import resolve_evaluator / to_jsonable ...`` keeps working)
from lsgan.metrics.resolve import (DEFAULT_EPOCHS, NearestCenterEvaluator, StackedMNISTEvaluator, dataset_tag,
                                   evaluator_path, evaluator_protocol, metrics_cache_dir, resolve_evaluator,
                                   train_evaluator_command)
from lsgan.metrics.results import flatten_scalars, summary, to_jsonable
from lsgan.nets.modes import eval_mode
from lsgan.toys import TOY_DATASETS, toy_centers

# Canonical metric names and what each reports (docs/evaluation.md has the full protocol).
METRICS = {
    "fid": "FID on FID-InceptionV3 pool features vs the reference split",
    "kid": "KID (unbiased polynomial-kernel MMD²) on the same features",
    "is": "Inception score — skipped: the FID network has no logits",
    "prdc": "improved precision / recall (k=prdc_k) and density / coverage on Inception features",
    "classifier_fid": "FID on the dataset evaluator classifier's penultimate features",
    "classifier_prdc": "precision / recall / density / coverage (k=prdc_k) on the evaluator's penultimate features",
    "cond_acc": "conditional generation accuracy per the evaluator (Hungarian ACC, purity, or exemplar accuracy)",
    "variety": "within-condition variety: mean pairwise distance vs the matched real class, and per-condition recall",
    "intra_fid": "intra-cluster FID (SLOGAN): each condition's samples against its matched real class, on the "
                 "evaluator's features, averaged over conditions",
    "z_variety": "exemplar methods: spread of G(z, E(x)) over z for one fixed exemplar x, vs the exemplar's real class",
    "cluster": "ACC / NMI / ARI / purity of condition_of on the evaluation split",
    "modes": "mode counting: stacked MNIST (1000 modes, KL) or ring8 / grid25 (modes, high quality, reverse KL)",
    "knn": "k-NN label agreement of the method's feature space on the evaluation split",
    "probe": "linear-probe accuracy of the method's feature space (train split → evaluation split)",
    "class_kl": "generated-mode × real-class k-NN KL matrix (NEMGAN Fig. 7) on evaluator features",
    "class_masses": "share of each class among samples drawn from the model's own prior, vs the training split's shares",
    "like": "'more like this': rank of each sample's nearest real image by distance to its exemplar (0 best, "
            "chance ~0.5), on Inception or evaluator features (metrics.like_features)",
}
ALIASES = {"inception_score": "is", "clustering": "cluster", "accuracy": "cond_acc"}
SPREADS = ("prior", "even")  # MetricSuite.compute(spread=...): samples per condition by the prior, or evenly
INCEPTION_METRICS = ("fid", "kid", "prdc")
EVALUATOR_METRICS = ("classifier_fid", "classifier_prdc", "cond_acc", "variety", "intra_fid", "z_variety", "class_kl", "class_masses")


class Skip(Exception):
    """A metric does not apply; the message is the stated reason."""


def canonical_names(names: Sequence[str], field: str = "metrics.names", companions: bool = True) -> List[str]:
    """Validated metric names (aliases resolved, duplicates dropped, order kept); requesting
    ``cond_acc`` adds ``variety`` beside it (accuracy alone rewards one perfect image per condition),
    unless ``companions`` is False (the names as requested)."""
    out: List[str] = []
    for raw in names:
        name = ALIASES.get(str(raw), str(raw))
        if name not in METRICS:
            raise ConfigError(f"{field}: {raw!r} is not accepted; accepted values: {', '.join(METRICS)}")
        if name not in out:
            out.append(name)
        if companions and name == "cond_acc" and "variety" not in out:
            out.append("variety")
    return out


# --------------------------------------------------------------------------- the suite
@dataclass
class Reference:
    """The real reference set: raw data (uint8 images or float points), clean labels, the split."""

    data: torch.Tensor
    labels: Optional[torch.Tensor]
    split: str
    split_size: int

    def floats(self) -> torch.Tensor:
        return self.data.float() / 127.5 - 1 if self.data.dtype == torch.uint8 else self.data


class MetricSuite:
    """Computes metrics for one method on one data module.

    ``evaluator``: an Evaluator-like object (``predict``/``features``/``meta``), or "auto" to
    resolve the dataset's cached one (see ``resolve_evaluator``). ``inception``: a feature
    extractor with a ``backbone`` name (default: the FID InceptionV3, loaded on first use).
    ``log``: where progress lines go (None = silent).
    """

    def __init__(self, method, datamodule, cfg, evaluator="auto", inception=None,
                 log: Optional[Callable[[str], None]] = print):
        self.method = method
        self.dm = datamodule
        self.cfg = cfg                   # the full run config (data + metrics nodes are used)
        self.metrics_cfg = cfg.metrics   # the metrics node (``self.method.mcfg`` is the method's config)
        self.log = log or (lambda s: None)
        self._evaluator, self._evaluator_reason = (None, None)
        if evaluator == "auto":
            # building the evaluator net initialises weights from the global RNG; keep that private too
            with _private_rng(int(self.metrics_cfg.get("seed", 0)), method.device):
                self._evaluator, self._evaluator_reason = resolve_evaluator(cfg, datamodule, method.device)
        elif evaluator is not None:
            self._evaluator = evaluator
        else:
            self._evaluator_reason = "no evaluator classifier given"
        self._inception = inception
        self._reference: Optional[Reference] = None
        self._ref_stats = None
        self._ref_eval_feats = None
        self._eval_feats = None
        self._fid: Dict[str, FeatureFID] = {}   # per backbone, its reference fed once
        self.artifacts: Dict[str, object] = {}   # arrays for reports (confusions, cluster ids)
        self._call: Dict[str, object] = {}   # what one compute() call shares: samples, predictions, features
        self._spread = "prior"               # how this compute() call spreads samples over conditions

    # ------------------------------------------------------------------ public
    def compute(self, names: Sequence[str], n_samples: Optional[int] = None, spread: str = "prior") -> Dict[str, dict]:
        """{name: result} for ``names`` (aliases allowed); the global RNG state is left as it was.

        ``spread``: how a conditional method's shared samples cover its conditions — "prior" (in
        proportion to its prior's weights, evenly when it has none) or "even" (the same number per
        condition: every mode scored with equal weight; ``class_masses`` is then skipped)."""
        names = canonical_names(names)
        if spread not in SPREADS:
            raise ValueError(f"spread={spread!r} is not accepted; accepted values: {', '.join(SPREADS)}")
        n = int(n_samples or self.metrics_cfg.n_samples)
        results: Dict[str, dict] = {}
        self._call = {}
        self._spread = spread
        try:
            with eval_mode(self.method), _private_rng(int(self.metrics_cfg.get("seed", 0)), self.method.device):
                for name in names:
                    start = time.time()
                    try:
                        res = getattr(self, f"_m_{name}")(n)
                    except Skip as skip:
                        res = {"skipped": str(skip)}
                    res["seconds"] = round(time.time() - start, 2)
                    results[name] = to_jsonable(res)
                    self.log(f"[lsgan] {name}: {summary(results[name])}")
        finally:
            self._call = {}
            self._spread = "prior"
        return results

    @property
    def evaluator(self):
        return self._evaluator

    # ------------------------------------------------------------------ shared pieces
    @property
    def is_image(self) -> bool:
        return len(tuple(self.dm.image_shape)) == 3

    def _need_evaluator(self):
        if self._evaluator is None:
            raise Skip(self._evaluator_reason)
        return self._evaluator

    def _need_labels(self, what: str):
        if self.dm.eval_set.clean_labels is None:
            raise Skip(f"{what} needs labels; dataset={self.cfg.data.name} has none")

    def generated(self, n: int):
        """The samples every metric of this call shares."""
        if "gen" not in self._call:
            bs = int(self.metrics_cfg.batch_size)
            if self.method.accepts_exemplars:
                self._call["gen"] = generate(self.method, n, exemplar_set=self.dm.eval_set,
                                             exemplar_indices=self._exemplar_draw(n), batch_size=bs)
            else:
                weights = prior_weights(self.method) if self._spread == "prior" else None
                self._call["gen"] = generate(self.method, n, batch_size=bs, weights=weights)
        return self._call["gen"]

    def _exemplar_draw(self, n: int) -> torch.Tensor:
        """The n evaluation-split exemplars of the exemplar protocol (a seeded draw, the same in every call)."""
        return exemplar_indices(len(self.dm.eval_set), n, int(self.metrics_cfg.get("seed", 0)))

    def _generated_predictions(self, n: int) -> torch.Tensor:
        """The evaluator's classes of the shared samples (cond_acc and class_masses read the same ones)."""
        if "eval_pred" not in self._call:
            self._call["eval_pred"] = self._need_evaluator().predict(self.generated(n).images)
        return self._call["eval_pred"]

    def _generated_eval_features(self, n: int) -> torch.Tensor:
        if "eval_feats" not in self._call:
            self._call["eval_feats"] = self._need_evaluator().features(self.generated(n).images)
        return self._call["eval_feats"]

    def reference(self) -> Reference:
        """``ref_n`` examples of ``ref_split``, a seed-0 subset (fixed, so the cache key identifies it)."""
        if self._reference is None:
            split = str(self.metrics_cfg.ref_split)
            ds = self.dm.eval_set if split == self.cfg.data.eval_split else (
                self.dm.train_set if split == self.cfg.data.train_split and not self.cfg.data.get("max_train")
                else load_dataset(self.cfg.data, split, int(self.cfg.get("seed", 0)), train=False))
            n = min(int(self.metrics_cfg.ref_n), len(ds))
            idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[:n].sort().values
            labels = None if ds.clean_labels is None else ds.clean_labels[idx]
            self._reference = Reference(ds.data[idx], labels, split, len(ds))
        return self._reference

    def _inception_net(self):
        if self._inception is None:
            try:
                self._inception = load_inception(self.metrics_cfg.get("inception_weights"), self.method.device,
                                                 self.metrics_cfg.get("inception_precision", "auto"))
            except FileNotFoundError as exc:
                raise Skip(str(exc)) from None
        return self._inception

    def _inception_features(self, n: int):
        """(generated features, ReferenceStats) on the FID network."""
        if not self.is_image:
            raise Skip(f"Inception metrics need images; dataset={self.cfg.data.name} is 2-D points")
        net = self._inception_net()
        gen = self.generated(n)
        if "inception" not in self._call:
            self.log(f"[lsgan] Inception features of {len(gen)} generated images")
            self._call["inception"] = batched_features(net, gen.images, int(self.metrics_cfg.batch_size))
        return self._call["inception"], self._inception_reference()

    def _inception_reference(self) -> ReferenceStats:
        """The reference images' Inception statistics and features, cached on disk: FID, KID, PRDC and 'like'
        share one pass."""
        if self._ref_stats is None:
            ref, net = self.reference(), self._inception_net()
            self._ref_stats = ReferenceStats.load_or_compute(
                metrics_cache_dir(self.metrics_cfg), dataset_tag(self.cfg.data), ref.split, int(ref.data.shape[-1]),
                getattr(net, "backbone", type(net).__name__), len(ref.data),
                lambda: batched_features(net, ref.data, int(self.metrics_cfg.batch_size),
                                         what="Inception features of the reference images"))
        return self._ref_stats

    def _eval_features_of_reference(self):
        """The evaluator's features of the reference images, cached on disk per evaluator (by its
        weights' fingerprint), dataset, split, resolution and count: a second evaluation reads them."""
        if self._ref_eval_feats is None:
            ref, ev = self.reference(), self._need_evaluator()
            if not hasattr(ev, "fingerprint"):  # the toy mixtures' exact classifier: nothing to save
                self._ref_eval_feats = ev.features(ref.floats())
                return self._ref_eval_feats
            stats = ReferenceStats.load_or_compute(
                metrics_cache_dir(self.metrics_cfg), dataset_tag(self.cfg.data), ref.split, int(ref.data.shape[-1]),
                f"evaluator-{ev.fingerprint()}", len(ref.data),
                lambda: ev.features(ref.floats(), what="evaluator features of the reference images").numpy())
            self._ref_eval_feats = torch.from_numpy(stats.features)
        return self._ref_eval_feats

    def _conditional(self, n: int) -> Dict[str, object]:
        """Evaluator predictions on the generated samples, with the condition → class mapping."""
        if "cond" in self._call:
            return self._call["cond"]
        if not self.method.accepts_exemplars and self.method.num_conditions == 0:
            raise Skip(f"method={self.method.mcfg.name} is unconditional: no conditions to check")
        ev = self._need_evaluator()
        self._need_labels("conditional accuracy")
        gen = self.generated(n)
        C = int(ev.meta["n_classes"])
        pred = self._generated_predictions(n)
        proto = {"n_generated": len(gen), **evaluator_protocol(ev), "classes": C}
        if self._spread != "prior":
            proto["spread"] = self._spread  # recorded only when not the default, so default protocols read as before
        if self.method.accepts_exemplars:
            if gen.source_label is None:
                raise Skip("exemplar accuracy needs the source images' labels")
            res = _conditional_accuracy(gen.source_label, pred, C, C, "identity")
            out = {"value": res["accuracy"], "rule": "exemplar: source label == evaluator class of G(z, E(x))",
                   "confusion": res["confusion"], "groups": gen.source_label, "mapping": np.arange(C),
                   "protocol": {**proto, "source_split": self.cfg.data.eval_split}}
        else:
            K = int(self.method.num_conditions)
            res = _conditional_accuracy(gen.conditions, pred, K, C)
            rule = "hungarian (K == classes)" if res["rule"] == "hungarian" else "purity (majority class per condition)"
            out = {"value": res["accuracy"], "rule": rule, "mapping": res["mapping"], "confusion": res["confusion"],
                   "groups": gen.conditions, "protocol": {**proto, "conditions": K}}
            if getattr(self.method, "uses_labels", False) and K == C:
                # label-conditioned (cgan): condition k *is* class k, so the identity map is the honest one
                out["value"] = _conditional_accuracy(gen.conditions, pred, K, C, "identity")["accuracy"]
                out["rule"] = "identity (conditions are the training labels)"
                out["accuracy_hungarian"] = res["accuracy"]
                out["mapping"] = np.arange(K)
        out["pred"] = pred
        self._call["cond"] = out
        return out

    def _representation(self, x_loader: Callable[[], torch.Tensor], what: str) -> Tuple[torch.Tensor, str]:
        """The method's feature space on some images: ``features_of(x)`` if the method has it,
        else ``condition_of(x)`` when that returns feature vectors (coupled: E(x))."""
        fn, label = self.method.features_of, "features_of"
        if fn is None:
            fn, label = self.method.condition_of, "condition_of"
        x = x_loader()
        try:
            out = self._batched(fn, x)
        except NotImplementedError as exc:
            raise Skip(f"method={self.method.mcfg.name} has no feature space (no features_of(x); "
                       f"condition_of: {' '.join(str(exc).split())})") from None
        if out.dim() != 2 or not out.is_floating_point():
            raise Skip(f"{what}: method={self.method.mcfg.name} has no feature space "
                       f"(condition_of returns condition ids; a method can expose one with features_of(x))")
        return out, label

    @torch.no_grad()
    def _batched(self, fn, x: torch.Tensor) -> torch.Tensor:
        bs = int(self.metrics_cfg.batch_size)
        with Progress(getattr(fn, "__name__", "encoding"), len(x), "images") as shown:
            outs = []
            for i in range(0, len(x), bs):
                outs.append(fn(x[i:i + bs].to(self.method.device)).detach().cpu())
                shown.update(len(outs[-1]))
        return torch.cat(outs)

    # ------------------------------------------------------------------ metrics
    def _fid_against_reference(self, backbone: str, gen_feats, reference) -> float:
        """FID of ``gen_feats`` against this suite's fixed reference on ``backbone``: one FeatureFID per
        backbone keeps the reference's sums across calls (``reference``: its features, or its ReferenceStats)."""
        fid = self._fid.get(backbone)
        if fid is None:
            if isinstance(reference, ReferenceStats):
                fid = _metric(FeatureFID, int(reference.mu.shape[0]), reset_real_features=False)
                fid.update_stats(reference.mu, reference.sigma, reference.n, real=True)
            else:
                fid = _metric(FeatureFID, int(reference.shape[1]), reset_real_features=False)
                fid.update(torch.as_tensor(reference), real=True)
            self._fid[backbone] = fid
        fid.reset()
        fid.update(torch.as_tensor(gen_feats), real=False)
        return float(fid.compute())

    def _m_fid(self, n):
        feats, ref = self._inception_features(n)
        value = self._fid_against_reference("inception", feats, ref)
        return {"value": value, "protocol": {**ref.protocol(len(feats)), "weights": self._weights_name()}}

    def _m_kid(self, n):
        feats, ref = self._inception_features(n)
        if ref.features is None:
            raise Skip("KID needs the reference features; its cached statistics hold none (delete the cache file)")
        size = min(int(self.metrics_cfg.kid_subset_size), len(feats), ref.n)
        kid = _metric(FeatureKID, int(self.metrics_cfg.kid_subsets), size, seed=int(self.metrics_cfg.get("seed", 0)))
        kid.update(torch.as_tensor(feats), real=False)
        kid.update(torch.as_tensor(ref.features), real=True)
        mean, std = kid.compute()
        return {"value": float(mean), "std": float(std),
                "protocol": {**ref.protocol(len(feats)), "subsets": int(self.metrics_cfg.kid_subsets), "subset_size": size}}

    def _m_is(self, n):
        raise Skip(NO_LOGITS_REASON)

    def _m_prdc(self, n):
        feats, ref = self._inception_features(n)
        m = min(len(feats), ref.n)  # equal set sizes, as in Kynkäänniemi et al.
        k = int(self.metrics_cfg.prdc_k)
        res = _prdc(ref.features[_spread_rows(ref.n, m)], feats[:m], k)
        return {"precision": res["precision"], "recall": res["recall"], "density": res["density"],
                "coverage": res["coverage"], "protocol": {**ref.protocol(m), "reference_n": m, "k": k,
                                                          "weights": self._weights_name()}}

    def _weights_name(self):
        return getattr(self._inception, "weights_path", None)

    def _m_classifier_fid(self, n):
        ev = self._need_evaluator()
        gen = self.generated(n)
        real = self._eval_features_of_reference()
        ref = self.reference()
        value = self._fid_against_reference("evaluator", self._generated_eval_features(n), real)
        return {"value": value, "protocol": {"n_generated": len(gen), "reference_split": ref.split,
                                             "reference_n": len(ref.data), "backbone": "evaluator penultimate",
                                             **evaluator_protocol(ev)}}

    def _m_classifier_prdc(self, n):
        """PRDC where Inception is slow or ill-suited (CPU, 28-px digits): the evaluator's features."""
        ev = self._need_evaluator()
        gen_feats, real = self._generated_eval_features(n), self._eval_features_of_reference()
        m = min(len(gen_feats), len(real))  # equal set sizes, as in Kynkäänniemi et al.
        k = int(self.metrics_cfg.prdc_k)
        res = _prdc(real[_spread_rows(len(real), m)], gen_feats[:m], k)
        ref = self.reference()
        return {**{key: res[key] for key in ("precision", "recall", "density", "coverage")},
                "protocol": {"n_generated": m, "reference_split": ref.split, "reference_n": m, "k": k,
                             "backbone": "evaluator penultimate", **evaluator_protocol(ev)}}

    def _m_cond_acc(self, n):
        if not self.method.accepts_exemplars and self.method.num_conditions == 0:
            return self._unconditional_exemplar_baseline(n)
        c = self._conditional(n)
        self.artifacts["confusion"] = np.asarray(c["confusion"])
        self.artifacts["confusion_rows"] = "source label" if "exemplar" in c["rule"] else "condition"
        out = {"value": c["value"], "rule": c["rule"], "mapping": c["mapping"], "confusion": c["confusion"],
               "protocol": c["protocol"]}
        if "accuracy_hungarian" in c:
            out["accuracy_hungarian"] = c["accuracy_hungarian"]
        return out

    def _unconditional_exemplar_baseline(self, n):
        """cond_acc of an unconditional method: its samples against the classes of the exemplars an exemplar
        method would get under the same protocol (same split, same seeded draw). G never sees them, so this is
        the chance level Σ_c p_gen(c)·p_exemplar(c) measured — the baseline row a conditional method must beat."""
        ev = self._need_evaluator()
        self._need_labels("conditional accuracy")
        pred = self._generated_predictions(n)
        source = self.dm.eval_set.clean_labels[self._exemplar_draw(len(pred))].long()
        C = int(ev.meta["n_classes"])
        res = _conditional_accuracy(source, pred, C, C, "identity")
        p_gen = torch.bincount(pred.long(), minlength=C).double() / len(pred)
        p_src = torch.bincount(source, minlength=C).double() / len(source)
        self.artifacts["confusion"] = np.asarray(res["confusion"])
        self.artifacts["confusion_rows"] = "source label"
        return {"value": res["accuracy"], "chance": float((p_gen * p_src).sum()),
                "rule": "unconditional baseline: source label == evaluator class of G(z), G ignores the exemplar",
                "mapping": np.arange(C), "confusion": res["confusion"],
                "protocol": {"n_generated": len(pred), **evaluator_protocol(ev), "classes": C,
                             "source_split": self.cfg.data.eval_split}}

    def _m_variety(self, n):
        c = self._conditional(n)
        ev = self._need_evaluator()
        ref = self.reference()
        gen = self.generated(n)
        g_feat, r_feat = self._generated_eval_features(n), self._eval_features_of_reference()
        groups, mapping = torch.as_tensor(c["groups"]), np.asarray(c["mapping"])
        variety = _metric(WithinConditionVariety, len(mapping), _classes(ref.labels, mapping), mapping,
                          seed=int(self.metrics_cfg.get("seed", 0)))
        variety.update(g_feat, groups, real=False)
        variety.update(r_feat, ref.labels, real=True)
        var = variety.report()
        k = int(self.metrics_cfg.prdc_k)
        recall: Dict[int, float] = {}
        for g in range(len(mapping)):
            gi, ri = g_feat[groups == g], r_feat[ref.labels == int(mapping[g])] if mapping[g] >= 0 else r_feat[:0]
            # recall of one condition against its matched class: how much of that class it covers
            recall[g] = _prdc(ri, gi, k)["recall"] if min(len(gi), len(ri)) > k else float("nan")
        rec = [v for v in recall.values() if math.isfinite(v)]
        return {"value": var["mean"], "min_condition": var["min"], "per_condition": var["per_condition"],
                "recall_mean": float(np.mean(rec)) if rec else float("nan"),
                # ~0: one condition covers none of its class (dead, or off-manifold images the evaluator still
                # labels as that class, which cond_acc and the distance-based variety cannot see)
                "recall_min_condition": float(min(rec)) if rec else float("nan"), "recall_per_condition": recall,
                "protocol": {"n_generated": len(gen), "grouped_by": "source label" if "exemplar" in c["rule"]
                             else "condition", "features": "evaluator penultimate", "reference_split": ref.split,
                             "reference_n": len(ref.data), "recall_k": k, **evaluator_protocol(ev),
                             "meaning": "mean pairwise distance within a condition / within its matched real class"
                                        " (1.0 = as varied as real)"}}

    def _m_intra_fid(self, n):
        """Per condition, the FID of its samples against the real class ``cond_acc``'s mapping gives it
        (``lsgan.metrics.conditional.intra_fid``); an exemplar method's conditions are its exemplars' labels."""
        c = self._conditional(n)
        ev = self._need_evaluator()
        ref = self.reference()
        mapping = np.asarray(c["mapping"])
        intra = _metric(IntraFID, len(mapping), _classes(ref.labels, mapping), mapping)
        intra.update(self._generated_eval_features(n), torch.as_tensor(c["groups"]), real=False)
        intra.update(self._eval_features_of_reference(), ref.labels, real=True)
        res = intra.report()
        return {"value": res["mean"], "max_condition": res["max"], "per_condition": res["per_condition"],
                "protocol": {"n_generated": len(self.generated(n)), "grouped_by": "source label"
                             if "exemplar" in c["rule"] else "condition", "features": "evaluator penultimate",
                             "reference_split": ref.split, "reference_n": len(ref.data), **evaluator_protocol(ev)}}

    def _m_like(self, n):
        """``like_exemplars`` evaluation-split images, ``n // like_exemplars`` samples like each
        (``method.sample_like``), scored by ``LikeScore`` (``lsgan.metrics.like.like_score``) against the
        reference set."""
        from lsgan.metrics.like import LIKE_EXEMPLARS, LIKE_FEATURES

        if not self.is_image:
            raise Skip(f"'like' needs images; dataset={self.cfg.data.name} is 2-D points")
        if not self.method.accepts_exemplars and self.method.num_conditions == 0:
            raise Skip(f"method={self.cfg.method.name} has no conditions: it cannot draw like an image")
        # .get: a run saved before these keys existed is evaluated with their defaults
        x_n = min(int(self.metrics_cfg.get("like_exemplars", LIKE_EXEMPLARS)), len(self.dm.eval_set))
        per = max(1, n // x_n)
        idx = self._exemplar_draw(x_n)
        images = self.dm.eval_set.images(idx)
        try:
            samples = torch.cat([self.method.sample_like(images[i:i + 50], per).flatten(0, 1).cpu()
                                 for i in range(0, len(images), 50)])
        except NotImplementedError as exc:  # conditioned on labels (cgan): no condition to read from an image
            raise Skip(" ".join(str(exc).split())) from None
        ref = self.reference()
        kind = str(self.metrics_cfg.get("like_features", LIKE_FEATURES))
        if kind == "evaluator":
            ev = self._need_evaluator()
            feats = lambda x: ev.features(x)  # noqa: E731
            real = self._eval_features_of_reference()
            backbone = {"backbone": "evaluator penultimate", **evaluator_protocol(ev)}
        else:
            net = self._inception_net()
            feats = lambda x: batched_features(net, x, int(self.metrics_cfg.batch_size))  # noqa: E731
            stats = self._inception_reference()
            real = torch.from_numpy(stats.features) if stats.features is not None else feats(ref.data)
            self.log(f"[lsgan] Inception features of {x_n} exemplar and {len(samples)} generated images")
            backbone = {"backbone": getattr(net, "backbone", type(net).__name__)}
        like = _metric(LikeScore, seed=int(self.metrics_cfg.get("seed", 0)))
        exemplars = feats(images)
        like.update(feats(samples).reshape(x_n, per, -1), real=False, exemplars=exemplars)  # per draws of each
        like.update(real, real=True)
        res = like.report()
        return {**res, "protocol": {"exemplars": x_n, "samples_per_exemplar": per, "exemplar_split": self.cfg.data.eval_split,
                                    "reference_split": ref.split, "reference_n": len(ref.data), **backbone,
                                    "meaning": "share of real images closer to the exemplar than each sample's nearest "
                                               "real image (0 = its own neighbours; chance: samples paired to another exemplar)"}}

    def _m_z_variety(self, n):
        """Does G use z? ``variety`` of an exemplar method groups samples by the exemplar's class, so
        different exemplars alone make it look varied; here each exemplar is held fixed and only z
        changes: m exemplars × r draws, mean pairwise distance within each exemplar's r samples
        divided by that of the real images of the exemplar's class (1.0 = z alone spans the class,
        ≈ 0 = G ignores z)."""
        if not self.method.accepts_exemplars:
            raise Skip(f"method={self.method.mcfg.name} conditions on ids, not exemplars: its spread over z "
                       f"within a condition is `variety`")
        self._need_labels("z_variety")
        ev = self._need_evaluator()
        r = 10
        m = max(2, min(100, n // r))
        ref, split = self.reference(), self.dm.eval_set
        idx = exemplar_indices(len(split), m, int(self.metrics_cfg.get("seed", 0)) + 1).repeat_interleave(r)
        gen = generate(self.method, len(idx), exemplar_set=split, exemplar_indices=idx,
                       batch_size=int(self.metrics_cfg.batch_size))
        g_feat, r_feat = ev.features(gen.images), self._eval_features_of_reference()
        classes = gen.source_label[::r]  # each exemplar's, its r samples in a row
        zv = _metric(ZVariety, int(max(int(ref.labels.max()), int(classes.max()))) + 1)
        zv.update(g_feat.reshape(m, r, -1), classes, real=False)
        zv.update(r_feat, ref.labels, real=True)
        return {"value": float(zv.compute()),
                "protocol": {"exemplars": m, "draws_per_exemplar": r, "exemplar_split": self.cfg.data.eval_split,
                             "features": "evaluator penultimate", "reference_split": ref.split,
                             "reference_n": len(ref.data), **evaluator_protocol(ev),
                             "meaning": "mean pairwise distance over z for a fixed exemplar / within its real class"}}

    def _m_class_masses(self, n):
        """Does the model carry the data's class masses (NEMGAN's 02:98 claim)? n samples drawn as
        the method draws them (an engineered prior's P_Y, else its conditions evenly), each given
        the evaluator's class; value = the largest gap, in share, to the training split's class shares."""
        if self.method.accepts_exemplars:
            raise Skip(f"method={self.method.mcfg.name} draws what its exemplars are: its class shares are theirs")
        if self._spread != "prior":
            raise Skip(f"class masses need samples drawn as the model draws them (spread=prior, not {self._spread})")
        self._need_labels("class masses")
        labels = self.dm.train_set.clean_labels
        if labels is None:
            raise Skip(f"class masses need training labels; dataset={self.cfg.data.name} has none")
        ev = self._need_evaluator()
        C = int(ev.meta["n_classes"])
        pred = self._generated_predictions(n)
        masses = _metric(ClassMasses, C)
        masses.update(pred.cpu(), real=False)
        masses.update(labels.cpu(), real=True)
        res = masses.report()
        return {"value": res["value"], "generated": res["generated"], "data": res["data"],
                "protocol": {"n_generated": len(pred), "drawn": "by the prior's weights" if
                             prior_weights(self.method) is not None else "conditions evenly / freely",
                             "data_split": "train", **evaluator_protocol(ev),
                             "meaning": "max over classes |generated share - training share| (0 = masses carried)"}}

    def _m_cluster(self, n):
        self._need_labels("clustering")
        ev = self.dm.eval_set
        x, y = ev.images(), ev.clean_labels
        try:
            out = self._batched(self.method.condition_of, x)
        except NotImplementedError as exc:
            raise Skip(" ".join(str(exc).split())) from None
        proto = {"split": self.cfg.data.eval_split, "n": len(x)}
        if out.dim() == 1 and not out.is_floating_point():
            ids, rule = out.long(), "argmax of condition_of(x)"
        else:  # feature-valued condition_of (coupled): k-means into as many clusters as classes
            ids, rule = kmeans_ids(out, int(ev.num_classes), int(self.metrics_cfg.get("seed", 0))), "k-means on condition_of(x), k = #classes"
        rep = _clustering_report(y, ids)
        self.artifacts["cluster_ids"] = ids.numpy()
        res = {"value": rep["acc"], **{k: rep[k] for k in ("acc", "balanced_acc", "nmi", "ari", "purity", "n_clusters")},
               "rule": rule, "protocol": {**proto, "classes": rep["n_classes"]}}
        feats = self.method.cluster_features
        if feats is not None:  # ClusterGAN's own protocol: k-means on the encoder output
            k = int(self.method.num_conditions) or int(ev.num_classes)
            km = _clustering_report(y, kmeans_ids(self._batched(feats, x), k, int(self.metrics_cfg.get("seed", 0))))
            res["kmeans"] = {**{key: km[key] for key in ("acc", "nmi", "ari", "purity")},
                             "rule": f"k-means on cluster_features(x), k = {k}"}
        return res

    def _m_modes(self, n):
        name = self.cfg.data.name
        if name not in ("stacked_mnist",) + TOY_DATASETS:
            raise Skip(f"mode counting needs dataset=stacked_mnist, ring8 or grid25, not {name}")
        default = 26000 if name == "stacked_mnist" else 2500
        m = int(self.metrics_cfg.get("modes_n") or default)
        gen = generate(self.method, m, batch_size=int(self.metrics_cfg.batch_size), weights=prior_weights(self.method))
        if name == "stacked_mnist":
            ev = self._need_evaluator()
            counter = _metric(StackedMNISTModes)
            counter.update(ev.digits(gen.images))
            res = counter.report()
            return {"value": res["modes"], "kl": res["kl"], "n_modes": 1000,
                    "protocol": {"n_generated": m, "classifier": "MNIST evaluator per channel",
                                 "evaluator_test_acc": ev.meta.get("test_acc"), "convention": "VEEGAN / PacGAN"}}
        centers = toy_centers(name)
        std = float(self.cfg.data.std)
        counter = _metric(ToyModes, centers, std)
        counter.update(gen.images)
        res = counter.report()
        return {"value": res["modes"], "n_modes": res["n_modes"], "high_quality": res["high_quality"],
                "reverse_kl": res["reverse_kl"],
                "protocol": {"n_generated": m, "std": std, "high_quality": "within 3 std of the nearest centre",
                             "covered": ">= 1 high-quality sample", "convention": "VEEGAN"}}

    def _m_knn(self, n):
        self._need_labels("k-NN label agreement")
        ev = self.dm.eval_set
        feats, label = self._representation(ev.images, "knn")
        pca = 256 if feats.shape[1] > 256 else None
        ks = [int(k) for k in self.metrics_cfg.knn_ks]
        res = knn_label_agreement(feats, ev.clean_labels, ks=ks, pca_dim=pca)
        out = {f"k{k}": res[k] for k in ks}
        out["value"] = res[min(ks)]
        out["protocol"] = {"features": label, "split": self.cfg.data.eval_split, "n": res["n"], "dim": res["dim"],
                           "pca_dim": res["pca_dim"]}
        return out

    def _m_probe(self, n):
        self._need_labels("linear probe")
        tr, te = self.dm.train_set, self.dm.eval_set
        if tr.clean_labels is None:
            raise Skip("linear probe needs training labels")
        m = min(len(tr), int(self.metrics_cfg.ref_n))
        idx = torch.randperm(len(tr), generator=torch.Generator().manual_seed(0))[:m]
        f_tr, label = self._representation(lambda: tr.images(idx), "probe")
        f_te, _ = self._representation(te.images, "probe")
        acc = linear_probe(f_tr, tr.clean_labels[idx], f_te, te.clean_labels)
        return {"value": acc, "protocol": {"features": label, "train": f"{self.cfg.data.train_split} ({m})",
                                           "test": f"{self.cfg.data.eval_split} ({len(te)})",
                                           "classifier": "multinomial logistic regression on standardised features"}}

    def _m_class_kl(self, n):
        c = self._conditional(n)
        ev = self._need_evaluator()
        ref = self.reference()
        gen = self.generated(n)
        K = len(c["mapping"])
        C = int(ev.meta["n_classes"])
        kl = _metric(ClasswiseKL, K, C, seed=int(self.metrics_cfg.get("seed", 0)))
        kl.update(self._generated_eval_features(n), torch.as_tensor(c["groups"]), real=False)
        kl.update(self._eval_features_of_reference(), ref.labels, real=True)
        res = kl.report()
        self.artifacts["class_kl"] = res["matrix"]
        return {"value": res["value"], "matrix": res["matrix"], "row_argmin": res["row_argmin"],
                "protocol": {"n_generated": len(gen), "features": "evaluator penultimate, PCA 10",
                             "estimator": "1-NN KL (Wang et al. 2009)", "max_per_group": 500,
                             "value": "mean over modes of the smallest KL to a real class"}}


def _metric(cls, *args, **kwargs):
    """An engine Metric as the suite uses it: all samples in this process. During DDP training only rank 0
    evaluates (MetricsCallback), so compute() must not wait to gather from ranks that never update."""
    return cls(*args, sync_on_compute=False, **kwargs)


def _conditional_accuracy(conditions, pred, K: int, C: int, rule: str = "auto") -> Dict[str, object]:
    """ConditionalAccuracy's report: accuracy, rule, mapping, confusion."""
    metric = _metric(ConditionalAccuracy, K, C, rule=rule)
    metric.update(torch.as_tensor(conditions), torch.as_tensor(pred))
    return metric.report()


def _classes(labels: torch.Tensor, mapping: np.ndarray) -> int:
    """How many class ids a per-condition Metric must accept: the real labels' and the mapping's."""
    return int(max(int(labels.max()) if len(labels) else 0, int(np.max(mapping, initial=0)))) + 1


def _prdc(real, fake, k: int) -> Dict[str, float]:
    metric = _metric(PRDC, k=k)
    metric.update(torch.as_tensor(fake), real=False)
    metric.update(torch.as_tensor(real), real=True)
    return {key: float(value) for key, value in metric.compute().items()}


def _clustering_report(y_true, y_pred) -> Dict[str, float]:
    """ACC, balanced ACC and purity (ClusteringAccuracy), NMI and ARI (torchmetrics'), sizes: the keys of
    ``lsgan.metrics.clustering.clustering_report``."""
    t, p = torch.as_tensor(y_true).long(), torch.as_tensor(y_pred).long()
    acc = _metric(ClusteringAccuracy, int(p.max()) + 1, int(t.max()) + 1)
    acc.update(p, t)
    out = acc.report()
    n_clusters, n_classes = len(torch.unique(p)), len(torch.unique(t))
    with warnings.catch_warnings():  # torchmetrics builds its contingency table as a sparse tensor and says so
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        for key, cls in (("nmi", NormalizedMutualInfoScore), ("ari", AdjustedRandScore)):
            metric = _metric(cls)
            metric.update(p, t)
            out[key] = float(metric.compute())
    if n_clusters == n_classes == 1:
        out["nmi"] = 1.0  # one cluster that is the one class: perfect, as scikit-learn scores it (torchmetrics: 0)
    return {**out, "n_clusters": n_clusters, "n_classes": n_classes}


def _spread_rows(n: int, m: int) -> np.ndarray:
    """m of n reference rows, a fixed seed-0 draw: the reference may be sorted by class (MNIST's
    test split is), so its first m rows would hold only the first classes."""
    return np.sort(np.random.RandomState(0).permutation(n)[:m])


@contextmanager
def _private_rng(seed: int, device):
    """Seeded torch RNG inside, the caller's RNG state (CPU and CUDA) restored after: metrics
    during training must not change the training run's random stream (exact resume)."""
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


__all__ = ["ALIASES", "METRICS", "SPREADS", "MetricSuite", "Reference", "Skip", "canonical_names",
           # re-exported from lsgan.metrics.resolve and lsgan.metrics.results (their homes)
           "DEFAULT_EPOCHS", "NearestCenterEvaluator", "StackedMNISTEvaluator", "dataset_tag", "evaluator_path",
           "evaluator_protocol", "flatten_scalars", "metrics_cache_dir", "resolve_evaluator", "summary", "to_jsonable",
           "train_evaluator_command"]
