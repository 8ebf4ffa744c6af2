"""A report a person would rather look at than read: Markdown (and optionally HTML) with pictures.

``write_report(out_dir, results, method, datamodule, run_dir, suite)`` draws

- ``samples_by_condition.png``: one row of samples per condition, its id (``c3``) at the left (exemplar
  methods: a row of real exemplars, labelled ``exemplar``, above the rows generated from them;
  unconditional methods: a plain grid);
- ``confusion.png``: the condition × class confusion matrix of ``cond_acc``;
- ``clusters.png``: real images of the evaluation split per discovered cluster (``condition_of``), each row
  labelled with its cluster id;
- ``class_kl.png``: the mode × class KL matrix when computed;
- ``curves.png``: training curves from the run's ``metrics.csv``;

and a table of every metric with its protocol (skipped metrics with their reasons). ``tsne_plot`` draws any
feature space (2-D t-SNE coloured by label, wrong points marked).

A method's own figures live beside this, one module per method, so the method file holds only the method:
``lsgan.reports.slcgan`` (cluster sizes, real vs generated per cluster) and ``lsgan.reports.nemgan``
(mode-matching distance histograms, the nemgan benchmark's numbers).
"""
from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from lsgan.metrics.clustering import agg_figure, plot_confusion

MAX_ROWS = 20      # conditions shown in picture grids
PER_ROW = 10       # images per row


# --------------------------------------------------------------------------- pictures
def _save_grid(images: torch.Tensor, path: Path, nrow: int, row_labels: Optional[List[str]] = None) -> Path:
    from lsgan.callbacks import save_sample_grid

    save_sample_grid(images, path, nrow, row_labels=row_labels)
    return path


@torch.no_grad()
def samples_by_condition(method, path: Path, datamodule=None, seed: int = 0) -> Optional[Path]:
    """One row per condition (up to MAX_ROWS), the same noise in every row."""
    from lsgan.generation import exemplar_indices, generate

    with torch.random.fork_rng(devices=[method.device] if method.device.type == "cuda" else []):
        torch.manual_seed(seed)
        if method.accepts_exemplars and datamodule is not None:
            ev = datamodule.eval_set
            idx = exemplar_indices(len(ev), PER_ROW, seed)
            real = ev.images(idx)
            rows = [real]
            for _ in range(3):  # three draws of noise per exemplar: what changes, what stays
                rows.append(generate(method, PER_ROW, exemplar_set=ev, exemplar_indices=idx).images)
            images = torch.cat(rows)
            labels = ["exemplar"] + [""] * (len(rows) - 1)
        elif method.num_conditions > 0:
            k = min(int(method.num_conditions), MAX_ROWS)
            z = torch.randn(PER_ROW, method.latent_dim, device=method.device)
            images = torch.cat([method.sample_from_noise(z, condition=c).float().cpu() for c in range(k)])
            labels = [f"c{c}" for c in range(k)]
        else:
            images, labels = generate(method, 8 * PER_ROW).images, None
    if images.dim() != 4:
        return _scatter(images, path)
    return _save_grid(images, path, PER_ROW, labels)


def _scatter(points: torch.Tensor, path: Path) -> Path:
    fig = agg_figure(figsize=(4, 4))
    ax = fig.add_subplot()
    p = points.float().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=4, alpha=0.6)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def clusters_picture(datamodule, cluster_ids: np.ndarray, path: Path, seed: int = 0) -> Optional[Path]:
    """Real images of the evaluation split, one row per discovered cluster (largest clusters first)."""
    ev = datamodule.eval_set
    ids = np.asarray(cluster_ids)
    if not ev.is_image or len(ids) != len(ev):
        return None
    rng = np.random.default_rng(seed)
    clusters = [c for c in np.argsort(-np.bincount(ids)) if (ids == c).any()][:MAX_ROWS]
    blank = torch.full((1, *ev.data.shape[1:]), -1.0)
    rows = []
    for c in sorted(clusters):
        members = np.flatnonzero(ids == c)
        pick = rng.choice(members, min(PER_ROW, len(members)), replace=False)
        row = ev.images(pick)
        rows.append(torch.cat([row, blank.expand(PER_ROW - len(row), -1, -1, -1)]) if len(row) < PER_ROW else row)
    return _save_grid(torch.cat(rows), path, PER_ROW, [f"c{c}" for c in sorted(clusters)])


def read_metrics_csv(path: Path) -> Dict[str, List[tuple]]:
    """{column: [(step, value), ...]} for every numeric column of a run's metrics.csv."""
    series: Dict[str, List[tuple]] = {}
    if not path.is_file():
        return series
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = row.get("step")
            if step in (None, ""):
                continue
            for key, value in row.items():
                if key == "step" or value in (None, ""):
                    continue
                try:
                    series.setdefault(key, []).append((int(float(step)), float(value)))
                except ValueError:
                    continue
    return series


def curves_picture(metrics_csv: Path, path: Path) -> Optional[Path]:
    """Training curves: losses in one panel, every other logged quantity in its own small panel."""
    series = read_metrics_csv(metrics_csv)
    if not series:
        return None
    losses = [k for k in series if k.startswith("loss")]
    others = [k for k in series if k not in losses][:11]
    panels = ([losses] if losses else []) + [[k] for k in others]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = agg_figure(figsize=(4.2 * cols, 2.8 * rows))
    for i, keys in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for k in keys:
            steps, values = zip(*series[k])
            ax.plot(steps, values, label=k, marker="." if len(steps) < 30 else None)
        ax.set_xlabel("iteration")
        ax.set_title(", ".join(keys) if len(keys) == 1 else "losses", fontsize=9)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def matrix_picture(matrix, path: Path, title: str) -> Path:
    """Heat map of a generated-mode × real-class matrix (KL: lower = closer), with the values written
    in the cells up to 20 columns (beyond that they no longer fit)."""
    m = np.asarray(matrix, dtype=np.float64)
    fig = agg_figure(figsize=(1.5 + 0.55 * m.shape[1], 1.2 + 0.5 * m.shape[0]))
    ax = fig.add_subplot()
    im = ax.imshow(np.where(np.isfinite(m), m, np.nan), cmap="viridis_r")
    if m.shape[1] <= 20:
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, "nan" if not np.isfinite(v) else f"{v:.1f}", ha="center", va="center", fontsize=6,
                    color="w")
    ax.set_xlabel("real class")
    ax.set_ylabel("generated mode")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def tsne_plot(features, labels, correct=None, path: str = "tsne.png", max_points: int = 5000, seed: int = 0,
              title: Optional[str] = None) -> str:
    """2-D t-SNE of features (N×d, array or tensor) coloured by label; points with ``correct`` False are
    drawn as black ×. A figure of a feature space, beside the number ``lsgan.metrics.knn_label_agreement``.

    At most ``max_points`` (seeded subset) are embedded: t-SNE cost grows as N log N and a
    picture does not gain from more.
    """
    from sklearn.manifold import TSNE  # lazy: scikit-learn's manifold module is slow to import, and only this needs it

    x = np.asarray(torch.as_tensor(features).detach().cpu().float())
    y = np.asarray(torch.as_tensor(labels).detach().cpu())
    ok = None if correct is None else np.asarray(torch.as_tensor(correct).detach().cpu()).astype(bool)
    if len(x) > max_points:
        keep = np.random.default_rng(seed).permutation(len(x))[:max_points]
        x, y = x[keep], y[keep]
        ok = None if ok is None else ok[keep]
    emb = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, max(2.0, (len(x) - 1) / 3))
               ).fit_transform(x)
    fig = agg_figure(figsize=(6, 6))
    ax = fig.add_subplot()
    sc = ax.scatter(emb[:, 0], emb[:, 1], c=y, cmap="tab10" if y.max() < 10 else "tab20", s=4)
    if ok is not None and (~ok).any():
        ax.scatter(emb[~ok, 0], emb[~ok, 1], c="black", marker="x", s=10, linewidths=0.6, label="wrong")
        ax.legend(loc="upper right")
    fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


# --------------------------------------------------------------------------- text
def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def metric_rows(results: Dict[str, dict]) -> List[tuple]:
    """(metric, numbers, protocol) text rows for the report table."""
    rows = []
    for name, res in results.items():
        if "skipped" in res:
            rows.append((name, "skipped", res["skipped"]))
            continue
        numbers = []
        for k, v in res.items():
            if k in ("protocol", "seconds") or isinstance(v, (list, dict)):
                continue
            numbers.append(f"{'' if k == 'value' else k + ' '}{_fmt(v)}".strip())
        if isinstance(res.get("kmeans"), dict):
            numbers.append("k-means: " + ", ".join(f"{k} {_fmt(v)}" for k, v in res["kmeans"].items()))
        protocol = ", ".join(f"{k}={_fmt(v)}" for k, v in (res.get("protocol") or {}).items())
        rows.append((name, "; ".join(numbers), protocol))
    return rows


def write_report(out_dir, results: Dict[str, dict], method, datamodule=None, run_dir=None, suite=None,
                 header: Optional[Dict[str, object]] = None, html_too: bool = False, seed: int = 0) -> Dict[str, Path]:
    """report.md (+ report.html) and its pictures in ``out_dir``; returns the written paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    artifacts = getattr(suite, "artifacts", {}) if suite is not None else {}
    pictures: List[tuple] = []  # (title, file name, caption)

    p = samples_by_condition(method, out / "samples_by_condition.png", datamodule, seed)
    if p is not None:
        cap = ("top row: real exemplars; below: samples generated from each" if
               method.accepts_exemplars else
               "one row per condition, the same noise in every row" if method.num_conditions else "random samples")
        pictures.append(("Samples", p.name, cap))
    if "confusion" in artifacts:
        rows_label = artifacts.get("confusion_rows", "condition")
        p = plot_confusion(artifacts["confusion"], str(out / "confusion.png"), row_label=rows_label,
                           col_label="evaluator class", title="generated samples (row-normalised)")
        pictures.append(("Condition × class confusion", Path(p).name,
                         f"rows: {rows_label}; columns: the evaluator's class of the generated sample"))
    if datamodule is not None and "cluster_ids" in artifacts:
        p = clusters_picture(datamodule, artifacts["cluster_ids"], out / "clusters.png", seed)
        if p is not None:
            pictures.append(("Real images per discovered cluster", p.name,
                             "one row per cluster (condition_of on the evaluation split), up to 20 rows"))
    if "class_kl" in artifacts:
        p = matrix_picture(artifacts["class_kl"], out / "class_kl.png", "k-NN KL(generated mode ‖ real class)")
        pictures.append(("Mode × class KL", p.name, "low = the mode looks like that class"))
    if run_dir is not None:
        p = curves_picture(Path(run_dir) / "metrics.csv", out / "curves.png")
        if p is not None:
            pictures.append(("Training curves", p.name, f"from {Path(run_dir) / 'metrics.csv'}"))

    header = header or {}
    lines = [f"# Evaluation: {header.get('method', method.mcfg.name)} on {header.get('dataset', '')}", ""]
    lines += [f"- **{k}**: {v}" for k, v in header.items()]
    lines += ["", "## Metrics", "", "| metric | value | protocol |", "|---|---|---|"]
    lines += [f"| {n} | {v} | {p} |" for n, v, p in metric_rows(results)]
    for title, name, cap in pictures:
        lines += ["", f"## {title}", "", f"![{title}]({name})", "", f"*{cap}*"]
    lines += ["", "Full numbers and protocols: `metrics.json`.", ""]
    paths = {"report": out / "report.md"}
    paths["report"].write_text("\n".join(lines))
    if html_too:
        paths["html"] = out / "report.html"
        paths["html"].write_text(_html(header, results, pictures))
    for _, name, _ in pictures:
        paths[name] = out / name
    return paths


def _html(header, results, pictures) -> str:
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>lsgan evaluation</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{border:1px solid #ccc;"
             "padding:4px;font-size:13px;vertical-align:top}table{border-collapse:collapse}</style></head><body>",
             f"<h1>Evaluation: {esc(str(header.get('method', '')))} on {esc(str(header.get('dataset', '')))}</h1><ul>"]
    parts += [f"<li><b>{esc(str(k))}</b>: {esc(str(v))}</li>" for k, v in header.items()]
    parts += ["</ul><h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>protocol</th></tr>"]
    parts += [f"<tr><td>{esc(n)}</td><td>{esc(v)}</td><td>{esc(p)}</td></tr>" for n, v, p in metric_rows(results)]
    parts.append("</table>")
    for title, name, cap in pictures:
        parts.append(f"<h2>{esc(title)}</h2><img src='{esc(name)}' style='max-width:100%'><p><i>{esc(cap)}</i></p>")
    parts.append(f"<details><summary>metrics.json</summary><pre>{esc(json.dumps(results, indent=1))}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["clusters_picture", "curves_picture", "matrix_picture", "metric_rows", "read_metrics_csv",
           "samples_by_condition", "write_report"]
