"""Tables of a report, computed from finished runs with pandas (no training here).

``runs_table`` has one row per run; the others aggregate it per experiment (model, setting) and
implementation over seeds. Standard deviations over seeds are population std (ddof=0), so a
single seed gives 0. Accuracies are fractions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.analysis.fitting import column, fit_verdict, stability, tracking_gap
from reports.analysis.statistics import PairedInterval, paired_interval
from reports.experiment.drift import relative_distance
from reports.experiment.protocol import ALL_SETTINGS, IMPLEMENTATIONS

EXPERIMENT = ["model", "setting", "epochs", "lr"]


def _model_order(frame: pd.DataFrame) -> pd.DataFrame:
    order = {name: i for i, name in enumerate(ALL_SETTINGS)}
    return frame.sort_values(["model", "setting"],
                             key=lambda s: s.map(order) if s.name == "model" else s,
                             kind="stable").reset_index(drop=True)


def median_ms_per_step(history: list[dict]) -> float:
    """The median over evaluation intervals of training ms per step (robust to a burst of
    contention from other processes); NaN if no step was taken."""
    steps, seconds = column(history, "step"), column(history, "train_time")
    taken = np.diff(steps) > 0
    per_step = 1e3 * np.diff(seconds)[taken] / np.diff(steps)[taken]
    return float(np.median(per_step)) if per_step.size else np.nan


def executor_label(execution: dict | None) -> str:
    """How a run was executed, from its ``execution`` record: "serial", or e.g. "processes,
    2 workers x 1 thread"; "unrecorded" for a run saved before runs recorded it."""
    if not execution:
        return "unrecorded"
    name, workers, threads = (execution.get(key)
                              for key in ("executor", "workers", "threads_per_worker"))
    if threads is None:
        return str(name)
    where = f", {execution['address']}" if execution.get("address") else ""
    return f"{name}, {workers} workers x {threads} thread{'s' * (threads != 1)}{where}"


def runs_table(results: list[dict]) -> pd.DataFrame:
    """One row per run: its configuration, final accuracies, timings, verdict and stability.

    The capacity rule of the verdicts compares each run with the best final train accuracy of
    the same model over every run given (settings, seeds and both implementations)."""
    best: dict[str, float] = {}
    for result in results:
        final = column(result["history"], "train_eval_accuracy")[-1]
        if not result["diverged"] and np.isfinite(final):
            best[result["spec"]["model"]] = max(best.get(result["spec"]["model"], 0.0), final)
    rows = []
    for result in results:
        spec, history = result["spec"], result["history"]
        verdict = fit_verdict(history, result["diverged"], best.get(spec["model"]))
        rows.append({
            "model": spec["model"], "setting": spec["setting"] + 1, "epochs": spec["epochs"],
            "lr": spec["lr"], "seed": spec["seed"], "implementation": spec["implementation"],
            "final_train_accuracy": column(history, "train_eval_accuracy")[-1],
            "final_test_loss": column(history, "test_loss")[-1],
            **stability(history),
            "diverged": bool(result["diverged"]) or verdict.verdict == "diverged",
            "verdict": verdict.verdict, "rule": verdict.rule,
            "steps": result["steps"], "ms_per_step": result["ms_per_step"],
            "ms_per_step_median": median_ms_per_step(history),
            "s_per_epoch": result["s_per_epoch"], "eval_time": result["eval_time"],
            "train_time": result["train_time"], "setup_time": result["setup_time"],
            "wall_time": result["wall_time"],
            "load_average": result.get("load_average_1min_at_end", np.nan),
            "executor": executor_label(result.get("execution")),
            "worker": (result.get("execution") or {}).get("worker"),
            "initial_weights_sha256": result["initial_weights_sha256"],
            "derived_from": result.get("derived_from"),
        })
    return _model_order(pd.DataFrame(rows))


def trained_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``runs`` that were trained: not those taken from a longer run's records
    (``derived_from``), whose time is part of that run's."""
    return runs[runs["derived_from"].isna()]


def _std(values: pd.Series) -> float:
    return float(np.std(values.to_numpy(dtype=float)))


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Final test accuracy per experiment: mean and std over seeds per implementation, the
    difference of the means (NumPy - TensorFlow), and the paired difference over the seeds both
    sides ran (``reports.analysis.statistics.paired_interval``: ``paired_mean``, ``paired_sd``, the
    95% t-interval ``paired_low``..``paired_high`` from MIN_SEEDS seeds on, ``paired_n``)."""
    grouped = runs.groupby(EXPERIMENT + ["implementation"], sort=False)["final_test_accuracy"]
    stats = grouped.agg(mean="mean", std=_std).unstack("implementation")
    table = pd.DataFrame({
        "numpy_mean": stats[("mean", "numpy")], "numpy_std": stats[("std", "numpy")],
        "tensorflow_mean": stats[("mean", "tensorflow")],
        "tensorflow_std": stats[("std", "tensorflow")],
    })
    table["difference"] = table["numpy_mean"] - table["tensorflow_mean"]
    table["seeds"] = runs.groupby(EXPERIMENT, sort=False)["seed"].nunique()
    paired = {}
    for keys, group in runs.groupby(EXPERIMENT, sort=False):
        by_seed = group.pivot_table(index="seed", columns="implementation",
                                    values="final_test_accuracy", aggfunc="first")
        by_seed = by_seed.reindex(columns=list(IMPLEMENTATIONS))  # NaN for a side that never ran
        paired[keys] = paired_interval(*(by_seed[impl] for impl in IMPLEMENTATIONS))
    for field in PairedInterval._fields:
        table[f"paired_{field}"] = [getattr(paired[keys], field) for keys in table.index]
    return _model_order(table.reset_index())


def runtime_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per experiment and implementation of ms/step (and its median over evaluation
    intervals), s/epoch (training only), evaluation seconds and the run's total seconds; with the
    NumPy/TensorFlow ratios and the executors that ran the experiment's runs."""
    metrics = ["ms_per_step", "ms_per_step_median", "s_per_epoch", "eval_time", "wall_time"]
    stats = runs.groupby(EXPERIMENT + ["implementation"],
                         sort=False)[metrics].mean().unstack("implementation")
    table = pd.DataFrame({f"{m}_{impl}": stats[(m, impl)]
                          for m in metrics for impl in IMPLEMENTATIONS})
    table["step_ratio"] = table["ms_per_step_numpy"] / table["ms_per_step_tensorflow"]
    table["median_step_ratio"] = (table["ms_per_step_median_numpy"]
                                  / table["ms_per_step_median_tensorflow"])
    table["eval_ratio"] = table["eval_time_numpy"] / table["eval_time_tensorflow"]
    table["total_ratio"] = table["wall_time_numpy"] / table["wall_time_tensorflow"]
    table["executor"] = runs.groupby(EXPERIMENT, sort=False)["executor"].agg(
        lambda labels: "; ".join(sorted(set(labels))))
    return _model_order(table.reset_index())


def _pairs(runs: pd.DataFrame, results: list[dict]):
    """(experiment key, seed, numpy history, tensorflow history) for each seed both sides ran."""
    by = {(r["spec"]["model"], r["spec"]["setting"] + 1, r["spec"]["seed"],
           r["spec"]["implementation"]): r
          for r in results}
    for (model, setting, seed, impl), result in by.items():
        if impl == "numpy" and (model, setting, seed, "tensorflow") in by:
            yield (model, setting), seed, result, by[(model, setting, seed, "tensorflow")]


def stability_table(runs: pd.DataFrame, results: list[dict]) -> pd.DataFrame:
    """Per experiment and implementation: diverged runs, spread of the final test accuracy over
    seeds, mean fluctuation and largest drop; per experiment: the largest gap between the two
    implementations' test and train accuracy curves over all seeds, and whether every seed
    started both sides from the same weights."""
    grouped = runs.groupby(EXPERIMENT + ["implementation"], sort=False)
    per_impl = pd.DataFrame({
        "diverged_runs": grouped["diverged"].sum(),
        "seed_spread": grouped["final_test_accuracy"].agg(_std),
        "fluctuation": grouped["fluctuation"].mean(),
        "largest_drop": grouped["largest_drop"].max(),
    }).unstack("implementation")
    table = pd.DataFrame({f"{m}_{impl}": per_impl[(m, impl)]
                          for m in ["diverged_runs", "seed_spread", "fluctuation", "largest_drop"]
                          for impl in IMPLEMENTATIONS})
    gaps: dict[tuple, dict] = {}
    for (model, setting), _, numpy_run, tf_run in _pairs(runs, results):
        entry = gaps.setdefault((model, setting), {"test": 0.0, "train": 0.0, "same_start": True})
        entry["test"] = max(entry["test"], tracking_gap(numpy_run["history"], tf_run["history"]))
        entry["train"] = max(entry["train"], tracking_gap(numpy_run["history"], tf_run["history"],
                                                          "train_eval_accuracy"))
        entry["same_start"] &= (numpy_run["initial_weights_sha256"]
                                == tf_run["initial_weights_sha256"])
    table = table.reset_index()
    key = list(zip(table["model"], table["setting"]))
    table["max_test_curve_gap"] = [gaps.get(k, {}).get("test", np.nan) for k in key]
    table["max_train_curve_gap"] = [gaps.get(k, {}).get("train", np.nan) for k in key]
    table["same_initial_weights"] = [gaps.get(k, {}).get("same_start", False) for k in key]
    return _model_order(table)


def verdict_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per experiment and implementation: the most common verdict over seeds, how many seeds gave
    it, every seed's verdict, and the rule of the first seed with that verdict."""
    rows = []
    for keys, group in runs.groupby(EXPERIMENT + ["implementation"], sort=False):
        counts = Counter(group["verdict"])
        verdict, count = counts.most_common(1)[0]
        rows.append({**dict(zip(EXPERIMENT + ["implementation"], keys)), "verdict": verdict,
                     "agreeing_seeds": count, "seeds": len(group),
                     "all_verdicts": ", ".join(group["verdict"]),
                     "rule": group.loc[group["verdict"] == verdict, "rule"].iloc[0]})
    return _model_order(pd.DataFrame(rows))


def curves(results: list[dict], model: str, setting: int, implementation: str, key: str):
    """(samples (E,), mean (E,), min (E,), max (E,)) of ``key`` over the seeds of one experiment
    and implementation, over the evaluations every seed reached."""
    histories = [r["history"] for r in results
                 if (r["spec"]["model"], r["spec"]["setting"] + 1, r["spec"]["implementation"])
                 == (model, setting, implementation)]
    if not histories:
        empty = np.array([])
        return empty, empty, empty, empty
    n = min(len(h) for h in histories)
    values = np.stack([column(h[:n], key) for h in histories])
    return column(histories[0][:n],
                  "samples_seen"), *(f(values, axis=0) for f in (np.mean, np.min, np.max))


def _projections(history: list[dict]) -> np.ndarray:
    """(E, K) the records' weight projections; NaN rows where a record has none."""
    rows = [r.get("weight_projection") for r in history]
    width = max((len(p) for p in rows if p), default=0)
    return np.array([[np.nan if v is None else v for v in p] if p else [np.nan] * width
                     for p in rows], dtype=float).reshape(len(rows), width)


def drift_series(results: list[dict]) -> list[dict]:
    """Per experiment and seed both sides ran, one value per evaluation both reached:
    ``weights``, the relative distance ||P(w_numpy - w_tf)|| / ||P w_tf|| of the weight
    projections (``reports.experiment.drift``); ``seed_weights``, the same distance between this
    seed's NumPy run and the next seed's (``other_seed``, cyclically; None with one seed); and
    ``test_accuracy_gap`` / ``test_loss_gap``, |NumPy - TF| of the test accuracy and loss.
    Missing or non-finite values are None."""
    by = {(r["spec"]["model"], r["spec"]["setting"] + 1, r["spec"]["seed"],
           r["spec"]["implementation"]): r for r in results}
    seeds: dict[tuple, list[int]] = {}
    for model, setting, seed, impl in by:
        if impl == "numpy" and (model, setting, seed, "tensorflow") in by:
            seeds.setdefault((model, setting), []).append(seed)
    series = []
    for (model, setting), found in seeds.items():
        found.sort()
        for index, seed in enumerate(found):
            numpy_run, tf_run = by[(model, setting, seed, "numpy")], by[(model, setting, seed,
                                                                         "tensorflow")]
            n = min(len(numpy_run["history"]), len(tf_run["history"]))
            ours, theirs = numpy_run["history"][:n], tf_run["history"][:n]
            entry = {"model": model, "setting": setting, "epochs": numpy_run["spec"]["epochs"],
                     "lr": numpy_run["spec"]["lr"], "seed": seed,
                     "samples_seen": [int(r["samples_seen"]) for r in ours],
                     "weights": relative_distance(_projections(ours), _projections(theirs)),
                     "other_seed": None, "seed_weights": None}
            for key in ("accuracy", "loss"):
                entry[f"test_{key}_gap"] = np.abs(column(ours, f"test_{key}")
                                                  - column(theirs, f"test_{key}"))
            if len(found) > 1:
                other = by[(model, setting, found[(index + 1) % len(found)], "numpy")]["history"]
                m = min(n, len(other))
                distance = np.full(n, np.nan)
                distance[:m] = relative_distance(_projections(ours[:m]), _projections(other[:m]))
                entry.update(other_seed=found[(index + 1) % len(found)], seed_weights=distance)
            series.append({key: [None if not np.isfinite(v) else float(v) for v in value]
                           if isinstance(value, np.ndarray) else value
                           for key, value in entry.items()})
    order = {name: i for i, name in enumerate(ALL_SETTINGS)}
    return sorted(series, key=lambda s: (order[s["model"]], s["setting"], s["seed"]))


def _finite(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values or []], dtype=float)


def _last(values: np.ndarray) -> float:
    return float(values[-1]) if values.size else np.nan


def _nanmax(values: np.ndarray) -> float:
    return float(np.nanmax(values)) if np.isfinite(values).any() else np.nan


def drift_table(series: list[dict]) -> pd.DataFrame:
    """Per experiment over its seeds: the NumPy-TF weight distance at the end (max over seeds)
    and at its largest over training, the distance between seeds at the end (min over seeds),
    and the largest |NumPy - TF| test accuracy and test loss at any evaluation."""
    rows: dict[tuple, dict] = {}
    for s in series:
        row = rows.setdefault((s["model"], s["setting"], s["epochs"], s["lr"]), {
            "final_weight_distance": np.nan, "max_weight_distance": np.nan,
            "final_seed_distance": np.nan, "max_test_accuracy_gap": np.nan,
            "max_test_loss_gap": np.nan})
        weights, seed_weights = _finite(s["weights"]), _finite(s["seed_weights"])
        for name, value, pick in (
                ("final_weight_distance", _last(weights), np.fmax),
                ("max_weight_distance", _nanmax(weights), np.fmax),
                ("final_seed_distance", _last(seed_weights), np.fmin),
                ("max_test_accuracy_gap", _nanmax(_finite(s["test_accuracy_gap"])), np.fmax),
                ("max_test_loss_gap", _nanmax(_finite(s["test_loss_gap"])), np.fmax)):
            row[name] = float(pick(row[name], value))
    table = pd.DataFrame([{**dict(zip(EXPERIMENT, key)), **row} for key, row in rows.items()],
                         columns=EXPERIMENT + ["final_weight_distance", "max_weight_distance",
                                               "final_seed_distance", "max_test_accuracy_gap",
                                               "max_test_loss_gap"])
    return _model_order(table)


@dataclass(frozen=True)
class ReportTables:
    """Every table of a report, computed from its finished runs by ``report_tables``; the drift
    series (``drift_series``) are the per-evaluation distances the drift table aggregates."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    runtime: pd.DataFrame
    stability: pd.DataFrame
    verdicts: pd.DataFrame
    drift_series: list[dict]
    drift: pd.DataFrame

    def frames(self) -> dict[str, pd.DataFrame]:
        """The tables by name, in the order results.json lists them."""
        return {"summary": self.summary, "runtime": self.runtime, "stability": self.stability,
                "verdicts": self.verdicts, "drift": self.drift, "runs": self.runs}


def report_tables(results: list[dict]) -> ReportTables:
    """The tables of the runs ``results`` (as ``reports.experiment.runner.train_one`` returns
    them)."""
    runs = runs_table(results)
    series = drift_series(results)
    return ReportTables(runs=runs, summary=summary_table(runs), runtime=runtime_table(runs),
                        stability=stability_table(runs, results), verdicts=verdict_table(runs),
                        drift_series=series, drift=drift_table(series))
