"""lincae as a JACK citizen (real jackd, dummy backend): its ports report the engine's latency to other
clients, and a server that is killed and restarted is counted as an outage, without libjack's chatter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_tiny_model
from test_live import ENGINE, jack_port_latency

from lincae.engine.config import EngineConfig
from lincae.engine.mixer import LatentMixer
from lincae.engine.stream import StreamingEngine
from lincae.io.live import LiveConfig, LiveSession, wait_until

pytest_plugins = ["jackd_fixture"]
pytest.importorskip("jack", reason="JACK-Client is installed by scripts/setup.sh (dev extra)")


def test_lincae_ports_report_the_engine_latency_to_other_clients(jack_server) -> None:  # type: ignore[no-untyped-def]
    engine = StreamingEngine(LatentMixer(make_tiny_model(), EngineConfig(sources=[1], **ENGINE), device="cpu"), 256)
    session = LiveSession(
        engine,
        LiveConfig(
            input_device="system", output_device="system", block=256, source_channels=((1,),), output_channels=(1, 2)
        ),
    )
    session.start()
    try:
        (lin,), outs = session.port_names
        own = session.through_latency
        assert own == engine.latency > 0
        # read back by another JACK client (jack_lsp): capture latency downstream of our outputs is the
        # system capture's plus ours; playback latency upstream of our inputs is the system playback's plus ours
        capture = jack_port_latency(jack_server, "system:capture_1", "capture")
        playback = jack_port_latency(jack_server, "system:playback_1", "playback")
        for out in outs:
            assert jack_port_latency(jack_server, out, "capture") == capture + own
        assert jack_port_latency(jack_server, lin, "playback") == playback + own
        assert session.latency == own + capture + playback
    finally:
        session.stop()


def test_a_killed_and_restarted_server_is_reported_as_an_outage(jack_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = make_tiny_model().save_pretrained(tmp_path / "tiny")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    cmd = [sys.executable, "-m", "lincae", "live", "--input", "system", "--output", "system", "--model", str(model)]
    take = tmp_path / "take.wav"  # a recording runs through the outage
    proc = subprocess.Popen(
        [*cmd, "--duration", "9", "--record", str(take)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_until(lambda: "lincae:out_1" in jack_server.ports(), timeout=60)
        time.sleep(1.0)
        jack_server.restart(kill=True, down_for=1.5)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    summary = next(line for line in err.splitlines() if line.startswith("stopped after"))
    lost = re.search(r"outages 1 \((\d+\.\d) s lost\)", summary)
    assert lost is not None and float(lost.group(1)) >= 1.5, summary
    status = [part for line in err.splitlines() for part in line.split("\r") if part.startswith("latency")]
    assert any("outages 1 (" in s for s in status), status[-3:]
    assert f"recorded {take}" in err
    from pedalboard.io import AudioFile

    with AudioFile(str(take)) as f:  # a valid file, holding audio from before and after the outage
        assert f.samplerate == 44100 and f.frames >= 44100 * 3
    # libjack's own messages (Cannot connect to server socket, JackSocketClientChannel...) stay off the terminal
    assert not re.search(r"Cannot |Jack[A-Z]|jack server|Server is not running|CheckRes", err), err[-3000:]


def test_a_recording_keeps_time_through_an_outage(jack_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The JACK server is killed and restarted under a recording: the seconds without audio are written into
    the take and into each input take as silence, so every take lasts as long as the recording did, and the
    takes stay aligned with each other."""
    import numpy as np
    from pedalboard.io import AudioFile

    engine = StreamingEngine(LatentMixer(make_tiny_model(), EngineConfig(sources=[1, 1], **ENGINE), device="cpu"), 256)
    session = LiveSession(
        engine,
        LiveConfig(
            input_device="system",
            output_device="system",
            block=256,
            source_channels=((1,), (2,)),
            output_channels=(1,),
            reopen_backoff=0.2,
        ),
    )
    session.start()
    try:
        assert wait_until(lambda: engine.metrics.windows > 2, timeout=20)
        files = session.start_recording(tmp_path / "take.wav", inputs=True)
        began = time.monotonic()
        time.sleep(1.0)
        jack_server.restart(kill=True, down_for=1.5)
        assert wait_until(lambda: session.reopens >= 1 and session.status == "running", timeout=30), session.status
        time.sleep(1.0)
        ended = time.monotonic()
        session.stop_recording()
    finally:
        session.stop()
    assert session.lost_seconds >= 1.5 and not session.recording_errors
    recorded = ended - began
    lengths = []
    for path in files:
        with AudioFile(str(path)) as f:
            audio = f.read(f.frames)
        lengths.append(audio.shape[-1])
        # as long as the recording ran (a busy machine's lost periods aside), not short of the outage
        assert abs(audio.shape[-1] / 44100 - recorded) < 0.4, (path.name, audio.shape[-1] / 44100, recorded)
    assert len(set(lengths)) == 1  # output and inputs: the same callbacks and the same silence
    # the outage is there as exact silence in what was played (the longest stretch of zeros)
    with AudioFile(str(files[0])) as f:
        played = np.flatnonzero(f.read(f.frames)[0])
    assert played.size and np.diff(played).max() >= 0.9 * session.lost_seconds * 44100
