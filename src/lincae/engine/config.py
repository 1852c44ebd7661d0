"""Configuration of the streaming engine: sources, windowing, crossfades, overload behaviour.

Window, step and lookahead are counted in latent frames (the model's ``hop_length`` samples each);
the crossfade in samples. The engine's declared latency follows from them (see
:meth:`EngineConfig.latency_samples`). The defaults suit the shipped model (256-sample frames): windows
of 24 frames stepping by 16 (93 ms), 3 frames of lookahead, a 512-sample crossfade and one step of
compute budget: 9728 samples (221 ms) of latency at block 256, with a worker load of about a quarter
on a 2-core CPU. The ``low-latency`` preset trades some of that safety margin for 141 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from lincae.config import MAX_SEED, ConfigBase

CROSSFADE_SHAPES = ("linear", "hann")
MODES = ("auto", "windows", "stream")
FALLBACKS = ("dry", "silence")
PRECISIONS = ("auto", "fp32", "bf16")
#: Most audio samples one window may hold, summed over the input channels (12 s of mono audio at 44.1 kHz):
#: what the model sees per window is bounded whatever its frame size (offline rendering batches 16 of them).
MAX_WINDOW_SAMPLES = 2**19


@dataclass(frozen=True)
class EngineConfig(ConfigBase):
    """How the engine windows, mixes and recovers.

    Attributes:
        sources: channel count (1 or 2) of each source; stereo sources are encoded as two mono signals.
        window_frames: latent frames encoded per window.
        step_frames: latent frames between consecutive windows (new audio per step).
        lookahead_frames: latent frames of right context kept after the emitted segment.
        crossfade: samples over which consecutive windows' outputs crossfade.
        crossfade_shape: ``linear`` or ``hann``; both are amplitude-complementary (fades sum to 1).
        smoothing_ms: time for a parameter ramp across its full range; ramps advance per latent frame.
        compute_budget: steps of time the worker may take per step before output would run dry
            (part of the latency; above it the overload path drops windows).
        fallback: what fills a gap when the worker is late: the ``dry`` input sum or ``silence``.
        diffusion_steps: decoder steps per window.
        seed: decoder noise of window ``k`` uses seed ``seed + k`` (reproducible runs).
        output_channels: 0 = stereo if any source is stereo, else mono; or 1 or 2.
        precision: ``fp32``, ``bf16`` (autocast), or ``auto``: bfloat16 on CPUs that compute it natively
            (AVX-512 BF16, AMX: about 1.4× faster batched, 42 dB above its difference to float32), float32
            elsewhere. Live and offline rendering use the same, so they stay equal within rounding.
        mode: ``auto`` streams a streamable model through its cached convolutions and windows any
            other; ``stream`` asks for streaming (a model that cannot stream falls back to windows, with a
            notice); ``windows`` always windows.
        stream_frames: when streaming, latent frames per model call (the step); window, lookahead and
            crossfade then do not apply: the latency is ``stream_frames · hop · (1 + compute_budget)``
            plus the model's own delay (STFT framing and lookahead) plus one block.
    """

    sources: list[int] = field(default_factory=lambda: [1])
    window_frames: int = 24
    step_frames: int = 16
    lookahead_frames: int = 3
    crossfade: int = 512
    crossfade_shape: str = "hann"
    smoothing_ms: float = 50.0
    compute_budget: float = 1.0
    fallback: str = "dry"
    diffusion_steps: int = 1
    seed: int = 0
    output_channels: int = 0
    precision: str = "auto"
    mode: str = "auto"
    stream_frames: int = 4

    #: What a preset or a caller may ask for: enough for any use, small enough that no setting makes the
    #: engine allocate more than a few hundred MB (windows of up to 12 s at 256-sample frames, 32 sources).
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "window_frames": (1, 2048),
        "step_frames": (1, 2048),
        "lookahead_frames": (0, 2048),
        "crossfade": (0, 2**16),
        "smoothing_ms": (0.0, 60_000.0),
        "compute_budget": (0.25, 16.0),
        "diffusion_steps": (1, 64),
        "seed": (0, MAX_SEED),
        "output_channels": (0, 2),
        "stream_frames": (1, 64),
    }
    LENGTHS: ClassVar[dict[str, tuple[int, int]]] = {"sources": (1, 32)}

    def __post_init__(self) -> None:
        if isinstance(self.sources, (list, tuple)):
            object.__setattr__(self, "sources", list(self.sources))
        self.check_fields("engine: ")

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"engine: {msg}")

        need(len(self.sources) >= 1, "need at least one source")
        need(all(c in (1, 2) for c in self.sources), f"sources must be 1 or 2 channels each, got {self.sources}")
        need(self.step_frames >= 1, f"step_frames must be >= 1, got {self.step_frames}")
        need(self.lookahead_frames >= 0, f"lookahead_frames must be >= 0, got {self.lookahead_frames}")
        need(self.crossfade >= 0, f"crossfade must be >= 0 samples, got {self.crossfade}")
        need(self.crossfade_shape in CROSSFADE_SHAPES, f"crossfade_shape must be one of {CROSSFADE_SHAPES}")
        need(self.fallback in FALLBACKS, f"fallback must be one of {FALLBACKS}, got {self.fallback!r}")
        need(self.smoothing_ms >= 0, "smoothing_ms must be >= 0")
        need(self.compute_budget >= 0.25, f"compute_budget must be >= 0.25 steps, got {self.compute_budget}")
        need(self.diffusion_steps >= 1, "diffusion_steps must be >= 1")
        need(self.output_channels in (0, 1, 2), f"output_channels must be 0, 1 or 2, got {self.output_channels}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        need(self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}")

    @property
    def num_sources(self) -> int:
        return len(self.sources)

    @property
    def out_channels(self) -> int:
        return self.output_channels or max(self.sources)

    def check_model(self, hop_length: int) -> None:
        """Check that the window holds the step, lookahead and crossfade for a model's frame size, and that
        a window of every input channel stays within :data:`MAX_WINDOW_SAMPLES`."""
        channels = sum(self.sources)
        samples = self.window_frames * hop_length * channels
        if samples > MAX_WINDOW_SAMPLES:
            raise ValueError(
                f"engine: window_frames {self.window_frames} of {hop_length} samples × {channels} input channel(s) "
                f"is {samples} samples per window, more than the {MAX_WINDOW_SAMPLES} allowed "
                "(use fewer frames or sources)"
            )
        cross_frames = math.ceil(self.crossfade / hop_length)
        if self.crossfade > self.step_frames * hop_length:
            raise ValueError(
                f"engine: crossfade {self.crossfade} is longer than a step ({self.step_frames * hop_length} samples)"
            )
        if self.window_frames < self.step_frames + self.lookahead_frames + cross_frames:
            raise ValueError(
                f"engine: window_frames {self.window_frames} must hold step ({self.step_frames}) + lookahead "
                f"({self.lookahead_frames}) + crossfade ({cross_frames}) frames"
            )

    def latency_ms(
        self, hop_length: int, sample_rate: int = 44100, block: int = 256, stream_delay: int | None = None
    ) -> float:
        """:meth:`latency_samples` in milliseconds."""
        return 1000.0 * self.latency_samples(hop_length, block, stream_delay) / sample_rate

    def streams(self, model_streamable: bool) -> bool:
        """Whether a model that can (``True``) or cannot stream runs through the cached path with this config."""
        return model_streamable and self.mode != "windows"

    def latency_samples(self, hop_length: int, block: int = 0, stream_delay: int | None = None) -> int:
        """Declared input-to-output latency in samples.

        Windows: ``step · (1 + compute_budget) + lookahead + crossfade + block``. Streaming (pass the
        model's ``stream_delay``, see :attr:`lincae.models.autoencoder.Autoencoder.stream_delay`):
        ``stream_frames · hop · (1 + compute_budget) + stream_delay + block``.
        """
        if stream_delay is not None:
            step = self.stream_frames * hop_length
            return round(step * (1.0 + self.compute_budget)) + stream_delay + block
        step = self.step_frames * hop_length
        return round(step * (1.0 + self.compute_budget)) + self.lookahead_frames * hop_length + self.crossfade + block
