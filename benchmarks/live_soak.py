"""Soak test: lincae live on a JACK server for many minutes, music in, counting every dropout and xrun.

    python benchmarks/live_soak.py [--minutes 10] [--model default] [--preset NAME] [--threads 1]
        [--sources 1] [--block 256]

Starts its own JACK server (dummy backend, 44.1 kHz, period = --block), runs a live session with the
given model and the engine settings of --preset (default: the engine's defaults), and a second JACK
client, in a process of its own as a sound card or another program would be, plays held-out music (the
mixes of a ``lincae dataset synth`` folder, looped; a generated piece if none is given) into every
source while the output is consumed (``--player-in-process``: in lincae's process instead, where its
callback competes for the interpreter with lincae's). Once a minute it prints the counters
since the start: worker load (RTF, mean of the minute and peak), windows, dropped windows, dropouts,
xruns, input overruns.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from jack_server import dummy_jack_server, engine_config, system_session


def music(folder: str | None, seconds: float) -> np.ndarray:
    """Mono float32 music at 44.1 kHz: the synth folder's mixes in order, or one generated piece."""
    if folder:
        from lincae.files.audiofile import read_audio

        parts = []
        for mix in sorted(Path(folder).glob("*/mix.wav")):
            parts.append(read_audio(mix, 44100).mean(axis=0))
            if sum(len(p) for p in parts) >= seconds * 44100:
                break
        return np.concatenate(parts).astype(np.float32)
    from lincae.data.synth import SynthConfig, generate_piece

    return generate_piece(2024, SynthConfig(seconds=min(seconds, 60.0))).mix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--model", default="default")
    ap.add_argument("--preset", help="engine settings of this preset (name or path)")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads for the inference worker")
    ap.add_argument("--sources", type=int, default=1)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--music", help="a lincae synth folder (e.g. data/synth-test)")
    ap.add_argument("--player-in-process", action="store_true", help="run the music player in lincae's process")
    args = ap.parse_args()
    with dummy_jack_server("soak", args.block, inputs=max(2, args.sources)):
        soak(args)


def soak(args: argparse.Namespace) -> None:
    import jack
    import torch

    from lincae.engine.cached import make_mixer
    from lincae.engine.params import ParameterRegistry, mixer_parameters
    from lincae.engine.stream import StreamingEngine
    from lincae.models.base import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model, max_batch_size=8)
    signal = 0.5 * music(args.music, 120.0)
    n = args.sources
    reg = ParameterRegistry(mixer_parameters(n))
    engine = StreamingEngine(make_mixer(model, engine_config(args.preset, n), reg), block=args.block)
    session = system_session(engine, args.block, n)
    player = Player(signal, n, in_process=args.player_in_process)
    session.start()
    try:
        time.sleep(0.5)
        player.start()
        pa_ins, (pa_out, *_) = session.port_names
        wiring = jack.Client("soak-wiring", no_start_server=True)
        for k, pa_in in enumerate(pa_ins[:n]):
            for c in wiring.get_all_connections(pa_in):
                wiring.disconnect(c, pa_in)
            wiring.connect(f"soak-player:out_{k + 1}", pa_in)
        wiring.connect(pa_out, "soak-player:in")
        wiring.close()
        m = engine.metrics
        where = "in lincae's process" if args.player_in_process else "in a process of its own"
        print(
            f"model {args.model}, preset {args.preset or '(engine defaults)'}, {args.threads} thread(s), "
            f"{n} source(s), block {args.block}, declared latency {session.latency} samples "
            f"({1000 * session.latency / 44100:.1f} ms), {args.minutes:g} minutes, music player {where}"
        )
        print("| minute | RTF mean | RTF peak | windows | dropped windows | dropouts | xruns | input overruns |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        start = time.monotonic()
        minute, rtf_sum, rtf_n, last_windows = 1, 0.0, 0, 0
        while time.monotonic() - start < 60 * args.minutes:
            time.sleep(0.05)
            if m.windows != last_windows:
                rtf_sum, rtf_n, last_windows = rtf_sum + m.rtf_last, rtf_n + 1, m.windows
            if time.monotonic() - start >= 60 * minute or time.monotonic() - start >= 60 * args.minutes:
                print(
                    f"| {minute} | {rtf_sum / max(rtf_n, 1):.3f} | {m.rtf_peak:.3f} | {m.windows} | "
                    f"{m.dropped_windows} | {m.dropouts} | {m.xruns} | {m.input_overruns} |",
                    flush=True,
                )
                minute, rtf_sum, rtf_n = minute + 1, 0.0, 0
    finally:
        heard = player.stop()
        session.stop()
    print(f"output peak heard by the player: {20 * np.log10(heard + 1e-12):.1f} dBFS")


def open_player(signal: np.ndarray, sources: int) -> tuple[object, list[float]]:
    """An active JACK client ``soak-player``: ``signal`` into ports ``out_1..n``, the peak of port ``in``."""
    import jack

    pos, heard = [0], [0.0]
    client = jack.Client("soak-player", no_start_server=True)
    outs = [client.outports.register(f"out_{i + 1}") for i in range(sources)]
    inp = client.inports.register("in")

    def process(frames: int) -> None:
        p = pos[0] % (len(signal) - frames)
        for k, o in enumerate(outs):  # each source hears the music, offset so that they differ
            q = (p + k * 44100 * 7) % (len(signal) - frames)
            o.get_array()[:] = signal[q : q + frames]
        heard[0] = max(heard[0], float(np.abs(inp.get_array()).max()))
        pos[0] = p + frames

    client.set_process_callback(process)
    client.activate()
    return client, heard


# The player in a process of its own: plays until a line arrives on stdin, then prints the peak it heard.
PLAYER = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[3])
from live_soak import open_player
client, heard = open_player(np.load(sys.argv[1]), int(sys.argv[2]))
print("ready", flush=True)
sys.stdin.readline()
client.deactivate()
client.close()
print(heard[0], flush=True)
"""


class Player:
    """The music player, in lincae's process or in one of its own."""

    def __init__(self, signal: np.ndarray, sources: int, in_process: bool) -> None:
        self.signal, self.sources, self.in_process = signal, sources, in_process
        self.proc: subprocess.Popen[str] | None = None
        self.client: object = None
        self.heard = [0.0]

    def start(self) -> None:
        if self.in_process:
            self.client, self.heard = open_player(self.signal, self.sources)
            return
        self.tmp = tempfile.TemporaryDirectory()
        path = Path(self.tmp.name) / "music.npy"
        np.save(path, self.signal.astype(np.float32))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PLAYER, str(path), str(self.sources), str(Path(__file__).parent)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the music player did not start")

    def stop(self) -> float:
        """Stop playing; the output's peak the player heard (linear)."""
        if self.client is not None:
            self.client.deactivate()  # type: ignore[attr-defined]
            self.client.close()  # type: ignore[attr-defined]
            return self.heard[0]
        if self.proc is None:
            return 0.0
        try:
            out, _ = self.proc.communicate("\n", timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        finally:
            self.tmp.cleanup()
        lines = (out or "").strip().splitlines()
        try:
            return float(lines[-1])
        except (IndexError, ValueError):
            return 0.0  # the player ended without reporting (the error that stopped the soak is the one to read)


if __name__ == "__main__":
    sys.exit(main())
