"""Files: atomic writes, audio files (reading, checking, writing) and their integrity checks.

The bottom of lincae's layers with :mod:`lincae.config`: nothing here knows of models, the engine or
devices, so every layer above may read and write files through it (the models their weights, the
engine's effect chains an impulse response, the I/O layer recordings and latent files).
"""
