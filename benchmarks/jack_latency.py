"""End-to-end latency through a JACK loop, measured with a click, against the engine's declared latency.

    python benchmarks/jack_latency.py [--model PATH | --config YAML] [--preset NAME] [--threads 1] [--block 256]
        [--clicks 5]

Starts its own JACK server (dummy backend, 44.1 kHz, period = --block), runs lincae live on it, and a
second JACK client sends clicks into lincae's input and records its output. The mix is set fully dry
(dry/wet 0 %) so the click comes back unchanged through the engine's windows and crossfades whatever
the model; the timing path is the same as for the decoded signal. Without --model the architecture of
--config (default configs/small.yaml; configs/small-stream.yaml for the streamable one) is used with
random weights. --preset takes the engine settings of a preset (default: the engine's defaults); a
streamable model streams through its cached convolutions where the preset lets it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from jack_server import dummy_jack_server, engine_config, system_session, wire_loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--config", default="configs/small.yaml", help="architecture to use without --model")
    ap.add_argument("--preset", help="engine settings of this preset (name or path)")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads for the inference worker")
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--clicks", type=int, default=5)
    args = ap.parse_args()
    with dummy_jack_server("bench", args.block):
        measure(args)


def measure(args: argparse.Namespace) -> None:
    import jack
    import torch

    from lincae.engine.cached import make_mixer
    from lincae.engine.params import ParameterRegistry, mixer_parameters
    from lincae.engine.stream import StreamingEngine
    from lincae.io.live import wait_until
    from lincae.models.autoencoder import Autoencoder
    from lincae.models.base import load_model
    from lincae.training.config import TrainConfig

    torch.set_num_threads(args.threads)
    if args.model:
        model = load_model(args.model)
    else:
        cfg = TrainConfig.from_yaml(args.config).model
        model = Autoencoder(cfg.frontend, cfg.generator, cfg.diffusion)
    reg = ParameterRegistry(mixer_parameters(1))
    reg.set("mix.dry_wet", 0.0)
    engine = StreamingEngine(make_mixer(model, engine_config(args.preset, 1), reg), block=args.block)
    session = system_session(engine, args.block)
    gap = 44100  # one click per second
    total = gap * (args.clicks + 1) + engine.latency + 4 * args.block
    signal = np.zeros(total, np.float32)
    sent = [gap // 2 + i * gap for i in range(args.clicks)]
    signal[sent] = 0.8
    recorded = np.zeros(total, np.float32)
    pos = [0]
    client = jack.Client("click", no_start_server=True)
    out, inp = client.outports.register("out"), client.inports.register("in")

    def process(frames: int) -> None:
        p = pos[0]
        o = out.get_array()
        o[:] = 0.0
        if p < total:
            n = min(frames, total - p)
            o[:n] = signal[p : p + n]
            recorded[p : p + n] = inp.get_array()[:n]
            pos[0] = p + frames

    session.start()
    declared = session.latency  # read while the stream is open
    try:
        time.sleep(0.5)
        client.set_process_callback(process)
        client.activate()
        wire_loop(client, session, out, inp)
        wait_until(lambda: pos[0] >= total, timeout=total / 44100 * 3 + 10)
    finally:
        client.deactivate()
        client.close()
        session.stop()
    heard = [int(np.argmax(np.abs(recorded[s : s + gap]) > 0.4)) for s in sent]
    device = declared - engine.latency
    print(
        f"block {args.block}, declared latency {declared} samples ({1000 * declared / 44100:.1f} ms): engine "
        f"{engine.latency} ({1000 * engine.latency / 44100:.1f} ms) + device {device} (JACK's capture and playback "
        f"latency of the system ports), backend {session.backend}, dropouts {engine.metrics.dropouts}, "
        f"xruns {engine.metrics.xruns}, {'streaming' if engine.mixer.streaming else 'windows'}"
        + (f" ({engine.metrics.notice})" if engine.metrics.notice else "")
    )
    print(
        "The click client is wired straight to lincae's JACK ports (the dummy backend has no sound card to "
        "loop through), so it measures the engine's part; a sound card adds the device part."
    )
    print("| click | measured samples | measured ms | measured − engine latency (samples) | within one block |")
    print("|---:|---:|---:|---:|:---:|")
    for i, h in enumerate(heard):
        diff = h - engine.latency
        print(f"| {i + 1} | {h} | {1000 * h / 44100:.1f} | {diff} | {'yes' if 0 <= diff <= args.block else 'no'} |")


if __name__ == "__main__":
    sys.exit(main())
