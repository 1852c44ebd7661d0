"""The streaming engine: parameters, windowed latent mixing, live and offline drivers."""
