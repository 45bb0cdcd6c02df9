"""What a finished sweep leaves in its directory: trials table, best config, objective plot.

- ``trials.csv`` and ``trials.md``: one row per trial: its swept values, its seed and role
  (sampled, or a seed repeat of trial 0's values), cycles run, status (done, stopped early
  by ASHA, error), objective, best validation Sharpe, and the sealed-test Sharpe of its best
  program (by validation Sharpe, read from the trial's archive). The test column is shown
  beside the objective and never used to choose.
- In ``trials.md`` above the table, the spread of the objective between the sampled trials
  beside its spread between the seeds of trial 0's values (trial 0 and the seed repeats),
  over the trials that ran every cycle: a winner ahead of the others by no more than the
  seeds differ is noise.
- ``best_config.yaml``: the whole config of the trial with the highest objective, a plain
  run (no sweep), which ``launch.py --config-path SWEEP_DIR --config-name best_config``
  runs as it is.
- ``objective.png``: the objective against each swept value, one panel per key.

Not responsible for: running trials (``aiforml.sweep``) or reading search spaces
(``aiforml.tune_space``).
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

import yaml

from aiforml.archive import open_run
from aiforml.config import SweepConfig
from aiforml.tune_space import NO_SCORE, SEED, Distribution, apply_params

TRIALS_CSV = "trials.csv"
TRIALS_MD = "trials.md"
BEST_CONFIG = "best_config.yaml"
PLOT = "objective.png"


SAMPLED, REPEAT = "sampled", "seed repeat"  # a trial's role, from its seed (aiforml.tune_space.trial_points)


def trial_rows(grid: Any, keys: list[str], cycles: int, runs_dir: Path, base_seed: int,
               num_samples: int) -> list[dict[str, Any]]:
    """One row per Tune result: swept values, seed, role, objective, validation and sealed-test Sharpe.

    Trial ``k`` ran with seed ``base_seed + k``; those from ``num_samples`` on are seed repeats.
    """
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        done = metrics.get("cycle")
        status = "error" if result.error else "done" if done == cycles else "stopped early"
        trial = metrics.get("trial_id") or Path(result.path).name.removeprefix("trial_")
        run_dir = runs_dir / trial
        seed = result.config.get(SEED)
        rows.append({
            "trial": trial,
            **{key: result.config.get(key) for key in keys},
            SEED: seed, "role": REPEAT if seed is not None and seed >= base_seed + num_samples else SAMPLED,
            "cycles": done, "status": status, "objective": metrics.get("objective"),
            "best_val_sharpe": metrics.get("best_val_sharpe"),
            "test_sharpe_of_best": best_program_test_sharpe(run_dir),
            "run_dir": str(run_dir),
        })
    return rows


def best_program_test_sharpe(run_dir: Path) -> float | None:
    """Sealed-test Sharpe of the run's best program by validation Sharpe (None: none ran)."""
    try:
        archive = open_run(run_dir)
    except FileNotFoundError:
        return None
    with archive:
        top = archive.top(1, by="val_sharpe", include_test=True)
    return top[0].get("test_sharpe") if top else None


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row with the highest objective (first on ties); test scores play no part."""
    scored = [r for r in rows if r["objective"] is not None]
    return max(scored, key=lambda r: r["objective"]) if scored else None


def write_sweep_outputs(grid: Any, base: dict[str, Any], parsed: dict[str, Distribution],
                        sweep: SweepConfig, sweep_dir: Path, runs_dir: Path) -> dict[str, Path]:
    """Write table, best config and plot into ``sweep_dir``; their paths by name."""
    keys = list(parsed)
    rows = trial_rows(grid, keys, base["loop"]["cycles"], runs_dir, base[SEED], sweep.num_samples)
    out = {"trials table": write_table(rows, sweep_dir, sweep, base[SEED])}
    best = best_row(rows)
    if best is not None:
        out["best config"] = write_best_config(base, {k: best[k] for k in [*keys, SEED]}, best, sweep_dir)
    out["objective plot"] = plot_objective(rows, parsed, sweep, sweep_dir / PLOT)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def spread_rows(rows: list[dict[str, Any]], base_seed: int) -> list[dict[str, Any]]:
    """The objective's spread between the sampled trials and between the seeds of trial 0's values.

    Only trials that ran every cycle with a score count (``left_out``: the others): a trial
    stopped early has an objective over fewer cycles, and ``NO_SCORE`` is a floor, not a
    value. ``std`` is the sample standard deviation (None below two trials).
    """
    groups = {
        "between trials (sampled, one seed each)": [r for r in rows if r["role"] == SAMPLED],
        "between seeds (trial 0's values)": [r for r in rows if r["role"] == REPEAT or r[SEED] == base_seed],
    }
    out = []
    for name, group in groups.items():
        done = [r for r in group if r["status"] == "done" and r["objective"] is not None
                and r["objective"] > NO_SCORE]
        values = [float(r["objective"]) for r in done]
        out.append({"spread": name, "trials": len(values), "left_out": len(group) - len(values),
                    "seeds": ", ".join(str(seed) for seed in sorted(r[SEED] for r in done)) or "-",
                    "mean": statistics.fmean(values) if values else None,
                    "std": statistics.stdev(values) if len(values) >= 2 else None,
                    "min": min(values, default=None), "max": max(values, default=None)})
    return out


def _spread_lines(rows: list[dict[str, Any]], base_seed: int) -> list[str]:
    columns = ["spread", "trials", "left_out", "seeds", "mean", "std", "min", "max"]
    lines = ["Spread of the objective over the trials that ran every cycle with a score (those stopped early, "
             "failed or without a score are left out). A best trial ahead of the others by no more than "
             "the seeds of one configuration differ is noise.",
             "", "| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    lines += ["| " + " | ".join(_fmt(s[c]) for c in columns) + " |" for s in spread_rows(rows, base_seed)]
    return [*lines, ""]


def write_table(rows: list[dict[str, Any]], sweep_dir: Path, sweep: SweepConfig, base_seed: int) -> Path:
    """``trials.csv`` (all columns) and ``trials.md`` (the spreads, then the readable columns), best first."""
    rows = sorted(rows, key=lambda r: -math.inf if r["objective"] is None else r["objective"], reverse=True)
    columns = list(rows[0]) if rows else ["trial"]
    with (sweep_dir / TRIALS_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    shown = [c for c in columns if c != "run_dir"]
    lines = [f"Objective: {sweep.objective} (validation only); test_sharpe_of_best is the sealed-test "
             "Sharpe of each trial's best program by validation Sharpe, shown beside it, never used to choose.",
             "", *_spread_lines(rows, base_seed), "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in shown) + " |" for r in rows]
    (sweep_dir / TRIALS_MD).write_text("\n".join(lines) + "\n")
    return sweep_dir / TRIALS_CSV


def write_best_config(base: dict[str, Any], params: dict[str, Any], best: dict[str, Any],
                      sweep_dir: Path) -> Path:
    """The best trial's whole config, a plain run that ``launch.py`` accepts as its primary config."""
    path = sweep_dir / BEST_CONFIG
    header = (f"# The best trial ({best['trial']}, objective {_fmt(best['objective'])}) of the sweep in "
              f"{sweep_dir}.\n# A whole config for one run:\n"
              f"#   python launch.py --config-path {sweep_dir} --config-name {path.stem}\n")
    path.write_text(header + yaml.safe_dump(apply_params(base, params), sort_keys=False))
    return path


def plot_objective(rows: list[dict[str, Any]], parsed: dict[str, Distribution], sweep: SweepConfig,
                   path: Path) -> Path:
    """Objective against each swept value (log axis for loguniform); stopped trials hollow.

    Trials without a score (``NO_SCORE``: no program ran) are counted in the title, not drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(parsed)
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.5), squeeze=False)
    scored = [r for r in rows if r["objective"] is not None and r["objective"] > NO_SCORE]
    for ax, key in zip(axes[0], keys, strict=True):
        for done in (True, False):
            pts = [r for r in scored if (r["status"] == "done") == done]
            xs = [r[key] if isinstance(r[key], int | float) else str(r[key]) for r in pts]
            ax.scatter(xs, [r["objective"] for r in pts], facecolors="C0" if done else "none",
                       edgecolors="C0", label="ran every cycle" if done else "stopped early")
        if parsed[key].log_scale:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(sweep.objective)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    unscored = f", {len(rows) - len(scored)} without a score" if len(scored) < len(rows) else ""
    fig.suptitle(f"{len(rows)} trials{unscored}: {sweep.objective} against each swept value")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
