"""`make dev` (infra/local/dev.sh) stops everything it started, on any way out.

dev.sh runs for real (venv check, DynamoDB emulator, Stripe stand-in) except the Rust side:
DEV_FUNCTIONS_STANDIN replaces create-table and `cargo lambda watch` with a plain HTTP
server that, like cargo lambda watch's function processes, has a child in a session of
its own. Every process dev.sh starts inherits a marker variable; after dev.sh has exited,
no live process may carry it. Linux only (reads /proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_SH = ROOT / "infra" / "local" / "dev.sh"
STANDIN = f'setsid sleep 600 & exec {shlex.quote(sys.executable)} -m http.server "$WATCH_PORT" --bind 127.0.0.1'
# Runs a command with INT, HUP and TERM at their defaults: a shell cannot trap a signal that
# was ignored when it started, and a test run under `nohup` or as a background job inherits
# HUP or INT ignored, which would make dev.sh deaf to the very signals tested here.
WITH_DEFAULT_SIGNALS = [
    sys.executable, "-c",
    "import os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM): signal.signal(s, signal.SIG_DFL)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])",
]
# What dev.sh starts, by a piece of each command line.
STARTED = ("dynamodb_server.py", "dynamodb_proxy.py", "stripe_standin/server.py", "http.server", "sleep 600")

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevRun:
    """dev.sh (or `make dev`) as the leader of a new session, its output collected."""

    def __init__(self, argv: list[str], tmp_path: Path, standin: str = STANDIN,
                 extra_env: dict[str, str] | None = None) -> None:
        self.marker = f"DEV_STOP_TEST={uuid.uuid4().hex}".encode()
        self.dynamodb_port = free_port()
        # Stripe stand-in mode, and dev.sh's own default for throttling.
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_") and k != "DYNAMODB_THROTTLE"}
        env.update({
            "DEV_STOP_TEST": self.marker.split(b"=", 1)[1].decode(),
            "DEV_DIR": str(tmp_path / "dev"),
            "DEV_FUNCTIONS_STANDIN": standin,
            "DYNAMODB_PORT": str(self.dynamodb_port),
            "STRIPE_PORT": str(free_port()),
            "WATCH_PORT": str(free_port()),
            **(extra_env or {}),
        })
        self.proc = subprocess.Popen([*WITH_DEFAULT_SIGNALS, *argv], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("ready: "):
                self.ready.set()

    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self) -> None:
        assert self.ready.wait(timeout=120), self.output()

    def finish(self) -> int:
        status = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return status

    def live_processes(self) -> dict[int, str]:
        """Pid -> command line of the live processes started by this run (zombies have
        no environ)."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if self.marker in (entry / "environ").read_bytes().split(b"\0"):
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except OSError:  # gone meanwhile, or not ours
                continue
        return found

    def kill_all(self) -> None:
        with contextlib.suppress(ProcessLookupError):  # each may be gone meanwhile
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in self.live_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def check_all_started(self) -> None:
        running = self.live_processes().values()
        for piece in STARTED:
            assert any(piece in cmd for cmd in running), (piece, running)


@pytest.fixture
def dev(tmp_path):
    """Starts runs; after the test, kills whatever a failed test left behind."""
    runs: list[DevRun] = []

    def start(argv: list[str], **kwargs) -> DevRun:
        runs.append(DevRun(argv, tmp_path, **kwargs))
        return runs[-1]

    yield start
    for run in runs:
        run.kill_all()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_signal_to_make_dev_process_group_stops_everything(dev, sig):
    # make forwards a TERM to dev.sh, which so gets it twice: the second one used to kill
    # dev.sh halfway through stopping (services left running in most stops).
    run = dev(["make", "-s", "dev"])
    run.wait_ready()
    run.check_all_started()

    os.killpg(run.proc.pid, sig)

    assert run.finish() != 0
    assert run.live_processes() == {}, run.output()
    assert "dev: stopped" in run.output()


def test_sigint_to_the_script_stops_everything(dev):
    run = dev(["bash", str(DEV_SH)])
    run.wait_ready()
    run.check_all_started()

    os.kill(run.proc.pid, signal.SIGINT)

    assert run.finish() == 130
    assert run.live_processes() == {}, run.output()


def test_failed_start_up_stops_what_was_started(dev):
    run = dev(["bash", str(DEV_SH)], standin="exit 3")

    assert run.finish() == 1
    assert "dev: watch exited before it was ready" in run.output()
    assert "Stripe stand-in at" in run.output()  # the emulator and Stripe stand-in had started
    assert run.live_processes() == {}, run.output()


def test_functions_reach_the_store_through_the_conflict_modeling_proxy(dev, tmp_path):
    run = dev(["bash", str(DEV_SH)])
    run.wait_ready()
    env = dict(line.split("=", 1) for line in (tmp_path / "dev" / "function.env").read_text().splitlines())
    store = env["AWS_ENDPOINT_URL_DYNAMODB"].strip("'")
    assert store != f"http://127.0.0.1:{run.dynamodb_port}", "the functions must not bypass the proxy"
    with urllib.request.urlopen(store + "/_proxy/config", timeout=10) as resp:
        assert json.loads(resp.read())["model_conflicts"] is True
    # It forwards to the emulator: a DynamoDB call through it is answered by moto.
    req = urllib.request.Request(store + "/", data=b"{}", method="POST", headers={
        "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert "TableNames" in json.loads(resp.read())

    os.kill(run.proc.pid, signal.SIGINT)
    assert run.finish() == 130
    assert run.live_processes() == {}, run.output()


def emulator_config(run: DevRun) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{run.dynamodb_port}/_emulator/config", timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("setting, throttled", [(None, True), ("0", False)], ids=["default", "DYNAMODB_THROTTLE=0"])
def test_store_throttles_per_partition_key_unless_turned_off(dev, setting, throttled):
    run = dev(["bash", str(DEV_SH)], extra_env={} if setting is None else {"DYNAMODB_THROTTLE": setting})
    run.wait_ready()
    config = emulator_config(run)
    assert (config["throttle"], config["write_units_per_second"], config["read_units_per_second"]) == (
        throttled, 1000, 3000)

    os.kill(run.proc.pid, signal.SIGINT)
    assert run.finish() == 130
    assert run.live_processes() == {}, run.output()
