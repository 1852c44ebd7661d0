"""lincae's PyQt6 performer GUI: live latent mixing with MIDI knobs, presets and offline renders.

Launch with ``python -m lincae_gui`` or :func:`lincae_gui.app.main`. The window is a view of one
:class:`lincae.rig.Rig` (the session object the commands use too) and talks to the engine only through
public APIs (the rig, its parameter registry, ``EngineMetrics`` polled by a timer); it never runs code
on the audio or inference threads.
"""

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the GUI (see :func:`lincae_gui.app.main`)."""
    from lincae_gui.app import main as _main

    return _main(argv)
