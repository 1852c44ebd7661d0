"""Rendering audio files through the latent mixer and its effect chains (:mod:`lincae.render.files`).

The chains themselves live in :mod:`lincae.engine.effects`, beside the engine that runs them.
"""
