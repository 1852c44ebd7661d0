"""pytest plugin: a real JACK audio/MIDI server on the dummy backend (no sound card needed).

Use it from a test module with ``pytest_plugins = ["jackd_fixture"]`` and the ``jack_server`` fixture.

The server is started afresh for each test that asks for it, as ``jackd -n lincae-test-<k> -d dummy -r 44100 -p 256
-C 2 -P 2`` and ``JACK_DEFAULT_SERVER`` points every JACK client of this process (rtmidi,
PortAudio, JACK-Client) at it. ``jack_server_48k`` starts another one at 48 kHz (the next free name)
for a single test, for a device whose rate differs from the model's. Tests are skipped when ``jackd``
is not installed (``scripts/setup.sh`` installs it).

Server names: JACK keeps at most 8 servers per machine in its shared-memory registry
(``/dev/shm/jack-shm-registry``), and the entry of a server that died without shutting down (SIGKILL)
is only reclaimed when a server *of the same name* starts. Names unique per process (``<pid>``)
would leak a slot with every killed run until no server can start ("Too many servers already
active"). So a session takes the first free name of ``lincae-test-0`` … ``lincae-test-7`` (a name
that a live server of another session holds is skipped; ``jackd`` itself refuses it with "server
already active"). The server gets SIGTERM when the test process dies (``PR_SET_PDEATHSIG``), so it
shuts down cleanly and frees its entry even when pytest is killed.

PortAudio quirks handled here:

* PortAudio scans host APIs when it is initialised (``import sounddevice``), so a JACK server started
  later is invisible until PortAudio is re-initialised: the fixture does ``sd._terminate();
  sd._initialize()`` once the server is up (``Pa_Initialize`` alone only increments a reference
  count and does not rescan).
* ``Pa_Terminate`` aborts the process (``pa_jack.c: Terminate: Assertion `err == 0' failed``) when its
  JACK client's server has gone away, which ``sounddevice`` does at exit. So PortAudio is terminated
  *before* the server stops and initialised again afterwards (without JACK).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 10.0
NAME_POOL = tuple(f"lincae-test-{k}" for k in range(8))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the server when the test process dies, so no jackd outlives a killed run."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _portaudio_loaded() -> bool:
    return "sounddevice" in sys.modules


def reinitialise_portaudio() -> None:
    """Terminate and initialise PortAudio (when ``sounddevice`` is loaded) so it rescans host APIs."""
    if _portaudio_loaded():
        sd = sys.modules["sounddevice"]
        if sd._initialized > 0:
            sd._terminate()
        sd._initialize()


@dataclass
class JackServer:
    """A running ``jackd`` (dummy backend).

    Attributes:
        name: the server name (``JACK_DEFAULT_SERVER``).
        sample_rate: Hz.
        period: frames per period.
        process: the ``jackd`` process.
        log_path: where ``jackd`` writes its output.
    """

    name: str
    sample_rate: int
    period: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False, default_factory=dict)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=10)

    def ports(self, pattern: str | None = None) -> list[str]:
        """Port names (``jack_lsp [pattern]``), e.g. ``system:capture_1``."""
        r = self._run("jack_lsp", *([pattern] if pattern else []))
        if r.returncode != 0:
            raise RuntimeError(f"jack_lsp failed ({r.returncode}): {r.stderr.strip()}")
        return [line.strip() for line in r.stdout.splitlines() if line.strip() and not line[0].isspace()]

    def connections(self, port: str) -> list[str]:
        """Ports connected to ``port`` (``jack_lsp -c``)."""
        r = self._run("jack_lsp", "-c", port)
        return [line.strip() for line in r.stdout.splitlines() if line[:1].isspace() and line.strip()]

    def connect(self, a: str, b: str) -> None:
        """``jack_connect a b`` (an output port to an input port); ``RuntimeError`` when it fails."""
        r = self._run("jack_connect", a, b)
        if r.returncode != 0:
            raise RuntimeError(f"jack_connect {a} {b} failed: {(r.stderr or r.stdout).strip()}; ports: {self.ports()}")

    def disconnect(self, a: str, b: str) -> None:
        """``jack_disconnect a b``."""
        r = self._run("jack_disconnect", a, b)
        if r.returncode != 0:
            raise RuntimeError(f"jack_disconnect {a} {b} failed: {(r.stderr or r.stdout).strip()}")

    def wait_for_port(self, name: str, timeout: float = 5.0) -> None:
        """Wait until port ``name`` exists (bounded)."""
        deadline = time.monotonic() + timeout
        while name not in self.ports():
            if time.monotonic() > deadline:
                raise TimeoutError(f"JACK port {name} did not appear within {timeout} s; ports: {self.ports()}")
            time.sleep(0.01)

    def running(self) -> bool:
        return self.process.poll() is None

    def restart(self, kill: bool = True, down_for: float = 1.0) -> None:
        """Kill the server (SIGKILL, as a crash; else SIGTERM), wait ``down_for`` s, start it again (same name).

        PortAudio, when loaded, lets go of the server first and rescans afterwards (``Pa_Terminate`` on a
        server that died under it aborts the process; see the module docstring).
        """
        portaudio = _portaudio_loaded() and sys.modules["sounddevice"]._initialized > 0
        if portaudio:
            sys.modules["sounddevice"]._terminate()
        if kill:
            self.process.kill()
            self.process.wait(timeout=5)
        else:
            _stop(self.process)
        time.sleep(down_for)
        jackd = shutil.which("jackd")
        assert jackd is not None
        server, why = _try_start(jackd, self.name, self.sample_rate, self.period, self.log_path.with_suffix(".2.log"))
        if server is None:
            raise RuntimeError(f"jackd -n {self.name} did not restart ({why})")
        self.process, self.log_path = server.process, server.log_path
        if portaudio:
            sys.modules["sounddevice"]._initialize()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _served(name: str) -> bool:
    """Whether a JACK server called ``name`` answers (or holds the name without answering in time)."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=name)
    try:
        return subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:  # a server of that name runs but is too busy to answer: taken
        return True


def _try_start(jackd: str, name: str, sample_rate: int, period: int, log_path: Path) -> tuple[JackServer | None, str]:
    """Start ``jackd -n name``: ``(server, "")`` once it is up, else ``(None, why)``.

    ``why`` is ``"taken"`` (a live server has that name) or ``"full"`` (JACK's 8 server slots are
    used). Raises ``RuntimeError`` when the server exits for another reason or is not up in time.
    """
    if _served(name):
        return None, "taken"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1")
    cmd = [
        jackd,
        "-n",
        name,
        "-t",
        "10000",
        "-d",
        "dummy",
        "-r",
        str(sample_rate),
        "-p",
        str(period),
        "-C",
        "2",
        "-P",
        "2",
    ]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )
    server = JackServer(name, sample_rate, period, process, log_path, env)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            log = server.log()
            if "Too many servers" in log:
                return None, "full"
            if "already active" in log:  # another session started this name just now
                return None, "taken"
            raise RuntimeError(f"jackd -n {name} exited with {process.returncode}:\n{log}")
        r = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10)
        # our jackd still running once a server answers: it registered the name, so the server is ours
        if r.returncode == 0 and "system:capture_1" in r.stdout and process.poll() is None:
            return server, ""
        if time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"jackd -n {name} not up within {STARTUP_TIMEOUT_S} s:\n{server.log()}")
        time.sleep(0.02)


@contextlib.contextmanager
def running_jack_server(log_dir: Path, sample_rate: int = 44100, period: int = 256) -> Iterator[JackServer]:
    """Start a dummy-backend ``jackd`` at ``sample_rate`` Hz under the first free name of
    :data:`NAME_POOL`, point ``JACK_DEFAULT_SERVER`` and PortAudio at it, and on exit stop it and point
    them back at whatever server they used before (another fixture's server may still be running).

    Skips the test when ``jackd`` is missing or JACK's 8 server slots are all taken.
    """
    jackd = shutil.which("jackd")
    if jackd is None or shutil.which("jack_lsp") is None or shutil.which("jack_connect") is None:
        pytest.skip("jackd/jack_lsp/jack_connect not installed: run scripts/setup.sh (apt package jackd2)")
    server: JackServer | None = None
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while server is None:
        full = False
        for candidate in NAME_POOL:
            server, why = _try_start(jackd, candidate, sample_rate, period, log_dir / f"{candidate}.log")
            full = why == "full"
            if server is not None or full:  # (when the slots are full, every other name fails too)
                break
        if server is None:
            if time.monotonic() > deadline:
                if full:
                    pytest.skip("JACK: too many servers already active on this machine (JACK allows 8)")
                raise RuntimeError(f"no free JACK server name among {NAME_POOL}; logs in {log_dir}")
            time.sleep(0.2)
    name = server.name
    old = os.environ.get("JACK_DEFAULT_SERVER")
    try:
        # PortAudio lets go of the previous server (still running, if any) and rescans on this one.
        os.environ["JACK_DEFAULT_SERVER"] = name
        reinitialise_portaudio()
        yield server
    finally:
        # PortAudio must let go of the server while it is still there (see the module docstring).
        with contextlib.suppress(Exception):
            if _portaudio_loaded() and sys.modules["sounddevice"]._initialized > 0:
                sys.modules["sounddevice"]._terminate()
        _stop(server.process)  # the server running now: a test may have restarted it (JackServer.restart)
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old
        with contextlib.suppress(Exception):
            if _portaudio_loaded():
                sys.modules["sounddevice"]._initialize()


@pytest.fixture
def jack_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JackServer]:
    """A JACK server (dummy backend, 44.1 kHz, 256-frame periods, 2 in / 2 out), fresh for each test.

    Fresh, so that a server that one test drove into trouble (on a busy machine jackd can stop its
    driver after clients miss their deadlines, and then refuses new clients) cannot fail the tests after
    it; a start costs about a second.
    """
    with running_jack_server(tmp_path_factory.mktemp("jack"), 44100, 256) as server:
        yield server


@pytest.fixture
def jack_server_48k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JackServer]:
    """A second JACK server at 48 kHz (1024-frame periods, 2 in / 2 out, its own name) for one test.

    The long periods (21 ms) leave room for the GIL: the test's Python JACK clients share one process
    with the engine's worker, and with 256-frame periods a busy 2-core machine made them miss cycles
    (xruns) every few seconds. While the test runs, ``JACK_DEFAULT_SERVER`` and PortAudio point at
    this server; afterwards back at whatever server was set before. Do not
    request both in one test.
    """
    with running_jack_server(tmp_path_factory.mktemp("jack48k"), 48000, 1024) as server:
        yield server
