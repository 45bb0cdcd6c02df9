"""The server as a separate process: over stdio and streamable HTTP with the official ``mcp``
client, and over stdio with an independent client, the MCP Inspector CLI from npm.

Each runs the real entry point ``python -m aiforml.env.server`` with the same config as
the in-process fixtures, and checks one episode's metrics against the library's.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import anyio
import psutil
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.types import REQUEST_TIMEOUT

from aiforml.data.secret import SECRET_ENV
from aiforml.pipeline.userdirs import private_root
from aiforml.program import Program

pytestmark = pytest.mark.slow  # sandboxed evaluations: seconds each


ROOT = Path(__file__).resolve().parents[2]
INSPECTOR = ROOT / "node_modules" / ".bin" / "mcp-inspector"


def check_episode(facts: dict, expected, same_scores, hostile_is_a_result) -> None:
    assert {"describe_data", "run_pipeline", "evaluate_program"} <= set(facts["tools"])
    assert facts["schema"]["feature_columns"] and facts["schema"]["target_columns"][0] == "target"
    assert facts["locked"].is_error and "locked" in facts["locked"].content[0].text
    assert facts["state"]["overridden_steps"] == ["define_model"]
    same_scores(facts["run"].structured_content, expected)
    assert "model stage and look-ahead guard" in facts["stages"]
    hostile_is_a_result(facts["hostile"])


def test_stdio_subprocess(server_argv, server_env, episode, library_result, same_scores, hostile_is_a_result, programs):
    params = StdioServerParameters(command=server_argv[0], args=server_argv[1:], env=server_env, cwd=str(ROOT))

    async def go():
        async with Client(params, read_timeout_seconds=600) as client:
            return await episode(client)

    check_episode(anyio.run(go), library_result(programs.ridge), same_scores, hostile_is_a_result)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the HTTP server exited early: {proc.stderr.read().decode()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listened on 127.0.0.1:{port} within {timeout_s}s")


@pytest.fixture
def http_server(server_argv, server_env):
    port = free_port()
    proc = subprocess.Popen([*server_argv, "--transport", "http", "--port", str(port)], env=server_env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def test_http_on_loopback(http_server, episode, library_result, same_scores, hostile_is_a_result, programs):
    async def go():
        async with Client(f"http://127.0.0.1:{http_server}/mcp", read_timeout_seconds=600) as client:
            return await episode(client)

    check_episode(anyio.run(go), library_result(programs.ridge), same_scores, hostile_is_a_result)
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{http_server}"], capture_output=True, text=True)
    if listening.returncode == 0 and listening.stdout.strip():
        assert all("127.0.0.1:" in line for line in listening.stdout.strip().splitlines())


def inspector(args: list[str], server_argv: list[str], server_env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the Inspector CLI against the stdio server; HOME is the tests' temporary one
    (the Inspector writes ~/.mcp-inspector there, and the server finds its cached baseline)."""
    if not INSPECTOR.exists() or shutil.which("node") is None:
        pytest.skip("the MCP Inspector is not installed: run `make install` (npm ci) first")
    # the Inspector starts the server with a default environment plus what -e names
    secret = ["-e", f"{SECRET_ENV}={server_env[SECRET_ENV]}"]
    return subprocess.run([str(INSPECTOR), "--cli", *secret, *server_argv, *args], env=server_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_inspector_cli_lists_tools(server_argv, server_env):
    done = inspector(["--method", "tools/list", "--format", "json"], server_argv, server_env)
    assert done.returncode == 0, done.stderr[-2000:]
    tools = {t["name"]: t for t in json.loads(done.stdout)["result"]["tools"]}
    assert {"describe_data", "get_pipeline", "set_override", "clear_override", "run_pipeline",
            "evaluate_program"} == set(tools)
    assert tools["evaluate_program"]["outputSchema"]["properties"]["status"]


def test_inspector_cli_evaluates_a_program(server_argv, server_env, library_result, same_scores, programs):
    args = ["--method", "tools/call", "--tool-name", "evaluate_program",
            "--tool-args-json", json.dumps({"code": programs.ridge})]
    done = inspector(args, server_argv, server_env)
    assert done.returncode == 0, done.stderr[-2000:]
    reply = json.loads(done.stdout)
    assert reply["isError"] is False
    output = reply["structuredContent"]
    assert output["program_hash"] == Program(programs.ridge).hash
    same_scores(output, library_result(programs.ridge))


def test_inspector_cli_sees_a_failing_program_as_a_result(server_argv, server_env):
    code = "def define_model():\n    return undefined_name\n"
    args = ["--method", "tools/call", "--tool-name", "evaluate_program", "--tool-args-json", json.dumps({"code": code})]
    done = inspector(args, server_argv, server_env)
    assert done.returncode == 0, done.stderr[-2000:]
    output = json.loads(done.stdout)["structuredContent"]
    assert output["status"] == "runtime_error" and "undefined_name" in output["message"]


def descendants() -> set[int]:
    """Every process this test process started, however deep: the stdio server and its sandbox
    (an orphan inside the sandbox's pid namespace stays under its bubblewrap). Other runs on
    the machine share the job root; their children are not this test's."""
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_stdio_client_timeout_kills_the_sandbox(server_argv, server_env, tmp_path, sandbox_children, programs):
    """A client that times out over stdio: the server kills the child and keeps serving."""
    jobs = private_root("evals")  # where the server's job folders live (this user's private folder)
    before = set(sandbox_children(jobs))  # so we see only the server's children
    params = StdioServerParameters(command=server_argv[0], args=server_argv[1:], cwd=str(ROOT), env=server_env)
    seen: list[int] = []

    async def go():
        async with Client(params, read_timeout_seconds=600) as client:
            await client.call_tool("describe_data", {})
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(lambda: client.call_tool("evaluate_program", {"code": programs.spin}, read_timeout_seconds=20))
                    for _ in range(200):
                        await anyio.sleep(0.1)
                        seen.extend(set(sandbox_children(jobs)) - before & descendants())
                        if seen:
                            break
            except* Exception as group:  # the call's timeout, raised through the task group
                assert all(isinstance(e, MCPError) and e.code == REQUEST_TIMEOUT for e in group.exceptions), group
            for _ in range(100):
                if not set(sandbox_children(jobs)) - before & descendants():
                    break
                await anyio.sleep(0.1)
            left = sorted(set(sandbox_children(jobs)) - before & descendants())
            alive = await client.call_tool("describe_data", {})
            return left, alive

    left, alive = anyio.run(go)
    assert seen, "the spinning program never started"
    assert left == [] and not alive.is_error
