"""A random grammar of pipeline steps: one function per step, each a small varied source text.

Responsible for: rendering clean, runnable sources of ``create_target``, ``create_features``,
``define_model`` and ``define_cv`` from a random generator and a data schema, and naming
the model family a source uses. Every import sits inside the function that uses it, so a
small model never has to remember an import written a hundred tokens earlier.
Not responsible for: injecting mistakes (``mistakes.py``) or assembling programs
(``corpus.py``).
"""

from __future__ import annotations

import random
import re

from aiforml.policy.schema import ColumnSchema

# Model key -> sampling group. Keys are also the labels of the corpus programs. The groups only
# balance the corpus; the archive and the reports name model families with
# ``aiforml.descriptors.MODEL_FAMILIES`` (read from the code, e.g. "hist_gbm" is "sklearn_gbm").
MODEL_GROUPS: dict[str, str] = {
    "lightgbm": "gbm",
    "hist_gbm": "gbm",
    "ridge": "linear",
    "lasso": "linear",
    "elastic_net": "linear",
    "random_forest": "forest",
    "extra_trees": "forest",
    "mlp": "mlp",
    "torch_net": "torch",
}
# Sampling weights per group (then uniform within the group): no group dominates.
GROUP_WEIGHTS: dict[str, float] = {"gbm": 0.24, "linear": 0.22, "forest": 0.2, "mlp": 0.16, "torch": 0.18}

_MODEL_PATTERNS: tuple[tuple[str, str], ...] = (
    ("lightgbm", r"\bLGBM\w*|\blightgbm\b"),
    ("hist_gbm", r"HistGradientBoosting"),
    ("elastic_net", r"\bElasticNet"),
    ("lasso", r"\bLasso"),
    ("ridge", r"\bRidge"),
    ("random_forest", r"RandomForest"),
    ("extra_trees", r"ExtraTrees"),
    ("mlp", r"MLPRegressor"),
    ("torch_net", r"\btorch\.nn\b"),
)


def classify_model(source: str) -> str:
    """The model key a program's ``define_model`` uses ("default" when it defines none)."""
    match = re.search(r"^def define_model\(.*?(?=^def |\Z)", source, re.DOTALL | re.MULTILINE)
    if match is None:
        return "default"
    body = match.group(0)
    for key, pattern in _MODEL_PATTERNS:
        if re.search(pattern, body):
            return key
    return "other"


def _pick(rng: random.Random, *options: object) -> object:
    return options[rng.randrange(len(options))]


# --- define_model ---------------------------------------------------------------------------
# Constructor arguments go one per line: with the line tokenizer each such line is one
# token, so the model chooses whole arguments instead of stitching pieces of lines.
def _sklearn_model(rng: random.Random, key: str) -> tuple[list[str], str, list[str]]:
    """(imports, constructor, arguments) of a scikit-learn model."""
    if key == "hist_gbm":
        args = [f"max_iter={_pick(rng, 100, 200, 300)}", f"learning_rate={_pick(rng, 0.03, 0.05, 0.1)}",
                f"max_depth={_pick(rng, 3, 4, 5, 6)}"]  # fmt: skip
        if rng.random() < 0.5:
            args.append(f"min_samples_leaf={_pick(rng, 20, 50, 100)}")
        return ["from sklearn.ensemble import HistGradientBoostingRegressor"], "HistGradientBoostingRegressor", args
    if key in ("ridge", "lasso", "elastic_net"):
        cls = {"ridge": "Ridge", "lasso": "Lasso", "elastic_net": "ElasticNet"}[key]
        alpha = _pick(rng, 0.1, 1.0, 10.0, 100.0) if key == "ridge" else _pick(rng, 0.0001, 0.0005, 0.001)
        args = [f"alpha={alpha}"] + ([f"l1_ratio={_pick(rng, 0.2, 0.5, 0.8)}"] if key == "elastic_net" else [])
        return [f"from sklearn.linear_model import {cls}"], cls, args
    if key in ("random_forest", "extra_trees"):
        cls = {"random_forest": "RandomForestRegressor", "extra_trees": "ExtraTreesRegressor"}[key]
        args = [f"n_estimators={_pick(rng, 50, 100, 200)}", f"max_depth={_pick(rng, 4, 6, 8)}",
                f"min_samples_leaf={_pick(rng, 20, 50, 100)}", f"max_features={_pick(rng, 0.1, 0.3, 0.5)}"]  # fmt: skip
        return [f"from sklearn.ensemble import {cls}"], cls, args + (["n_jobs=1"] if rng.random() < 0.5 else [])
    assert key == "mlp", key
    args = [f"hidden_layer_sizes={_pick(rng, '(32,)', '(64,)', '(64, 32)', '(128, 64)')}",
            f"alpha={_pick(rng, 0.0001, 0.001, 0.01)}", f"learning_rate_init={_pick(rng, 0.001, 0.003)}",
            f"max_iter={_pick(rng, 30, 50, 100)}"]  # fmt: skip
    return ["from sklearn.neural_network import MLPRegressor"], "MLPRegressor", args + (
        ["early_stopping=True"] if rng.random() < 0.5 else []
    )


def _lightgbm_args(rng: random.Random) -> list[str]:
    args = [f"n_estimators={_pick(rng, 100, 200, 300, 500)}", f"learning_rate={_pick(rng, 0.01, 0.02, 0.05, 0.1)}"]
    optional = [
        f"max_depth={_pick(rng, 3, 4, 5, 6)}",
        f"num_leaves={_pick(rng, 7, 15, 31)}",
        f"colsample_bytree={_pick(rng, 0.1, 0.3, 0.5)}",
        f"subsample={_pick(rng, 0.5, 0.8)}",
        f"min_child_samples={_pick(rng, 20, 50, 100)}",
    ]
    return args + [a for a in optional if rng.random() < 0.55] + ["verbose=-1"]


def _render_model(imports: list[str], ctor: str, args: list[str], scaled: bool) -> str:
    if scaled:
        imports = imports + ["from sklearn.pipeline import make_pipeline", "from sklearn.preprocessing import StandardScaler"]
    body = "".join(f"    {line}\n" for line in sorted(imports)) + "\n"
    call = f"{ctor}(\n" + "".join(f"        {a},\n" for a in args) + "    )"
    if scaled:
        return body + f"    model = {call}\n    return make_pipeline(StandardScaler(), model)\n"
    return body + f"    return {call}\n"


_TORCH_NET = '''\
    import numpy as np
    import torch

    class Net:
        def __init__(self):
            self.hidden = {hidden}
            self.epochs = {epochs}
            self.lr = {lr}

        def fit(self, X, y):
            X = torch.tensor(np.asarray(X, dtype=np.float32))
            y = torch.tensor(np.asarray(y, dtype=np.float32)).reshape(-1, 1)
            self.net = torch.nn.Sequential({layers})
            opt = torch.optim.{opt}(self.net.parameters(), lr=self.lr{decay})
            for _ in range(self.epochs):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(self.net(X), y)
                loss.backward()
                opt.step()
            return self

        def predict(self, X):
            X = torch.tensor(np.asarray(X, dtype=np.float32))
            with torch.no_grad():
                return self.net(X).numpy().ravel()

    return Net()
'''


def _torch_net(rng: random.Random) -> str:
    act = _pick(rng, "ReLU", "Tanh", "GELU")
    layers = f"torch.nn.Linear(X.shape[1], self.hidden), torch.nn.{act}()"
    if rng.random() < 0.4:
        layers += f", torch.nn.Linear(self.hidden, self.hidden), torch.nn.{act}()"
    layers += ", torch.nn.Linear(self.hidden, 1)"
    return _TORCH_NET.format(
        hidden=_pick(rng, 16, 32, 64),
        epochs=_pick(rng, 20, 50, 100),
        lr=_pick(rng, 0.003, 0.01, 0.03),
        layers=layers,
        opt=_pick(rng, "Adam", "AdamW"),
        decay=f", weight_decay={_pick(rng, 0.0001, 0.001)}" if rng.random() < 0.4 else "",
    )


def define_model_source(rng: random.Random, key: str) -> str:
    """Source of ``define_model`` building a ``key`` model (see MODEL_GROUPS)."""
    if key == "lightgbm":
        body = _render_model(["import lightgbm as lgb"], "lgb.LGBMRegressor", _lightgbm_args(rng), False)
    elif key == "torch_net":
        body = _torch_net(rng)
    else:
        imports, ctor, args = _sklearn_model(rng, key)
        scalable = key in ("ridge", "lasso", "elastic_net", "mlp")
        body = _render_model(imports, ctor, args, scalable and rng.random() < 0.4)
    return "def define_model():\n" + body


def sample_model_key(rng: random.Random) -> str:
    families = list(GROUP_WEIGHTS)
    family = rng.choices(families, weights=[GROUP_WEIGHTS[f] for f in families])[0]
    return rng.choice([k for k, f in MODEL_GROUPS.items() if f == family])


# --- create_target --------------------------------------------------------------------------
def create_target_source(rng: random.Random, schema: ColumnSchema) -> tuple[str, str]:
    """Source of ``create_target`` and its kind (official, blend, mean, rank)."""
    aux = list(schema.aux_targets)
    kinds = ["official", "rank"] + (["blend", "mean"] if aux else [])
    kind = rng.choice(kinds)
    if kind == "official":
        body = '    return df["target"]\n'
    elif kind == "rank":
        body = '    return df.groupby("era")["target"].rank(pct=True)\n'
    elif kind == "blend":
        w = _pick(rng, 0.5, 0.6, 0.7, 0.8)
        other = rng.choice(aux)
        body = f'    y = {w} * df["target"] + {round(1 - w, 1)} * df["{other}"].fillna(0.5)\n'
        body += _pick(rng, "    return y\n", '    return y.groupby(df["era"]).rank(pct=True)\n')
    else:
        cols = ["target"] + sorted(rng.sample(aux, k=min(len(aux), rng.randint(1, 3))), key=aux.index)
        body = f"    return df[{cols!r}].mean(axis=1)\n".replace("'", '"')
    return "def create_target(df):\n" + body, kind


# --- create_features ------------------------------------------------------------------------
def _group_cols_expr(schema: ColumnSchema, group: str, rng: random.Random) -> str:
    """An expression for the feature names of ``group``: a prefix filter, else a literal list."""
    prefix = schema.group_prefix(group)
    if prefix is not None:
        return f'[c for c in feature_cols if c.startswith("{prefix}")]'
    cols = list(schema.feature_groups[group])
    cols = cols if len(cols) <= 6 else sorted(rng.sample(cols, 6), key=cols.index)
    return "[" + ", ".join(f'"{c}"' for c in cols) + "]"


def _base_selection(rng: random.Random, schema: ColumnSchema) -> tuple[str, str]:
    n = len(schema.feature_names)
    options = ["all", "stride"] + (["head"] if n >= 20 else []) + (["groups"] if len(schema.feature_groups) >= 2 else [])
    kind = rng.choice(options)
    if kind == "all":
        return kind, ""
    if kind == "head":
        k = rng.choice([m for m in (10, 20, 40, 60, 100) if m < n])
        return kind, f"    cols = feature_cols[:{k}]\n"
    if kind == "stride":
        return kind, f"    cols = feature_cols[::{_pick(rng, 2, 3, 4)}]\n"
    order = sorted(schema.feature_groups)
    groups = sorted(rng.sample(order, k=min(len(order), rng.randint(1, 3))), key=order.index)
    prefixes = [schema.group_prefix(g) for g in groups]
    if all(prefixes):  # one prefix a line: each line is one token of the line tokenizer
        lines = "".join(f'        "{p}",\n' for p in prefixes)
        return kind, f"    prefixes = (\n{lines}    )\n    cols = [c for c in feature_cols if c.startswith(prefixes)]\n"
    names = [c for g in groups for c in schema.feature_groups[g]][:12]
    return kind, "    cols = [\n" + "".join(f'        "{c}",\n' for c in names) + "    ]\n"


_BASE_TRANSFORMS: dict[str, str] = {
    "raw": '    X = df[cols].astype("float32")\n',
    "centered": "    X = df[cols] - 2.0\n",
    "era_rank": '    X = df.groupby("era")[cols].rank(pct=True)\n',
    "era_demean": '    X = df[cols] - df.groupby("era")[cols].transform("mean")\n',
}


def _extra(rng: random.Random, kind: str, schema: ColumnSchema) -> str:
    k = _pick(rng, 5, 10, 20)
    if kind == "group_means":
        order = sorted(schema.feature_groups)
        groups = sorted(rng.sample(order, k=min(len(order), rng.randint(2, 4))), key=order.index)
        lines = ""
        stat = _pick(rng, "mean", "std")
        for g in groups:
            lines += f'    X["{stat}_{g}"] = df[{_group_cols_expr(schema, g, rng)}].{stat}(axis=1)\n'
        return lines
    if kind == "interactions":
        pairs = rng.sample(_candidate_pairs(schema), k=rng.randint(1, 3))
        lines = "".join(f'        ("{a}", "{b}"),\n' for a, b in pairs)
        return f'    pairs = [\n{lines}    ]\n    for a, b in pairs:\n        X[a + "_x_" + b] = df[a] * df[b]\n'
    if kind == "squares":
        return f'    X = X.join(((df[cols[:{k}]] - 2.0) ** 2).add_suffix("_sq"))\n'
    if kind == "abs_dev":
        return f'    X = X.join((df[cols[:{k}]] - 2.0).abs().add_suffix("_abs"))\n'
    if kind == "log":
        return f'    import numpy as np\n\n    X = X.join(np.log1p(df[cols[:{k}]]).add_suffix("_log"))\n'
    if kind == "row_stats":
        return '    X["row_mean"] = df[cols].mean(axis=1)\n    X["row_std"] = df[cols].std(axis=1)\n'
    assert kind == "era_rank", kind
    return f'    X = X.join(df.groupby("era")[cols[:{k}]].rank(pct=True).add_suffix("_rank"))\n'


def _candidate_pairs(schema: ColumnSchema) -> list[tuple[str, str]]:
    """Within-group pairs among each group's first four features (a small, learnable set)."""
    pools = [list(cols[:4]) for cols in schema.feature_groups.values() if len(cols) >= 2]
    pools = pools or [list(schema.feature_names[:4])]
    return [(a, b) for pool in pools for i, a in enumerate(pool) for b in pool[i + 1 :]] or [
        (schema.feature_names[0], schema.feature_names[0])
    ]


EXTRA_KINDS: tuple[str, ...] = ("group_means", "interactions", "squares", "abs_dev", "log", "row_stats", "era_rank")


def create_features_source(rng: random.Random, schema: ColumnSchema) -> tuple[str, list[str]]:
    """Source of ``create_features`` and the feature ideas it uses."""
    selection, select_line = _base_selection(rng, schema)
    base = rng.choice(list(_BASE_TRANSFORMS))
    body = select_line or "    cols = feature_cols\n"
    body += _BASE_TRANSFORMS[base]
    extras = [e for e in EXTRA_KINDS if not (e == "era_rank" and base == "era_rank")]
    if not schema.feature_groups:
        extras = [e for e in extras if e != "group_means"]
    n_extra = rng.choices([0, 1, 2, 3], weights=[0.2, 0.4, 0.3, 0.1])[0]
    chosen = rng.sample(extras, n_extra)
    for kind in chosen:
        body += _extra(rng, kind, schema)
    body += _pick(rng, "    return X\n", "    return X.fillna(0)\n") if chosen else "    return X\n"
    return "def create_features(df, feature_cols):\n" + body, [selection, base, *chosen]


# --- define_cv ------------------------------------------------------------------------------
_CV_HEAD = "def define_cv(eras, embargo):\n    import numpy as np\n\n    unique = np.unique(eras)\n"
_CV_TAIL = (
    "        if len(train_eras) == 0:\n            continue\n"
    "        splits.append((np.flatnonzero(np.isin(eras, train_eras)), np.flatnonzero(np.isin(eras, test_eras))))\n"
    "    return splits\n"
)


def define_cv_source(rng: random.Random) -> tuple[str, str]:
    """Source of ``define_cv`` and its kind (forward, grouped, sliding)."""
    kind = rng.choice(["forward", "grouped", "sliding"])
    folds = _pick(rng, 3, 4, 5)
    if kind == "forward":
        body = (
            f"    blocks = np.array_split(unique, {folds} + 1)\n    splits = []\n"
            "    for k in range(1, len(blocks)):\n        test_eras = blocks[k]\n"
            "        train_eras = unique[unique < test_eras.min() - embargo]\n"
        )
    elif kind == "grouped":
        body = (
            f"    splits = []\n    for test_eras in np.array_split(unique, {folds}):\n"
            "        far = (unique < test_eras.min() - embargo) | (unique > test_eras.max() + embargo)\n"
            "        train_eras = unique[far]\n"
        )
    else:
        window = _pick(rng, 20, 40, 60)
        body = (
            f"    blocks = np.array_split(unique, {folds} + 1)\n    splits = []\n"
            "    for test_eras in blocks[1:]:\n        end = test_eras.min() - embargo\n"
            f"        train_eras = unique[(unique < end) & (unique >= end - {window})]\n"
        )
    return _CV_HEAD + body + _CV_TAIL, kind
