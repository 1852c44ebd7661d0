"""Live and file I/O: audio devices and JACK, MIDI and OSC control, live sessions, recordings, latent files."""
