"""Audio devices, MIDI control and audio files."""
