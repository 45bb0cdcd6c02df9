"""The MCP server over the trading task: describe_data, get_pipeline, the prompt and one
run of the default trading program, through the official ``mcp`` client in-process."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client

from aiforml.compose import load_config
from aiforml.data import load_dataset, split_dataset
from aiforml.env.server import build_server
from aiforml.env.session import EnvSession


@pytest.fixture(scope="module")
def server(work_root, tmp_path_factory):
    cfg = load_config(["data=sp500", "env.pipeline.n_estimators=20", "env.pipeline.cv_folds=2"])
    data = load_dataset(cfg.data)
    session = EnvSession(cfg, data, split_dataset(data, cfg.data), work_root=work_root,
                         baseline_dir=tmp_path_factory.mktemp("trading-baselines"))
    yield build_server(session)
    session.close()


def test_describe_data_get_pipeline_and_prompt_describe_trading(server) -> None:
    async def go():
        async with Client(server) as client:
            schema = (await client.call_tool("describe_data", {})).structured_content
            spec = (await client.call_tool("get_pipeline", {})).structured_content
            prompt = await client.get_prompt("task_instructions")
            run = (await client.call_tool("run_pipeline", {})).structured_content
            return schema, spec, prompt, run

    schema, spec, prompt, run = anyio.run(go)
    assert schema["task"] == "trading" and schema["assets"] == ["SP500"]
    assert schema["feature_columns"] == ["open", "high", "low", "close", "volume"]
    assert schema["horizon"] == 5 and schema["embargo_eras"] == 5
    assert schema["date_range"] == ["1999-01-04", "2018-12-31"]
    assert schema["splits"]["test"]["date_range"][1] == "2018-12-31" and schema["splits"]["test"]["n_eras"] == 504
    features = next(s for s in spec["steps"] if s["name"] == "create_features")
    assert "look-ahead guard" in features["contract"] and 'groupby("asset")' in features["default_source"]
    assert any("buy-and-hold" in rule for rule in spec["rules"])
    text = prompt.messages[0].content.text
    assert "trades a price series" in text and "open, high, low, close, volume" in text
    assert run["status"] == "ok" and run["test"] is None and run["test_withheld"]
    assert run["validation"]["bh_sharpe"] is not None and run["validation"]["total_return"] is not None
