"""The MCP server driven in-process through the official ``mcp`` client.

Covers: tools, output schemas, resources and the prompt; the data schema matches the data
set; a locked step is refused with a clear error; run_pipeline's metrics equal the
library's for the same program; progress notifications; a hostile or failing program is
a normal result with capped output; a client cancel kills the running sandbox.
"""

from __future__ import annotations

import json
import time

import anyio
import pytest
from mcp import Client

from aiforml.env.server import build_server

pytestmark = pytest.mark.slow  # sandboxed evaluations: seconds each


TOOLS = {"describe_data", "get_pipeline", "set_override", "clear_override", "run_pipeline", "evaluate_program"}


@pytest.fixture
def server(session):
    session.reset()
    return build_server(session)


def call(server, name: str, args: dict | None = None):
    async def go():
        async with Client(server) as client:
            return await client.call_tool(name, args or {})

    return anyio.run(go)


def test_episode_in_process_matches_library(server, episode, library_result, same_scores, hostile_is_a_result,
                                              programs):
    async def go():
        async with Client(server) as client:
            return await episode(client)

    facts = anyio.run(go)
    assert set(facts["tools"]) == TOOLS
    assert all(facts["tools"][name].output_schema for name in TOOLS)
    assert facts["locked"].is_error and "locked" in facts["locked"].content[0].text
    assert facts["state"]["overridden_steps"] == ["define_model"]
    assert not facts["run"].is_error
    same_scores(facts["run"].structured_content, library_result(programs.ridge))
    assert facts["stages"][0] == "static checks" and facts["stages"][-1] == "done"
    hostile_is_a_result(facts["hostile"])


def test_describe_data_is_the_real_schema(server, dataset, split):
    schema = call(server, "describe_data").structured_content
    assert schema["feature_columns"] == list(dataset.feature_names)
    assert schema["target_columns"][0] == "target"
    assert set(schema["feature_groups"]) == set(dataset.feature_groups)
    assert schema["splits"]["validation"]["n_eras"] == len(split.validation)
    assert schema["splits"]["test"]["n_eras"] == len(split.test)
    assert schema["embargo_eras"] == split.embargo


def test_get_pipeline_lists_six_steps_with_locks_and_defaults(server):
    spec = call(server, "get_pipeline").structured_content
    steps = {s["name"]: s for s in spec["steps"]}
    assert [s["name"] for s in spec["steps"]][0] == "load_data" and len(steps) == 6
    assert steps["load_data"]["locked"] and steps["run_optimization"]["locked"]
    assert not steps["define_model"]["locked"] and "n_estimators=30" in steps["define_model"]["default_source"]
    assert "lightgbm" in spec["allowed_modules"]


@pytest.mark.parametrize(("step", "code", "words"), [
    ("load_data", "def load_data():\n    pass\n", "locked"),
    ("run_optimization", "def run_optimization():\n    pass\n", "locked"),
    ("train_model", "def train_model():\n    pass\n", "unknown step"),
    ("define_model", "def create_features(df, feature_cols):\n    return df\n", "must define"),
    ("define_model", "def define_model():\n    return None\n\ndef define_cv(eras, embargo):\n    return []\n",
     "also defines"),
])
def test_bad_overrides_are_clear_tool_errors(server, session, step, code, words):
    reply = call(server, "set_override", {"step": step, "code": code})
    assert reply.is_error and words in reply.content[0].text
    assert session.overrides == {}


def test_overrides_set_clear_and_show_in_the_spec(server, session, programs):
    async def go():
        async with Client(server) as client:
            await client.call_tool("set_override", {"step": "define_model", "code": programs.ridge})
            spec = (await client.call_tool("get_pipeline", {})).structured_content
            cleared = (await client.call_tool("clear_override", {"step": "define_model"})).structured_content
            broken = (await client.call_tool("set_override", {"step": "create_features", "code": "def create_features(:"})).structured_content
            return spec, cleared, broken

    spec, cleared, broken = anyio.run(go)
    assert next(s for s in spec["steps"] if s["name"] == "define_model")["override"] == programs.ridge
    assert cleared["overridden_steps"] == [] and cleared["action"] == "cleared"
    assert "syntax_error" in broken["note"] and session.overridden() == ["create_features"]


def test_failing_and_hostile_programs_are_normal_results(server, cfg):
    flood = ("def create_features(df, feature_cols):\n    print('x' * 200000)\n"
             "    return df['feature_that_does_not_exist']\n")
    reads_files = "def create_features(df, feature_cols):\n    return open('/etc/passwd').read()\n"
    reply = call(server, "evaluate_program", {"code": flood})
    out = reply.structured_content
    assert not reply.is_error and out["status"] == "runtime_error" and not out["ran"]
    assert "feature_that_does_not_exist" in out["message"]
    assert len(out["stdout"]) <= cfg.env.server.output_chars + 40 and "characters cut" in out["stdout"]
    assert out["validation"] is None and out["reward"] == pytest.approx(-cfg.reward.weights["compile"])
    hostile = call(server, "evaluate_program", {"code": reads_files}).structured_content
    assert hostile["status"] == "forbidden"
    syntax = call(server, "evaluate_program", {"code": "def define_model(:\n"}).structured_content
    assert syntax["status"] == "syntax_error"


def test_resources_and_prompt(server, dataset):
    async def go():
        async with Client(server) as client:
            uris = {str(r.uri) for r in (await client.list_resources()).resources}
            schema = await client.read_resource("data://schema")
            default = await client.read_resource("pipeline://default-program")
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            prompt = await client.get_prompt("task_instructions")
            return uris, schema, default, prompts, prompt

    uris, schema, default, prompts, prompt = anyio.run(go)
    assert {"data://schema", "pipeline://spec", "pipeline://default-program"} <= uris
    assert json.loads(schema.contents[0].text)["feature_columns"] == list(dataset.feature_names)
    assert "def define_model" in default.contents[0].text
    assert prompts == {"task_instructions"}
    text = prompt.messages[0].content.text
    assert "create_features" in text and "Allowed modules" in text
    assert any(group in text for group in dataset.feature_groups)


def test_client_cancel_kills_the_running_sandbox(server, work_root, sandbox_children, programs):
    """Cancel mid-run: the sandboxed child is gone within seconds, no orphan left."""
    seen: list[int] = []

    async def go():
        async with Client(server) as client:
            with anyio.move_on_after(120) as outer:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.call_tool, "evaluate_program", {"code": programs.spin})
                    for _ in range(600):  # until the child runs (a busy machine starts it late)
                        await anyio.sleep(0.1)
                        seen.extend(sandbox_children(work_root))
                        if seen:
                            break
                    await anyio.sleep(0.5)
                    tg.cancel_scope.cancel()
            assert not outer.cancelled_caught

    anyio.run(go)
    assert seen, "the spinning program never started"
    deadline = time.monotonic() + 10
    while sandbox_children(work_root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox_children(work_root) == []
