"""Evaluation metrics: pure functions on features, labels and predictions, and the same measures as
torchmetrics Metrics (``engine``: ``ConditionalAccuracy``, ``ClusteringAccuracy``, ``FeatureFID``, ...;
``engine_modes``: mode counts and class masses; ``engine_exemplars``: ``LikeScore``, ``ZVariety``),
whose state Lightning and torch.distributed gather across processes.

Feature extractors (FID Inception, evaluator classifiers) live in ``inception`` and
``evaluator``; which evaluator a run's data gets (its cache path, the toy / stacked adapters) in
``resolve``; the JSON helpers of a result in ``results``; everything else takes arrays/tensors and
returns numbers or dicts. The metric *names* a user passes (``metrics.names``, ``lsgan.evaluate
metrics=[...]``) are the keys of ``lsgan.metrics.suite.METRICS``, which computes each through these
Metrics (``knn`` and ``probe``, which judge a feature space on a whole split, through the functions below).
The suite (which generates from a trained method) is not imported here: it sits above the methods and
the data modules, and the methods use the measures below (k-means, figures) without pulling it in.
"""
from lsgan.metrics.clustering import (ari, balanced_cluster_acc, cluster_acc, clustering_report, contingency,
                                      map_conditions_to_classes, nmi, plot_confusion, purity)
from lsgan.metrics.conditional import (cluster_conditional_accuracy, exemplar_conditional_accuracy,
                                       intra_fid, mean_pairwise_distance, within_condition_variety, z_variety)
from lsgan.metrics.engine import (PRDC, ClasswiseKL, ClusteringAccuracy, ConditionalAccuracy, FeatureFID, FeatureKID,
                                  IntraFID, WithinConditionVariety)
from lsgan.metrics.engine_exemplars import LikeScore, ZVariety
from lsgan.metrics.engine_modes import ClassMasses, StackedMNISTModes, ToyModes
from lsgan.metrics.evaluator import (EVALUATOR_ARCHS, Evaluator, build_evaluator_net, classifier_fid,
                                     evaluator_cache_path, load_evaluator, prepare_images, save_evaluator,
                                     fit_evaluator)
from lsgan.metrics.fid import (ReferenceStats, feature_stats, fid_against_reference, fid_from_features,
                               frechet_distance, inception_score, kid_against_reference, kid_from_features)
from lsgan.metrics.inception import (InceptionFeatures, batched_features, load_inception, resolve_inception_weights,
                                     wheel_weights_path)
from lsgan.metrics.knn import knn_indices, knn_label_agreement
from lsgan.metrics.like import like_rank, like_score
from lsgan.metrics.modes import (class_masses, classwise_knn_kl_matrix, kl_to_uniform, knn_kl_divergence,
                                 stacked_mnist_modes, toy_mode_stats)
from lsgan.metrics.prdc import kth_neighbour_distances, prdc
from lsgan.metrics.probe import linear_probe
from lsgan.metrics.resolve import (DEFAULT_EPOCHS, ClassSubsetEvaluator, NearestCenterEvaluator, StackedMNISTEvaluator,
                                   dataset_tag, evaluator_path, evaluator_protocol, metrics_cache_dir,
                                   resolve_evaluator, train_evaluator_command)
from lsgan.metrics.results import flatten_scalars, summary, to_jsonable
from lsgan.toys import grid_centers, ring_centers  # the toys' geometry (one copy, beside neither data nor metrics)

__all__ = [
    "ari", "balanced_cluster_acc", "cluster_acc", "clustering_report", "contingency", "map_conditions_to_classes", "nmi",
    "plot_confusion", "purity",
    "cluster_conditional_accuracy", "exemplar_conditional_accuracy", "mean_pairwise_distance",
    "within_condition_variety", "intra_fid", "z_variety",
    "ClasswiseKL", "ClusteringAccuracy", "ConditionalAccuracy", "FeatureFID", "FeatureKID", "IntraFID", "PRDC",
    "WithinConditionVariety", "ClassMasses", "StackedMNISTModes", "ToyModes", "LikeScore", "ZVariety",
    "EVALUATOR_ARCHS", "Evaluator", "build_evaluator_net", "classifier_fid", "evaluator_cache_path",
    "load_evaluator", "prepare_images", "save_evaluator", "fit_evaluator",
    "ReferenceStats", "feature_stats", "fid_against_reference", "fid_from_features", "frechet_distance",
    "inception_score", "kid_against_reference", "kid_from_features",
    "InceptionFeatures", "batched_features", "load_inception", "resolve_inception_weights",
    "wheel_weights_path",
    "knn_indices", "knn_label_agreement",
    "like_rank", "like_score",
    "class_masses", "classwise_knn_kl_matrix", "grid_centers", "kl_to_uniform", "knn_kl_divergence", "ring_centers",
    "stacked_mnist_modes", "toy_mode_stats",
    "kth_neighbour_distances", "prdc",
    "linear_probe",
    "ClassSubsetEvaluator", "DEFAULT_EPOCHS", "NearestCenterEvaluator", "StackedMNISTEvaluator", "dataset_tag", "evaluator_path",
    "evaluator_protocol", "metrics_cache_dir", "resolve_evaluator", "train_evaluator_command",
    "flatten_scalars", "summary", "to_jsonable",
]
