"""The end-of-run report: PNG plots and a Markdown summary built from a run's archive.

Responsible for: reading the archive (``aiforml.archive``) and writing, under
``RUN_DIR/report/``: ``progress.png`` (compile rate, mean and max reward, best validation
Sharpe per cycle), ``errors.png`` (error classes per cycle, stacked), ``families.png``
(model-family shares per cycle, stacked), ``diversity.png`` (shares with own features,
target and CV, the top family's share, and behavioural clusters per cycle, from
``aiforml.diversity.run_diversity``), ``per_era.png`` (cumulative per-era correlation
of the top programs and of the default program, on validation and on the sealed test
eras), and ``report.md`` (run facts, the best validation Sharpe beside its deflated Sharpe
ratio for the number of distinct programs tried, first vs last quarter of cycles so a
collapse shows, the top programs with validation and sealed-test scores side by side, the
diversity table per cycle, links to the plots).
The top programs are chosen by validation only; test scores are shown, never used.
Not responsible for: computing metrics or rewards (the archive holds them), TensorBoard.

Run: ``python -m aiforml.report RUN_DIR [--top N]`` (the loop calls ``write_report``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # object API on the Agg canvas: no pyplot state
from matplotlib.ticker import MaxNLocator

from aiforml.archive import DESCRIPTORS, Archive, open_run, summarize_cycle
from aiforml.descriptors import MODEL_FAMILIES
from aiforml.diversity import run_diversity
from aiforml.metrics import deflated_sharpe, selection_benchmark
from aiforml.pipeline.defaults import default_program_source
from aiforml.program import Program
from aiforml.tasks import TASKS

REPORT_DIR = "report"
PLOTS = {
    "progress": "Compile rate, reward and best validation Sharpe per cycle",
    "errors": "Error classes per cycle",
    "families": "Model families per cycle",
    "diversity": "Own features / target / CV, top family share and behavioural clusters per cycle",
    "per_era": "Cumulative per-era correlation: top programs vs the default program",
}
MAX_ERROR_CLASSES = 8  # the rest are drawn as "other errors"
_ROW_COLUMNS = ("cycle", "status", "error_class", "reward", "val_sharpe", "test_sharpe",
                "program_hash", *DESCRIPTORS)


# --- figures of the run (pure) -------------------------------------------------------------
def quarter_figures(rows: list[dict]) -> dict[str, float | str | None]:
    """Pooled figures of the rows of some cycles: rates, rewards, best programs, collapse."""
    s = summarize_cycle(rows)
    ok = [r for r in rows if r["status"] == "ok" and r["val_sharpe"] is not None]
    best = max(ok, key=lambda r: r["val_sharpe"], default=None)  # by validation, never test
    family, share = next(iter(s["family_shares"].items()), (None, None))
    return {
        "cycles": f"{rows[0]['cycle']}-{rows[-1]['cycle']}" if rows else "-",
        "programs": len(rows), "compile_rate": s["compile_rate"], "mean_reward": s["mean_reward"],
        "best_val_sharpe": best["val_sharpe"] if best else None,
        "test_sharpe_of_best": best["test_sharpe"] if best else None,
        "share_own_features": s["share_own_features"], "share_own_target": s["share_own_target"],
        "share_own_cv": s["share_own_cv"],
        "top_family": family, "top_family_share": share,
    }


def quarter_cycles(rows: list[dict]) -> tuple[set[int], set[int]]:
    """The first and the last quarter of the cycles in ``rows`` (at least one cycle each)."""
    cycles = sorted({r["cycle"] for r in rows})
    q = max(1, math.ceil(len(cycles) / 4))
    return set(cycles[:q]), set(cycles[-q:])


def first_last_quarters(rows: list[dict]) -> tuple[dict, dict]:
    """Figures of the first and the last quarter of cycles (at least one cycle each)."""
    first, last = quarter_cycles(rows)
    return (quarter_figures([r for r in rows if r["cycle"] in first]),
            quarter_figures([r for r in rows if r["cycle"] in last]))


def cumulative(per_era: list[float | None] | None) -> list[float]:
    """Running sum of per-era correlations; an era that scored NaN adds 0."""
    total, out = 0.0, []
    for x in per_era or []:
        total += x if x is not None else 0.0
        out.append(total)
    return out


def deflated_best(rows: list[dict], best: dict | None) -> dict | None:
    """The best validation Sharpe beside its deflated Sharpe ratio (``aiforml.metrics``).

    The trials are the distinct programs that scored (``ok`` with a validation Sharpe; one
    per program hash, since a cached program is not a new trial); the best program's
    per-era validation corr are its returns. ``dsr`` is None where it is undefined (the
    trading task archives no per-era scores). None when nothing scored.
    """
    trials = {r["program_hash"]: r["val_sharpe"] for r in rows
              if r["status"] == "ok" and r["val_sharpe"] is not None and r["program_hash"]}
    if best is None or not trials:
        return None
    per_era = [x for x in best.get("val_per_era") or [] if x is not None]
    dsr = deflated_sharpe(np.asarray(per_era), np.asarray(list(trials.values())))
    return {"sharpe": best["val_sharpe"], "program_hash": best["program_hash"], "n_trials": len(trials),
            "benchmark": selection_benchmark(np.asarray(list(trials.values()))),
            "dsr": dsr if math.isfinite(dsr) else None}


def find_baseline(archive: Archive) -> dict | None:
    """The default program's row: the stored baseline, else an ok sample with its code."""
    base = archive.baseline()
    if base is not None:
        return base
    default_hashes = {Program(default_program_source(task=task)).hash for task in TASKS}
    for row in archive.top(n=10**9):
        if row["program_hash"] in default_hashes:
            return row
    return None


# --- plots ---------------------------------------------------------------------------------
def _save(fig: Figure, path: Path) -> Path:
    for ax in fig.axes:  # cycles and eras are whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_progress(summary: list[dict], path: Path) -> Path:
    cycles = [s["cycle"] for s in summary]
    fig = Figure(figsize=(12, 3.6))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    ax1.plot(cycles, [s["compile_rate"] for s in summary], marker="o")
    ax1.set(title="compile rate (infra errors excluded)", xlabel="cycle", ylim=(-0.02, 1.02))
    ax2.plot(cycles, [s["mean_reward"] for s in summary], marker="o", label="mean")
    ax2.plot(cycles, [s["max_reward"] for s in summary], marker="^", label="max")
    ax2.set(title="reward", xlabel="cycle")
    ax2.legend()
    ax3.plot(cycles, [s["best_val_sharpe"] for s in summary], marker="o", alpha=0.6, label="this cycle")
    ax3.plot(cycles, [s["best_val_sharpe_so_far"] for s in summary], drawstyle="steps-post",
             label="best so far")
    ax3.set(title="best validation Sharpe", xlabel="cycle")
    ax3.legend()
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def _stacked(ax: Axes, cycles: list[int], series: dict[str, list[float]], colors: list) -> None:
    bottom = [0.0] * len(cycles)
    for (name, values), color in zip(series.items(), colors, strict=True):
        ax.bar(cycles, values, bottom=bottom, label=name, color=color, width=0.85)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    ax.set_xlabel("cycle")
    ax.grid(alpha=0.3, axis="y")


def _palette(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def plot_errors(summary: list[dict], path: Path) -> Path:
    totals = Counter()
    for s in summary:
        totals.update(s["error_classes"])
    keep = [name for name, _ in totals.most_common(MAX_ERROR_CLASSES)]
    series = {name: [s["error_classes"].get(name, 0) for s in summary] for name in keep}
    rest = [sum(v for k, v in s["error_classes"].items() if k not in keep) for s in summary]
    if any(rest):
        series["other errors"] = rest
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    if series:
        _stacked(ax, [s["cycle"] for s in summary], series, _palette(len(series)))
    else:
        ax.text(0.5, 0.5, "no program failed", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="failed programs per cycle, by error class", ylabel="programs")
    return _save(fig, path)


def _family_color(family: str) -> tuple:
    i = MODEL_FAMILIES.index(family)  # dark hues of tab20 first, then the light ones
    return colormaps["tab20"]((2 * i) % 20 + (2 * i) // 20)


def plot_families(summary: list[dict], path: Path) -> Path:
    names = [f for f in MODEL_FAMILIES if any(f in s["family_shares"] for s in summary)]
    series = {f: [s["family_shares"].get(f, 0.0) for s in summary] for f in names}
    fig = Figure(figsize=(10, 4))
    ax = fig.subplots()
    if series:  # one fixed colour per family, the same in every run's report
        _stacked(ax, [s["cycle"] for s in summary], series,
                 [_family_color(f) for f in names])
    ax.set(title="model families per cycle (share of programs with code)", ylabel="share",
           ylim=(0, 1.0))
    return _save(fig, path)


def plot_diversity(div: list[dict], path: Path) -> Path:
    cycles = [d["cycle"] for d in div]
    fig = Figure(figsize=(12, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    for key, label in (("share_own_features", "own features"), ("share_own_target", "own target"),
                       ("share_own_cv", "own CV")):
        ax1.plot(cycles, [d[key] for d in div], marker="o", label=label)
    ax1.plot(cycles, [max(d["family_shares"].values(), default=None) for d in div], color="black",
             linestyle="--", label="top model family")
    ax1.set(title="share of programs with code", xlabel="cycle", ylim=(-0.02, 1.02))
    ax1.legend(fontsize=8)
    ax2.bar(cycles, [d["clusters"] or 0 for d in div], width=0.85)
    ax2.set(title="behavioural clusters among programs that ran", xlabel="cycle", ylabel="clusters")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_per_era(top: list[dict], baseline: dict | None, path: Path) -> Path:
    fig = Figure(figsize=(12, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, split, title in zip(axes, ("val", "test"), ("validation eras", "sealed test eras"),
                                strict=True):
        for rank, row in enumerate(top, 1):
            label = f"#{rank} {row['model_family']} (val Sharpe {row['val_sharpe']:.2f})"
            ax.plot(cumulative(row[f"{split}_per_era"]), label=label)
        if baseline is not None:
            ax.plot(cumulative(baseline[f"{split}_per_era"]), color="black", linestyle="--",
                    linewidth=2, label="default program")
        ax.set(title=f"cumulative per-era corr, {title}", xlabel="era")
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("cumulative corr")
    if top or baseline is not None:
        axes[1].legend(loc="upper left", fontsize=8)
    else:
        axes[0].text(0.5, 0.5, "no program ran", ha="center", va="center", transform=axes[0].transAxes)
    return _save(fig, path)


# --- markdown ------------------------------------------------------------------------------
def _f(x: float | str | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    return x if isinstance(x, str) else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def facts_section(run_dir: Path, rows: list[dict], baseline: dict | None,
                  best: dict | None = None) -> list[str]:
    statuses = Counter(r["status"] for r in rows)
    cycles = sorted({r["cycle"] for r in rows})
    base = (f"validation Sharpe {_f(baseline['val_sharpe'])}, sealed test Sharpe "
            f"{_f(baseline['test_sharpe'])}" if baseline else "not in the archive")
    deflated = deflated_best(rows, best)
    best_line = (f"- best validation Sharpe: {_f(deflated['sharpe'])} (`{deflated['program_hash']}`), deflated "
                 f"Sharpe ratio {_f(deflated['dsr'])} for {deflated['n_trials']} distinct programs that scored "
                 f"(the probability that its true Sharpe is above 0 once the search is counted: the best of "
                 f"that many programs without skill would reach {_f(deflated['benchmark'])} by luck)"
                 if deflated else "- best validation Sharpe: -")
    return [
        "## Run", "",
        f"- run directory: `{run_dir}`",
        f"- cycles archived: {len(cycles)}" + (f" ({cycles[0]} to {cycles[-1]})" if cycles else ""),
        f"- programs evaluated: {len(rows)}, distinct programs: "
        f"{len({r['program_hash'] for r in rows if r['program_hash']})}",
        "- statuses: " + (", ".join(f"{k} {v}" for k, v in statuses.most_common()) or "-"),
        best_line,
        f"- default program: {base}", "",
    ]


QUARTER_ROWS = (
    ("compile rate", "compile_rate", _pct), ("mean reward", "mean_reward", _f),
    ("best validation Sharpe", "best_val_sharpe", _f),
    ("sealed test Sharpe of the best-by-validation program", "test_sharpe_of_best", _f),
    ("share defining own features", "share_own_features", _pct),
    ("share defining own target", "share_own_target", _pct),
    ("share defining own CV", "share_own_cv", _pct),
    ("top model family", "top_family", _f), ("top model family share", "top_family_share", _pct),
)


def quarter_section(rows: list[dict]) -> list[str]:
    first, last = first_last_quarters(rows)
    lines = ["## First vs last quarter of cycles", "",
             f"| | first (cycles {first['cycles']}) | last (cycles {last['cycles']}) |",
             "|---|---:|---:|"]
    lines += [f"| {label} | {fmt(first[key])} | {fmt(last[key])} |" for label, key, fmt in QUARTER_ROWS]
    lines += ["", "A rising top-family share with a falling share of own features means the "
                  "policy collapsed onto one recipe instead of discovering new ones.", ""]
    return lines


def top_section(top: list[dict], baseline: dict | None) -> list[str]:
    lines = ["## Top programs (chosen by validation Sharpe; sealed test shown, never used)", "",
             "| # | cycle | hash | model | own features | val Sharpe | val corr | test Sharpe |"
             " test corr | val - test Sharpe |", "|---:|---:|---|---|---|---:|---:|---:|---:|---:|"]
    shown = [(str(i), r) for i, r in enumerate(top, 1)] + ([("default", baseline)] if baseline else [])
    for rank, r in shown:
        gap = (r["val_sharpe"] - r["test_sharpe"]
               if r["val_sharpe"] is not None and r["test_sharpe"] is not None else None)
        lines.append(f"| {rank} | {r['cycle']} | `{r['program_hash']}` | {r['model_family']} | "
                     f"{'yes' if r['defines_features'] else 'no'} | {_f(r['val_sharpe'])} | "
                     f"{_f(r['val_mean_corr'], 4)} | {_f(r['test_sharpe'])} | "
                     f"{_f(r['test_mean_corr'], 4)} | {_f(gap)} |")
    if not top:
        lines.append("\nNo program ran successfully.")
    lines += ["", "A large validation - test gap means the search overfit the validation eras.",
              "Export the code with `python -m aiforml.archive RUN_DIR --export DIR`.", ""]
    return lines


def trading_section(top: list[dict], baseline: dict | None) -> list[str]:
    """The trading statistics of the top programs beside buy-and-hold's (trading runs only)."""
    shown = [(str(i), r) for i, r in enumerate(top, 1)] + ([("default", baseline)] if baseline else [])
    if not any(r.get("val_total_return") is not None for _, r in shown):
        return []
    lines = ["## Trading (validation; sealed test in brackets)", "",
             "| # | Sharpe | total return | max drawdown | turnover | hit rate | buy-and-hold Sharpe |"
             " buy-and-hold total return |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rank, r in shown:
        cells = [f"{_f(r[f'val_{m}'])} ({_f(r[f'test_{m}'])})" for m in
                 ("sharpe", "total_return", "max_drawdown", "turnover", "hit_rate", "bh_sharpe", "bh_total_return")]
        lines.append(f"| {rank} | " + " | ".join(cells) + " |")
    return lines + [""]


def diversity_section(div: list[dict], cluster_corr: float) -> list[str]:
    lines = ["## Diversity per cycle", "",
             "| cycle | programs | families | top family | own features | own target | own CV |"
             " clusters |", "|---:|---:|---:|---|---:|---:|---:|---:|"]
    for d in div:
        top = max(d["family_shares"].items(), key=lambda kv: kv[1], default=None)
        lines.append(f"| {d['cycle']} | {d['n_programs']} | {d['distinct_families']} | "
                     f"{f'{top[0]} {_pct(top[1])}' if top else '-'} | {_pct(d['share_own_features'])} | "
                     f"{_pct(d['share_own_target'])} | {_pct(d['share_own_cv'])} | "
                     f"{'-' if d['clusters'] is None else d['clusters']} |")
    lines += ["", f"Clusters: distinct programs that ran, best validation Sharpe first, each joining the "
                  f"first cluster whose founder it correlates with above {cluster_corr} (mean per-era "
                  "rank corr of validation predictions), else founding one.", ""]
    return lines


def _cluster_corr(run_dir: Path) -> float:
    """``diversity.cluster_corr`` of the run's saved config, else the default."""
    path = run_dir / "config.yaml"
    saved = yaml.safe_load(path.read_text()) if path.is_file() else None
    return float(((saved or {}).get("diversity") or {}).get("cluster_corr", 0.9))


# --- entry points --------------------------------------------------------------------------
def write_report(run_dir: Path, top_n: int = 5) -> Path:
    """Write the plots and ``report.md`` under ``RUN_DIR/report``; returns report.md's path."""
    run_dir = Path(run_dir)
    with open_run(run_dir) as archive:
        rows = archive.rows(_ROW_COLUMNS)
        summary = archive.cycle_summary()
        top = archive.top(top_n, by="val_sharpe")
        best = archive.top(1, by="val_sharpe")
        baseline = find_baseline(archive)
    out = run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# aiforml run report", ""] + facts_section(run_dir, rows, baseline, best[0] if best else None)
    if summary:
        plot_progress(summary, out / "progress.png")
        plot_errors(summary, out / "errors.png")
        plot_families(summary, out / "families.png")
        cluster_corr = _cluster_corr(run_dir)
        div = run_diversity(run_dir, cluster_corr)
        plot_diversity(div, out / "diversity.png")
        plot_per_era(top, baseline, out / "per_era.png")
        lines += quarter_section(rows) + top_section(top, baseline) + trading_section(top, baseline)
        lines += diversity_section(div, cluster_corr)
        lines += ["## Plots", ""]
        lines += [f"![{title}]({name}.png)\n" for name, title in PLOTS.items()]
    else:
        lines.append("No cycle was archived yet: nothing to plot.")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aiforml.report", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run directory holding archive.sqlite")
    parser.add_argument("--top", type=int, default=5, help="programs in the table and the per-era plot")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.run_dir, top_n=args.top)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
