"""Make the README's screenshot of a real session: the GUI mixing music live through a private JACK server.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshot.py [--out docs/screenshot.png]

The shipped default model, the ``two-inputs`` preset (two mono sources, each with its high-pass pre
chain), held-out synthetic music (bass and chords into source 1, melody and drums into source 2) played into the
inputs by a second JACK client; once the latent heat map has filled, the window is grabbed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from jack_server import dummy_jack_server  # noqa: E402


def music(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    from lincae.data.synth import SynthConfig, generate_piece

    piece = generate_piece(20261204, SynthConfig(seconds=seconds))  # not a training piece
    s = piece.stems
    return (s["bass"] + s["chords"]).astype(np.float32), (s["melody"] + s["drums"]).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--seconds", type=float, default=12.0, help="how long the session runs before the grab")
    args = ap.parse_args()
    import jack
    from lincae_gui.main_window import MainWindow
    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication

    one, two = music(args.seconds + 10)
    with dummy_jack_server("shot", 256):
        app = QApplication.instance() or QApplication([])
        settings = QSettings(str(Path(args.out).with_suffix(".ini")), QSettings.Format.IniFormat)
        w = MainWindow(settings, popups=False)
        w.resize(1280, 760)
        w.show()
        player = jack.Client("music", no_start_server=True)
        outs = [player.outports.register("a"), player.outports.register("b")]
        pos = [0]

        def process(frames: int) -> None:
            p = pos[0] % (len(one) - frames)
            outs[0].get_array()[:] = one[p : p + frames]
            outs[1].get_array()[:] = two[p : p + frames]
            pos[0] += frames

        player.set_process_callback(process)
        try:
            assert w.load_preset("two-inputs"), w.last_error
            w.refresh_devices(rescan=True)
            w.select_device(w.input_combo, "system")
            w.select_device(w.output_combo, "system")
            w.start()
            deadline = time.monotonic() + 120
            while w.session is None and time.monotonic() < deadline:
                app.processEvents()
                time.sleep(0.05)
            if w.session is None:
                raise RuntimeError(f"the session did not start: {w.last_error}")
            player.activate()
            for port, out in zip(w.session.port_names[0], outs, strict=False):
                for other in player.get_all_connections(port):
                    player.disconnect(other, port)
                player.connect(out, port)
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                app.processEvents()
                time.sleep(0.03)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            if not w.grab().save(args.out):
                raise RuntimeError(f"could not write {args.out}")
            m = w.engine.metrics
            print(f"wrote {args.out}: latency {m.latency_ms:.0f} ms, load {m.rtf_peak:.2f} peak, windows {m.windows}")
        finally:
            player.deactivate()
            player.close()
            w.shutdown()
            Path(args.out).with_suffix(".ini").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
