"""lincae's PyQt6 performer GUI: live latent mixing with MIDI knobs, presets and offline renders.

Launch with ``python -m lincae_gui`` or :func:`lincae_gui.app.main`. The GUI talks to the engine only
through its public API (the parameter registry, ``EngineMetrics`` polled by a timer, ``LiveSession``,
``MidiController``); it never runs code on the audio or inference threads.
"""

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the GUI (see :func:`lincae_gui.app.main`)."""
    from lincae_gui.app import main as _main

    return _main(argv)
