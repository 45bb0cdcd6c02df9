"""Does an exported predict.pkl load and run in Numerai's runner image? A pinned check.

    make numerai-compat                                   # the default program, a Ridge program, a scikit-learn pipeline
    make numerai-compat PKL=out/predict.pkl LIVE=v5/live.parquet   # your own export
    python benchmarks/numerai_compat.py [--pickle PKL --live LIVE]

Numerai's hosted runner (github.com/numerai/numerai-predict) runs uploads in an image
pinned per Python version; for Python 3.11: numpy 2.1.3, pandas 2.3.1, scikit-learn
1.6.1, lightgbm 4.6.0, cloudpickle 3.1.1, torch 2.7.1. This script builds, once, a venv
with those versions (and pyarrow) under ~/.cache/aiforml/numerai-predict-py311 from PyPI
(the only step that needs the network), then runs ``aiforml/export/runner.py`` (the
runner's rules: ``pd.read_pickle``, 1 or 2 parameters, a DataFrame of the input's length
without NaN in [0, 1], era by era) with that venv's Python. torch is left out: PyPI's
torch 2.7.1 is a multi-GB CUDA build; a program that uses torch is not checked by this
script (add ``torch==2.7.1`` to PINS to check one). Needs a ``python3.11`` (pickled code is
bytecode of one Python version). Without ``--pickle`` it exports three programs on a small
synthetic v5 folder and checks each; the third, a scikit-learn Pipeline, has no portable
form and is pickled as is: whether it loads under scikit-learn 1.6.1 is what this tells.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from aiforml.export.upload import RUNNER  # the runner's rules, as export checks a pickle

PINS = ("numpy==2.1.3", "pandas==2.3.1", "scikit-learn==1.6.1", "lightgbm==4.6.0", "cloudpickle==3.1.1",
        "pyarrow==21.0.0")
VENV = Path.home() / ".cache" / "aiforml" / "numerai-predict-py311"

RIDGE = '''\
def create_features(df, feature_cols):
    X = df[feature_cols].astype("float32") - 2.0
    X["row_mean"] = X.mean(axis=1)
    return X


def define_model():
    from sklearn.linear_model import Ridge

    return Ridge(alpha=10.0)
'''

SKLEARN_PIPELINE = '''\
def define_model():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.linear_model import Ridge

    return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
'''


def ensure_env() -> Path:
    """The pinned venv's python, built on first use (a marker file records the pins)."""
    python, marker = VENV / "bin" / "python", VENV / ".pins"
    if python.exists() and marker.is_file() and marker.read_text() == "\n".join(PINS):
        return python
    base = sys.executable if sys.version_info[:2] == (3, 11) else shutil.which("python3.11")
    if not base:
        raise SystemExit("needs python3.11 (the runner image's Python): none found on PATH")
    print(f"building {VENV} with {' '.join(PINS)} (once)", flush=True)
    subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS], check=True)
    marker.write_text("\n".join(PINS))
    return python


def run_check(python: Path, pickle_path: Path, live: Path, out: Path | None = None, quiet: bool = False) -> bool:
    """The runner under ``python``; its predictions go to ``out`` when given."""
    extra = ["--out", str(out)] if out else []
    proc = subprocess.run([str(python), "-I", str(RUNNER), "--model", str(pickle_path), "--live", str(live), *extra],
                          capture_output=True, text=True, timeout=900)
    if not quiet or proc.returncode:
        print((proc.stdout + proc.stderr).rstrip(), flush=True)
    return proc.returncode == 0


def same_predictions(python: Path, pickle_path: Path, live: Path, tmp: Path) -> bool:
    """The pinned runner's predictions against this environment's, on the same rows."""
    import pandas as pd

    ours, pinned = tmp / "ours.csv", tmp / "pinned.csv"
    if not (run_check(Path(sys.executable), pickle_path, live, ours, quiet=True)
            and run_check(python, pickle_path, live, pinned, quiet=True)):
        return False
    diff = (pd.read_csv(ours, index_col=0)["prediction"] - pd.read_csv(pinned, index_col=0)["prediction"]).abs()
    print(f"-- pinned runner against this environment: max |difference| of predictions {diff.max():.2e}")
    return bool(diff.max() < 1e-9)


def demo(python: Path) -> bool:
    """Export three programs on a small synthetic v5 folder and check each pickle."""
    from aiforml.compose import load_config
    from aiforml.data import load_dataset
    from aiforml.data.numerai_writer import write_numerai_folder
    from aiforml.export import export_program
    from aiforml.export.choose import ChosenProgram
    from aiforml.pipeline.defaults import default_program_source

    with tempfile.TemporaryDirectory(prefix="aiforml-compat-") as tmp:
        root = Path(tmp)
        cfg = load_config(["data.synthetic.n_eras=60", "data.synthetic.rows_per_era=300",
                           "data.synthetic.n_features=40", f"data.cache_dir={root / 'cache'}"])
        v5 = write_numerai_folder(load_dataset(cfg.data), root / "v5", validation_eras=12)
        programs = {"default (LightGBM)": default_program_source(cfg.env.pipeline),
                    "Ridge with its own feature": RIDGE, "scikit-learn Pipeline (not portable)": SKLEARN_PIPELINE}
        passed = {}
        for k, (name, source) in enumerate(programs.items()):
            out = root / f"export{k}"
            result = export_program(ChosenProgram(source, name), cfg, out, data_dir=v5, progress=lambda m: None)
            print(f"\n== {name}: model kept as {result.model_kind}; pickle {(out / 'predict.pkl').stat().st_size} bytes")
            for warning in result.warnings:
                print(f"   export warning: {warning}")
            print("-- live.parquet (one era, as Numerai calls it):", flush=True)
            ok = run_check(python, out / "predict.pkl", v5 / "live.parquet")
            print("-- validation.parquet (12 eras, one call per era):", flush=True)
            ok = ok and run_check(python, out / "predict.pkl", v5 / "validation.parquet")
            passed[name] = ok and same_predictions(python, out / "predict.pkl", v5 / "validation.parquet", out)
        print("\nsummary: " + "; ".join(f"{n}: {'PASS' if ok else 'FAIL'}" for n, ok in passed.items()))
        return all(ok for n, ok in passed.items() if "not portable" not in n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pickle", type=Path, help="an exported predict.pkl (default: export three programs)")
    parser.add_argument("--live", type=Path, help="a live (or any v5) parquet file to predict, with --pickle")
    args = parser.parse_args(argv)
    if bool(args.pickle) != bool(args.live):
        parser.error("--pickle and --live go together")
    python = ensure_env()
    ok = run_check(python, args.pickle, args.live) if args.pickle else demo(python)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
