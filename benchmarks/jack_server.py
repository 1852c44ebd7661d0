"""A private JACK server on the dummy backend for the benchmarks (no sound card needed)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lincae.engine.stream import StreamingEngine
    from lincae.io.live import LiveSession


@contextlib.contextmanager
def dummy_jack_server(tag: str, block: int, rate: int = 44100, inputs: int = 2, outputs: int = 2) -> Iterator[str]:
    """Run ``jackd -d dummy`` (period ``block`` frames at ``rate`` Hz) while the block runs; yields its name.

    ``JACK_DEFAULT_SERVER`` points this process's JACK clients (PortAudio, JACK-Client) at it.
    """
    name = f"lincae-{tag}-{os.getpid()}"
    env = {**os.environ, "JACK_DEFAULT_SERVER": name, "JACK_NO_AUDIO_RESERVATION": "1"}
    cmd = ["jackd", "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(block), "-C", str(inputs), "-P", str(outputs)]
    jackd = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(JACK_DEFAULT_SERVER=name)
    try:
        time.sleep(1.0)
        yield name
    finally:
        if "sounddevice" in sys.modules:  # PortAudio must let go of the server before it stops
            sys.modules["sounddevice"]._terminate()
        jackd.terminate()
        jackd.wait(10)


def system_session(engine: StreamingEngine, block: int, sources: int = 1) -> LiveSession:
    """A :class:`~lincae.io.live.LiveSession` of ``engine`` on the dummy server's ``system`` ports: source ``i``
    from input ``i`` (mono sources), the output on output 1, ``block`` frames per callback."""
    from lincae.io.live import LiveConfig, LiveSession

    config = LiveConfig(
        input_device="system",
        output_device="system",
        block=block,
        source_channels=tuple((i + 1,) for i in range(sources)),
        output_channels=(1,),
    )
    return LiveSession(engine, config)


def wire_loop(client: object, session: LiveSession, out: object, inp: object) -> None:
    """Wire an active JACK ``client``'s port ``out`` into the session's first input (alone) and the session's
    first output into ``inp``: a loop through lincae without a sound card."""
    (pa_in, *_), (pa_out, *_) = session.port_names
    for c in client.get_all_connections(pa_in):  # type: ignore[attr-defined]
        client.disconnect(c, pa_in)  # type: ignore[attr-defined]
    client.connect(out, pa_in)  # type: ignore[attr-defined]
    client.connect(pa_out, inp)  # type: ignore[attr-defined]


def engine_config(preset: str | None, sources: int) -> object:
    """The engine settings of ``preset`` (a name or a path; None: the engine's defaults) for ``sources`` mono inputs."""
    import dataclasses

    from lincae.engine.config import EngineConfig
    from lincae.presets import load_preset

    base = load_preset(preset).engine if preset else EngineConfig()
    return dataclasses.replace(base, sources=[1] * sources)
