"""The Lin-CAE autoencoder: ``encode`` audio to latents, ``decode`` latents to audio.

Same public API as the official ``linear-cae`` package::

    model = Autoencoder.from_pretrained("lin-cae")
    z = model.encode(audio)                          # audio: Tensor[B, T] at 44.1 kHz -> z: Tensor[B, 64, Z]
    y = model.decode(z, full_length=audio.shape[-1])  # Tensor[B, T]

Latents are the encoder output times ``scale_factor`` (15, 33 or 40 for the official checkpoints).
Audio longer than ``max_chunk_size`` is encoded as overlapping chunks, giving ``[B, N, C, Z]``;
``decode`` joins such chunks with a linear crossfade.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lincae.config import check_int, check_number
from lincae.models.base import LatentAutoencoder, fold_channels, unfold_channels
from lincae.models.base import check_audio as _check_audio
from lincae.models.config import DiffusionConfig, FrontendConfig, GeneratorConfig
from lincae.models.frontend import ScaledComplexSTFT
from lincae.models.official import OFFICIAL_SCALE_FACTORS
from lincae.models.precision import precision_of
from lincae.models.runtime import release_freed_memory
from lincae.models.sampling import ConsistencySampler
from lincae.models.unet import UNet

DEFAULT_SAMPLE_RATE = 44100
#: Most parameters a configuration may ask for (2 GB of float32 weights; the official models have 54 M).
MAX_PARAMETERS = 500_000_000


def _check_size(config: GeneratorConfig) -> None:
    """Refuse a network over :data:`MAX_PARAMETERS`, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        count = sum(p.numel() for p in UNet(config).parameters())
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"GeneratorConfig: the network would have {count / 1e6:.0f} M parameters, more than the "
            f"{MAX_PARAMETERS / 1e6:.0f} M allowed (lower base_channels, multipliers_list or layers)"
        )


def overlap_add_crossfade(chunks: Tensor, in_step: int, in_chunk_len: int, final_len: int) -> Tensor:
    """Join decoded chunks ``[B, N, L]`` with linear crossfades → audio ``[B, final_len]``.

    The hop between chunks is ``in_step`` scaled by ``L / in_chunk_len`` (the decoded chunk length
    over the encoded one), as in the official implementation.
    """
    b, n, length = chunks.shape
    step = length * in_step // in_chunk_len
    overlap = length - step
    out_len = step * (n - 1) + length
    if overlap > 0 and n > 1:
        fade_in = torch.linspace(0.0, 1.0, overlap, device=chunks.device, dtype=chunks.dtype)
        chunks = chunks.clone()
        chunks[:, 1:, :overlap] *= fade_in
        chunks[:, :-1, -overlap:] *= 1.0 - fade_in
        audio = torch.nn.functional.fold(
            chunks.transpose(1, 2), output_size=(out_len, 1), kernel_size=(length, 1), stride=(step, 1)
        ).reshape(b, out_len)
    else:
        audio = chunks.reshape(b, -1)
    return audio[..., :final_len]


class Autoencoder(LatentAutoencoder):
    """Consistency autoencoder for 44.1 kHz mono audio (the official family, ``family = "unet"``).

    Args:
        frontend, generator, diffusion: configs (or plain dicts of the official constructor arguments).
        max_batch_size: largest batch pushed through the network at once; bigger batches are split.
        diffusion_steps: default number of decoding steps.
        mixed_precision: run the network under autocast (:mod:`lincae.models.precision`): on CUDA in
            ``autocast_dtype``, on the CPU in bfloat16.
        name: model id, used to look up the official latent scale factor when none is given.
        max_chunk_size: audio longer than this (in samples) is encoded in overlapping chunks.
        overlap_percentage: chunk overlap as a fraction of ``max_chunk_size``.
        scale_factor: multiplies encoder outputs to give latents.
        autocast_dtype: ``torch.float16`` or ``torch.bfloat16`` for ``mixed_precision``; ``None`` (default):
            bfloat16 where the GPU supports it, else float16 (lincae's precision policy, see the README).
            A caller that owns the precision (the engine) uses :meth:`precision_scope` instead.
    """

    def __init__(
        self,
        frontend: FrontendConfig | dict[str, Any] | None = None,
        generator: GeneratorConfig | dict[str, Any] | None = None,
        diffusion: DiffusionConfig | dict[str, Any] | None = None,
        max_batch_size: int = 1,
        diffusion_steps: int = 1,
        mixed_precision: bool = False,
        enable_grad_denoise: bool = False,
        name: str = "model",
        max_chunk_size: int | None = None,
        overlap_percentage: float = 0.25,
        scale_factor: float | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        frontend_cfg = FrontendConfig.from_dict(frontend)
        generator_cfg = GeneratorConfig.from_dict(generator)
        diffusion_cfg = DiffusionConfig.from_dict(diffusion)
        if frontend_cfg.hop_size != generator_cfg.hop:
            raise ValueError(
                f"frontend hop_size {frontend_cfg.hop_size} differs from generator hop {generator_cfg.hop}"
            )
        if generator_cfg.data_channels != 2:
            raise ValueError(f"data_channels must be 2 (real, imaginary), got {generator_cfg.data_channels}")
        check_int(max_batch_size, "max_batch_size", 1, 4096)
        check_int(diffusion_steps, "diffusion_steps", 1, 1000)
        if max_chunk_size is not None:
            check_int(max_chunk_size, "max_chunk_size", frontend_cfg.hop_size * frontend_cfg.n_fft_factor, 2**31 - 1)
        if not (isinstance(overlap_percentage, (int, float)) and 0.0 <= overlap_percentage < 1.0):
            raise ValueError(f"overlap_percentage must be in [0, 1), got {overlap_percentage!r}")
        if scale_factor is not None:
            check_number(scale_factor, "scale_factor", 0.0, 1e6, above=True)
        _check_size(generator_cfg)
        precision_of(mixed_precision, autocast_dtype)  # ValueError for a dtype autocast does not take
        self.frontend = ScaledComplexSTFT(frontend_cfg)
        self.generator = UNet(generator_cfg)
        self.diffusion = ConsistencySampler(diffusion_cfg)
        self.diffusion_steps = diffusion_steps
        self.enable_grad_denoise = enable_grad_denoise
        self.mixed_precision = mixed_precision
        self.autocast_dtype = autocast_dtype
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_chunk_size = max_chunk_size
        self.overlap_percentage = overlap_percentage
        self.scale_factor = float(scale_factor if scale_factor is not None else OFFICIAL_SCALE_FACTORS.get(name, 1.0))

    family = "unet"

    # ----------------------------------------------------------------- description
    @property
    def sample_rate(self) -> int:
        """Audio rate in Hz (the frontend's, else 44100)."""
        return self.frontend.sample_rate or DEFAULT_SAMPLE_RATE

    @property
    def latent_channels(self) -> int:
        return self.generator.config.bottleneck_channels

    @property
    def hop_length(self) -> int:
        """Samples per latent frame (STFT hop times the temporal downsampling)."""
        return self.frontend.hop_size * 2**self.generator.config.temporal_downsamples

    @property
    def encoder(self) -> nn.Module:
        return self.generator.encoder

    @property
    def streamable(self) -> bool:
        """Whether the model streams exactly block by block (:mod:`lincae.models.streaming`)."""
        return bool(self.generator.config.streamable)

    @property
    def stream_delay(self) -> int:
        """Samples from input to output when streaming: ``n_fft − hop + lookahead · hop`` (streamable models)."""
        front = self.frontend
        return front.n_fft - front.hop_size + self.generator.config.lookahead * front.hop_size

    def open_encoder_stream(self, batch: int, step_frames: int | None = None) -> Any:
        """A :class:`~lincae.models.streaming.StreamingEncoder` (the contract of :mod:`lincae.models.base`)."""
        from lincae.models.streaming import StreamingEncoder

        return StreamingEncoder(self, batch)

    def open_decoder_stream(self, batch: int, seed: int = 0, steps: int = 1, step_frames: int | None = None) -> Any:
        """A :class:`~lincae.models.streaming.StreamingDecoder` drawing frame noise from ``seed``."""
        from lincae.models.streaming import StreamingDecoder

        return StreamingDecoder(self, batch, seed, steps)

    def get_latent_size(self, audio_length: int) -> int:
        """Latent frames ``Z`` for ``audio_length`` samples (unchunked)."""
        size = self.frontend.num_frames(audio_length)
        for _ in range(self.generator.config.temporal_downsamples):
            size = (size - 1) // 2 + 1
        return size

    def get_decoded_size(self, latent_length: int) -> int:
        """Audio samples produced by decoding ``latent_length`` latent frames."""
        return self.frontend.num_samples(2**self.generator.config.temporal_downsamples * latent_length)

    def min_samples(self) -> int:
        """Shortest audio that yields one latent frame (one FFT frame)."""
        return self.frontend.n_fft

    def config_dict(self) -> dict[str, Any]:
        """Every constructor argument needed to rebuild this model (JSON-serialisable)."""
        return {
            "frontend": self.frontend.config.to_dict(),
            "generator": self.generator.config.to_dict(),
            "diffusion": self.diffusion.config.to_dict(),
            "scale_factor": self.scale_factor,
            "sample_rate": self.sample_rate,
            "inference": {
                "max_batch_size": self.max_batch_size,
                "diffusion_steps": self.diffusion_steps,
                "max_chunk_size": self.max_chunk_size,
                "overlap_percentage": self.overlap_percentage,
            },
            "name": self.name,
        }

    # ----------------------------------------------------------------- encode
    def _batched(self, fn: Any, x: Tensor, max_batch_size: int | None) -> Tensor:
        size = max_batch_size or self.max_batch_size
        if x.shape[0] <= size:
            return fn(x)
        return torch.cat([fn(part) for part in torch.split(x, size, dim=0)], dim=0)

    def _chunk_geometry(self) -> tuple[int, int]:
        assert self.max_chunk_size is not None
        overlap = int(self.max_chunk_size * self.overlap_percentage)
        return self.max_chunk_size, self.max_chunk_size - overlap

    def encode(self, x: Tensor, extract_features: bool = False, max_batch_size: int | None = None) -> Tensor:
        """Audio ``[B, T]`` (or ``[T]``) at :attr:`sample_rate` → latents.

        Returns:
            ``[B, C, Z]``, or ``[B, N, C, Z]`` when ``T > max_chunk_size`` (``N`` overlapping chunks).
            With ``extract_features`` the pre-bottleneck features ``[B, C * freq_dim, Z]`` replace the
            latents (times ``scale_factor``, as in the official package).
        """
        x = _check_audio(x)
        if x.shape[-1] < self.min_samples():
            raise ValueError(f"audio of {x.shape[-1]} samples is shorter than one frame ({self.min_samples()} samples)")
        x = x.to(self.device, torch.float32)

        def run(rep: Tensor) -> Tensor:
            with self._network_context():
                out = self.generator.encoder(rep, extract_features=extract_features)
            return out.float() * self.scale_factor  # features are scaled too, as in the official code

        with torch.no_grad():
            if self.max_chunk_size is None or x.shape[-1] <= self.max_chunk_size:
                return self._batched(run, self.frontend.to_representation(x), max_batch_size)
            b, t = x.shape
            chunk_len, step = self._chunk_geometry()
            pad = (step - (t - chunk_len) % step) % step
            chunks = torch.nn.functional.pad(x, (0, pad)).unfold(-1, chunk_len, step)  # [B, N, chunk]
            n = chunks.shape[1]
            z = self._batched(run, self.frontend.to_representation(chunks.reshape(b * n, chunk_len)), max_batch_size)
            return z.reshape(b, n, *z.shape[1:])

    # ----------------------------------------------------------------- decode
    def decode(
        self,
        z: Tensor,
        full_length: int | None = None,
        diffusion_steps: int | None = None,
        max_batch_size: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        shared_noise: bool = False,
        seeds: Sequence[int] | None = None,
        noise_batch_size: int | None = None,
    ) -> Tensor:
        """Latents ``[B, C, Z]`` or chunked ``[B, N, C, Z]`` → audio ``[B, T]``.

        Args:
            full_length: output length in samples; required for chunked latents. Output is cut
                (or zero-padded at the end) to it.
            diffusion_steps: denoising steps (default :attr:`diffusion_steps`).
            generator, seed: noise source, for reproducible decoding (``seed`` builds a CPU generator).
                Without either, the global RNG is used.
            shared_noise: decode every item (and chunk) with the same noise; with a ``generator``,
                each part of a batch split by ``max_batch_size`` restarts from its state.
            seeds: one seed per item of ``[B, C, Z]`` latents: item ``i`` decodes exactly as
                ``decode(z[i:i+1], seed=seeds[i])`` would, whatever the batch (items with equal seeds
                get equal noise).
            max_batch_size: items (or chunks) through the network at once (default :attr:`max_batch_size`).
                With ``generator`` (or neither), the noise is drawn for groups of that many items, so the
                output depends on it, unless ``noise_batch_size`` is given.
            noise_batch_size: draw the noise for groups of this many items instead: the output is that of
                ``decode(..., max_batch_size=noise_batch_size)``, computed ``max_batch_size`` items at a time
                (less memory, the same audio).

        A streamable model decoding with ``seed`` or ``seeds`` draws each frame's noise from that seed and
        the frame's index (:func:`lincae.models.streaming.frame_noise`, shared by the items of a batch), so
        the offline pass equals a stream; ``generator`` (or neither) draws as other models do.
        """
        if not isinstance(z, Tensor) or not z.is_floating_point():
            raise ValueError(f"latents must be a floating-point torch.Tensor, got {getattr(z, 'dtype', type(z))}")
        if z.dim() not in (3, 4):
            raise ValueError(f"latents must be [B, C, Z] or chunked [B, N, C, Z], got shape {tuple(z.shape)}")
        if z.shape[-2] != self.latent_channels:
            raise ValueError(f"latents have {z.shape[-2]} channels, this model uses {self.latent_channels}")
        if z.numel() == 0:
            raise ValueError(f"latents are empty (shape {tuple(z.shape)})")
        if not torch.isfinite(z).all():
            raise ValueError("latents contain NaN or Inf values")
        if full_length is not None and full_length < 1:
            raise ValueError(f"full_length must be >= 1, got {full_length}")
        if seeds is not None:
            if z.dim() != 3 or len(seeds) != z.shape[0]:
                raise ValueError(f"seeds needs one seed per item of [B, C, Z] latents, got {len(seeds)} for {z.shape}")
            if generator is not None or seed is not None:
                raise ValueError("pass seeds, or seed / generator, not both")
        frame_seed = seed if self.streamable and generator is None else None
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        steps = diffusion_steps or self.diffusion_steps
        z = z.to(self.device, torch.float32)

        start = generator.get_state() if shared_noise and generator is not None else None

        network_batch = max_batch_size or self.max_batch_size
        if noise_batch_size is not None:
            check_int(noise_batch_size, "noise_batch_size", 1, 1 << 20)
        noise_batch = noise_batch_size or network_batch

        def run(lat: Tensor) -> Tensor:
            """One group of noise draws, through the network ``network_batch`` items at a time."""
            if start is not None:
                generator.set_state(start)  # type: ignore[union-attr]
            reps = self.diffusion.pieces(
                self.generator,
                lat / self.scale_factor,
                steps,
                generator,
                shared_noise,
                self._frame_noise(frame_seed, lat),
                max_batch_size=network_batch,
            )
            audio = []
            while True:
                with self._network_context():
                    rep = next(reps, None)
                if rep is None:
                    break
                audio.append(self.frontend.to_waveform(rep.float()))
                del rep
                if network_batch < lat.shape[0]:  # pieces to save memory: their freed pages go back
                    release_freed_memory()
            return audio[0] if len(audio) == 1 else torch.cat(audio)

        grad = torch.enable_grad() if self.enable_grad_denoise else torch.no_grad()
        with grad:
            if seeds is not None:
                size = max_batch_size or self.max_batch_size
                parts = []
                for lo in range(0, z.shape[0], size):
                    part = z[lo : lo + size] / self.scale_factor
                    gens = [torch.Generator().manual_seed(int(s)) for s in seeds[lo : lo + size]]
                    noise_fn = None
                    if self.streamable:
                        fns = [self._frame_noise(int(s), part) for s in seeds[lo : lo + size]]

                        def noise_fn(k: int, fns: list = fns) -> Tensor:  # type: ignore[type-arg]
                            return torch.cat([fn(k) for fn in fns])  # type: ignore[misc]

                    with self._network_context():
                        rep = self.diffusion.sample(self.generator, part, steps, gens, noise_fn=noise_fn)
                    parts.append(self.frontend.to_waveform(rep.float()))
                return _fit_length(torch.cat(parts), full_length)
            if z.dim() == 3:
                audio = self._batched(run, z, noise_batch)
                return _fit_length(audio, full_length)
            if full_length is None:
                raise ValueError("decoding chunked latents needs full_length: model.decode(z, full_length=T)")
            if self.max_chunk_size is None:
                raise ValueError("chunked latents need max_chunk_size set on the model (in samples)")
            b, n = z.shape[:2]
            chunk_len, step = self._chunk_geometry()
            chunks = self._batched(run, z.reshape(b * n, *z.shape[2:]), noise_batch)[..., :chunk_len]
            audio = overlap_add_crossfade(chunks.reshape(b, n, -1), step, chunk_len, full_length)
            return _fit_length(audio, full_length)

    def _frame_noise(self, seed: int | None, latents: Tensor) -> Any:
        """Per-frame noise ``k → [1, 2, 2*hop, Z]`` of ``seed`` for a streamable model's sampler, else ``None``."""
        if seed is None:
            return None
        from lincae.models.streaming import frame_noise

        rows, frames = self.generator.config.hop * 2, latents.shape[-1]
        cache: dict[int, Tensor] = {}

        def noise(k: int) -> Tensor:
            if k not in cache:
                cache[k] = frame_noise(seed, 0, frames, rows, k)
            return cache[k]

        return noise

    def generate(self, *args: Any, **kwargs: Any) -> Tensor:
        """Disabled, as in the official package: use :meth:`encode` / :meth:`decode` (they handle scaling)."""
        raise RuntimeError("Direct calls to `generate` are disabled. Use `encode`/`decode`.")


def _fit_length(audio: Tensor, length: int | None) -> Tensor:
    if length is None:
        return audio
    if audio.shape[-1] >= length:
        return audio[..., :length]
    return torch.nn.functional.pad(audio, (0, length - audio.shape[-1]))


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "Autoencoder",
    "fold_channels",
    "num_parameters",
    "overlap_add_crossfade",
    "unfold_channels",
]
