"""Knob to ear: a MIDI control change sent at time t, heard at lincae's output when?

    python benchmarks/knob_latency.py [--model default] [--preset low-latency] [--block 256] [--presses 6]
        [--threads 1]

Starts its own JACK server (dummy backend, 44.1 kHz, period = --block) and runs lincae live on it with a
MIDI mapping CC 20 → ``source.1.mute``, its MIDI controller polled every 5 ms as ``lincae live`` does.
A second JACK client plays a steady tone into lincae's input, records its output, and sends CC 20
(mute on, then off) from its JACK MIDI port at exact sample times. Heard is the first sample after the
change from which the output's 64-sample level stays a fifth of the way (in dB) from its level before
to its level after for 512 samples; the preset's smoothing is set to 0 so that the mute is a step.
Muting works on the latents, so the model must reproduce the tone (a trained model: ``--model default``,
or a streamable run's checkpoint); the mix is fully wet. The target: heard within the engine's declared
latency plus one block.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as lincae live

import numpy as np
from jack_server import dummy_jack_server, engine_config, system_session, wire_loop
from machine import cpu_name

CC = 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--preset", default="low-latency", help="engine settings of this preset (name or path)")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads for the inference worker")
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--presses", type=int, default=6, help="mute on/off changes, one every 0.75 s")
    args = ap.parse_args()
    with dummy_jack_server("knob", args.block):
        measure(args)


def _levels(x: np.ndarray, size: int = 64) -> np.ndarray:
    """dB level of each ``size``-sample block of ``x``."""
    n = x.size // size
    return 20 * np.log10(np.sqrt((x[: n * size].reshape(n, size) ** 2).mean(1)) + 1e-9)


def measure(args: argparse.Namespace) -> None:
    import jack
    import torch

    from lincae.engine.cached import make_mixer
    from lincae.engine.params import ParameterRegistry, mixer_parameters
    from lincae.engine.stream import StreamingEngine
    from lincae.io.live import wait_until
    from lincae.io.mapping import MidiMapping
    from lincae.io.midi import MidiController
    from lincae.models.base import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    reg = ParameterRegistry(mixer_parameters(1))
    reg.set("mix.dry_wet", 100.0)
    # No smoothing ramp: the mute is a step, so the moment it is heard is sharp.
    settings = dataclasses.replace(engine_config(args.preset, 1), smoothing_ms=0.0)  # type: ignore[type-var]
    engine = StreamingEngine(make_mixer(model, settings, reg), block=args.block)
    midi = MidiController(reg, [MidiMapping("source.1.mute", cc=CC, channel=1, soft_takeover=False)], api="jack")
    midi.start_client()  # before lincae's JACK audio client (see MidiController.start_client)
    session = system_session(engine, args.block)
    gap = int(0.75 * 44100)
    start = 44100
    total = start + gap * (args.presses + 1)
    t = np.arange(total) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 330 * t) + 0.15 * np.sin(2 * np.pi * 660 * t)).astype(np.float32)
    sent = [start + i * gap for i in range(args.presses)]
    recorded = np.zeros(total, np.float32)
    pos = [0]
    client = jack.Client("knob-player", no_start_server=True)
    out, inp = client.outports.register("out"), client.inports.register("in")
    cc_out = client.midi_outports.register("cc")

    def process(frames: int) -> None:
        p = pos[0]
        o = out.get_array()
        o[:] = 0.0
        cc_out.clear_buffer()
        if p < total:
            n = min(frames, total - p)
            o[:n] = tone[p : p + n]
            recorded[p : p + n] = inp.get_array()[:n]
            for i, s in enumerate(sent):
                if p <= s < p + frames:
                    cc_out.write_midi_event(s - p, bytes([0xB0, CC, 127 if i % 2 == 0 else 0]))
            pos[0] = p + frames

    running = threading.Event()
    running.set()

    def poll() -> None:
        while running.is_set():
            midi.poll()
            time.sleep(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    session.start()
    declared = session.latency
    try:
        midi.open_virtual("in")
        poller.start()
        time.sleep(0.5)
        client.set_process_callback(process)
        client.activate()
        wire_loop(client, session, out, inp)
        client.connect(cc_out, f"{midi.client_name}:in")
        wait_until(lambda: pos[0] >= total, timeout=total / 44100 * 3 + 10)
    finally:
        running.clear()
        client.deactivate()
        client.close()
        session.stop()
        midi.close()
    engine_latency = engine.latency
    levels = _levels(recorded)
    print(
        f"model {args.model}, preset {args.preset}, block {args.block}, "
        f"{'streaming' if engine.mixer.streaming else 'windows'}; CPU: {cpu_name()}; threads {args.threads}"
    )
    print(
        f"declared latency {declared} samples ({1000 * declared / 44100:.1f} ms), engine {engine_latency} "
        f"({1000 * engine_latency / 44100:.1f} ms); dropouts {engine.metrics.dropouts}, xruns {engine.metrics.xruns}"
    )
    print("| change | sent at | heard at | delay ms | engine latency + block ms | within |")
    print("|---|---:|---:|---:|---:|:---:|")
    bound = engine_latency + args.block
    for i, s in enumerate(sent):
        b = s // 64
        before = np.median(levels[max(0, b - 100) : b])
        after = np.median(levels[b + (bound + gap // 2) // 64 - 40 : b + (bound + gap // 2) // 64])
        # onset: the level has gone a fifth of the way (in dB) from where it was towards where it goes
        edge = before + 0.2 * (after - before)
        moved = levels[b:] < edge if after < before else levels[b:] > edge
        # the first block from which the level stays past that for 8 blocks (512 samples)
        held = np.convolve(moved.astype(float), np.ones(8), "valid") == 8
        heard = (b + int(np.argmax(held))) * 64 if held.any() else -1
        delay = heard - s
        change = "mute" if i % 2 == 0 else "unmute"
        ok = "yes" if 0 <= delay <= bound else "no"
        print(f"| {change} | {s} | {heard} | {1000 * delay / 44100:.1f} | {1000 * bound / 44100:.1f} | {ok} |")


if __name__ == "__main__":
    sys.exit(main())
