"""The ``lincae`` command: a thin layer over the library.

Each sub-command lives in one function that parses nothing itself; heavy imports happen inside it so
that ``lincae --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lincae.config import MAX_SEED, names_a_file

if TYPE_CHECKING:
    from lincae.io.live import LiveSession
    from lincae.io.midi import MidiController
    from lincae.io.shutdown import StopRequest
    from lincae.models.base import LatentAutoencoder
    from lincae.rig import Rig

Handler = Callable[[argparse.Namespace], int]

#: Ranges of the numeric options: enough for any use, small enough that no option makes a command allocate
#: without bound. Rates in Hz, lengths in seconds, blocks in frames.
RATE = (8000, 384_000)
MAX_BLOCK = 4096  # LiveConfig.max_block
MAX_THREADS = 1024
MAX_BATCH = 1024
#: Peak resident memory of ``lincae encode`` / ``lincae decode`` unless ``--memory-mb`` says otherwise, MB.
#: The default budget of lincae encode / decode: the estimate of a pass leaves the allocator's growth over a
#: long job out, so the peaks stay within 1000 MB with room for it (BENCHMARKS.md).
DEFAULT_MEMORY_MB = 800


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[lo, hi]``, else a one-line error naming the range."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in [{lo}, {hi}], got {text!r}")
        return value

    return parse


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _add_memory_mb(p: argparse.ArgumentParser) -> None:
    """``--memory-mb`` of ``lincae encode`` and ``lincae decode``."""
    p.add_argument(
        "--memory-mb",
        type=_int_in(200, 1 << 20),
        default=None,
        help="peak memory of the process, in MB: fewer chunks go through the model at once where needed "
        f"(the same output; default {DEFAULT_MEMORY_MB}). Given, a chunk that alone needs more is warned of",
    )


@contextlib.contextmanager
def _memory_budget(args: argparse.Namespace) -> Iterator[float]:
    """The budget in MB of ``--memory-mb``; the default one goes over quietly where one chunk needs more."""
    from lincae.models.memory import OverBudgetWarning

    with warnings.catch_warnings():
        if args.memory_mb is None:
            warnings.simplefilter("ignore", OverBudgetWarning)
        yield DEFAULT_MEMORY_MB if args.memory_mb is None else args.memory_mb


def _seconds(lo: float, hi: float) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in ``(lo, hi]`` (no NaN, no infinity)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and lo < value <= hi):
            raise argparse.ArgumentTypeError(f"must be a number > {_num(lo)} and <= {_num(hi)}, got {text!r}")
        return value

    return parse


def _channels(text: str) -> tuple[int, ...]:
    """``--outputs``: comma-separated device channels counted from 1 (``1,2``)."""
    parse = _int_in(1, 1024)
    try:
        return tuple(parse(c) for c in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be channel numbers in [1, 1024] like '1,2', got {text!r}") from None


#: Suffixes of model files (``lincae info --model weights.pth``): such a word names a file.
MODEL_FILE_SUFFIXES = (".safetensors", ".pth", ".pt")


def model_name(text: str) -> str:
    """``text`` as the command line names a model: a bare word is a shipped or official model, whatever
    the current folder holds; a folder or file is named by its path (with a ``/``, as for presets:
    :func:`lincae.config.names_a_file`) or a model file's suffix (``weights.pth``). Returns ``text``;
    a bare word that names no shipped or official model is refused (``ModelNotFoundError``)."""
    from lincae.models.registry import DEFAULT_MODEL_ALIAS, OFFICIAL_HASHES, ModelNotFoundError, shipped_models

    if names_a_file(text) or text.lower().endswith(MODEL_FILE_SUFFIXES) or text.startswith("~"):
        return text
    known = sorted({*OFFICIAL_HASHES, *shipped_models()})
    if text in known or text == DEFAULT_MODEL_ALIAS:  # (the registry says when no default is shipped)
        return text
    raise ModelNotFoundError(
        f"unknown model {text!r}: not a known id ({', '.join(known)}); a model folder or file is named by "
        f"its path (./{text})"
    )


def _load_named_model(text: str, **kwargs: Any) -> LatentAutoencoder:
    """:func:`lincae.models.base.load_model` of a model named on the command line (:func:`model_name`)."""
    from lincae.models.base import load_model

    return load_model(model_name(text), **kwargs)


class _Parser(argparse.ArgumentParser):
    """Errors in one line (``lincae render: error: argument --rate: ...``) pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def cmd_info(args: argparse.Namespace) -> int:
    """Print what a model is: its size, rates and latent geometry."""
    from lincae.models.autoencoder import num_parameters

    model = _load_named_model(args.model)
    print(f"model           {model.name}")
    print(f"parameters      {num_parameters(model) / 1e6:.2f} M (encoder {num_parameters(model.encoder) / 1e6:.2f} M)")
    print(f"sample rate     {model.sample_rate} Hz")
    print(
        f"latent          {model.latent_channels} channels, one frame per {model.hop_length} samples "
        f"({model.sample_rate / model.hop_length:.1f} frames/s)"
    )
    print(f"scale factor    {model.scale_factor:g}")
    print(f"decode steps    {model.diffusion_steps}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Render the Lin-CAE demonstrations (reconstruction, latent sum, volume, separation) into a web page."""
    from lincae.demo import run_demo

    index = run_demo(
        Path(args.out),
        model_id=model_name(args.model) if args.model else None,
        seconds=args.seconds,
        seed=args.seed,
        report=lambda line: print(f"demo: {line}", file=sys.stderr, flush=True),
    )
    print(f"open {index}")
    return 0


def cmd_dataset_synth(args: argparse.Namespace) -> int:
    """Render procedural multi-instrument music with separate stems."""
    from lincae.data.synth import SynthConfig, write_synth_dataset

    def report(done: int, total: int) -> None:
        print(f"\rrendered {done}/{total} pieces", end="", file=sys.stderr, flush=True)

    pieces = write_synth_dataset(
        args.out,
        hours=args.hours,
        seed=args.seed,
        piece_seconds=args.piece_seconds,
        config=SynthConfig(soundfont=args.soundfont),
        workers=args.workers,
        progress=report,
    )
    print(f"\nwrote {len(pieces)} pieces to {args.out}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume) a model; one process per device under torchrun."""
    import time

    import torch

    from lincae.config import parse_yaml, read_config_text
    from lincae.training import frame_trainer
    from lincae.training.config import TrainConfig
    from lincae.training.data import FolderCrops
    from lincae.training.trainer import Trainer, TrainingDidNotLearn, TrainingDiverged, init_distributed

    if frame_trainer.is_frame_config(parse_yaml(read_config_text(args.config), args.config)):
        final = frame_trainer.train(
            args.config,
            args.data,
            args.out,
            val_data=args.val_data,
            resume=args.resume,
            until=args.until,
            minutes=args.minutes,
            seed=args.seed,
            threads=args.threads,
            progress=not args.no_progress,
        )
        print(f"model: {final}")
        return 0
    config = TrainConfig.from_yaml(args.config)
    if args.init_from:
        model_name(args.init_from)  # a bare word is a shipped or official model, never a folder here
    if args.seed is not None:
        config = TrainConfig.from_dict({**config.to_dict(), "seed": args.seed})
    if args.threads:
        torch.set_num_threads(args.threads)
    info = init_distributed()
    crop = config.crop_samples()
    source = FolderCrops(args.data, crop, seed=config.seed, rms_floor=config.data.rms_floor)
    # Validation clips: 2 s (at least one training crop) of held-out audio, the same every time.
    val_len = max(crop, 2 * 44100)
    val_source = FolderCrops(args.val_data or args.data, val_len, seed=config.seed, rms_floor=config.data.rms_floor)
    val = val_source.fixed(config.data.val_pieces) if info.is_main else None
    trainer = Trainer(
        config,
        args.out,
        source,
        val_audio=val,
        device=args.device,
        resume=args.resume,
        progress=not args.no_progress,
        dist_info=info,
        compile=args.compile,
        init_from=args.init_from,
    )
    try:
        deadline = time.monotonic() + 60.0 * args.minutes if args.minutes else None
        trainer.fit(until=args.until, deadline=deadline)
    except TrainingDiverged as e:
        raise ValueError(f"{e} (the last good checkpoint is {Path(args.out) / 'last.ckpt'})") from e
    except TrainingDidNotLearn as e:
        raise ValueError(str(e)) from e
    if info.is_main:
        print(f"step {trainer.step}/{config.steps}; run folder {args.out}", file=sys.stderr)
    return 0


#: Column of ``lincae eval``'s reference: 64 mel bands per 256 samples inverted by Griffin-Lim.
REFERENCE_NAME = "mel64+GL"


def cmd_eval(args: argparse.Namespace) -> int:
    """Score one or more models on held-out stems and write a side-by-side report.

    With a reference column (``mel64+GL``: reconstruction only, see :mod:`lincae.evaluation.reference`)
    and, unless ``--no-quality``, ViSQOL and the high-band figures of :mod:`lincae.evaluation.quality`.
    """
    from lincae.data.pieces import StemFolder
    from lincae.evaluation.suite import evaluate, write_report
    from lincae.models.runtime import prepare_for_inference

    quality = not args.no_quality
    if quality:  # before any work: ViSQOL is an optional package
        try:
            import visqol  # noqa: F401
        except ImportError as e:
            raise ValueError("ViSQOL needs visqol-python: pip install 'lincae[eval]', or pass --no-quality") from e
    folder = StemFolder(args.data)
    count = len(folder) if args.pieces is None else min(args.pieces, len(folder))
    pieces = [folder[i] for i in range(count)]
    real = []
    if args.real:
        from lincae.files.audiofile import find_audio_files, read_mono

        real = [{"mix": read_mono(p, 44100)} for p in find_audio_files(args.real)]
        if not real:
            raise ValueError(f"--real {args.real}: no audio files there")
    codecs: list[tuple[str, Any, bool]] = []
    for spec in args.models:
        name, _, path = spec.rpartition("=") if "=" in spec else (Path(spec).name, "", spec)
        model = _load_named_model(path, max_batch_size=args.batch)
        codecs.append((name or path, prepare_for_inference(model), True))
    if not args.no_reference:
        from lincae.evaluation.reference import MelGriffinLim

        codecs.append((REFERENCE_NAME, MelGriffinLim(), False))
    results = {}
    for name, codec, linear in codecs:
        options = {"crop_seconds": args.seconds, "seed": args.seed, "quality": quality, "properties": linear}
        scores = evaluate(codec, pieces, **options)
        if real:  # recordings without stems: reconstruction and decoder homogeneity
            on_real = evaluate(codec, real, **options)
            for key in ("reconstruction", "dec_homogeneity"):
                scores.update({f"real_{k}": v for k, v in on_real.items() if k.startswith(f"{key}/")})
        results[name] = scores
        print(f"evaluated {name} on {count} pieces and {len(real)} recordings", file=sys.stderr)
    write_report(results, args.out)
    print((Path(args.out) / "results.md").read_text())
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    """Encode an audio file into a latent file, chunk by chunk."""
    from lincae.files.atomic import check_not_input, check_writable
    from lincae.io.latent_codec import encode_to_file
    from lincae.models.runtime import prepare_for_inference

    out = Path(args.output)
    check_not_input(out, [args.input])
    check_writable(out, args.overwrite)  # before any work
    model = prepare_for_inference(_load_named_model(args.model, max_batch_size=args.batch))
    with _memory_budget(args) as memory_mb:
        header = encode_to_file(model, args.input, out, chunk_seconds=args.chunk_seconds, memory_mb=memory_mb)
    print(
        f"wrote {out}: latents {tuple(header.shape)} of {header.length / header.sample_rate:.2f} s, "
        f"{header.channels} channel(s), model {header.model}",
        file=sys.stderr,
    )
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    """Decode a latent file into audio, chunk by chunk."""
    from lincae.files.atomic import check_not_input
    from lincae.files.audiofile import check_output_path
    from lincae.io.latent_codec import decode_to_file
    from lincae.io.latents import read_header
    from lincae.models.runtime import prepare_for_inference

    check_not_input(args.output, [args.input])
    out = check_output_path(args.output, args.overwrite)
    read_header(args.input)  # a bad file is refused before the model loads
    model = prepare_for_inference(_load_named_model(args.model, max_batch_size=args.batch))
    with _memory_budget(args) as memory_mb:
        header, rate = decode_to_file(
            model,
            args.input,
            out,
            rate=args.rate,
            seed=args.seed,
            force=args.force,
            overwrite=args.overwrite,
            memory_mb=memory_mb,
        )
    print(f"wrote {out}: {header.length / header.sample_rate:.2f} s at {rate} Hz", file=sys.stderr)
    return 0


def parse_gain(text: str, names: list[str]) -> tuple[int, float, bool]:
    """``NAME=VALUE`` → (source number, gain in dB, inverted). VALUE is ``-6dB`` or a factor (``0.5``, ``-1``)."""
    name, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--gain {text!r}: expected NAME=VALUE, e.g. vocals=-6dB or 2=0.5")
    if name.isdigit() and 1 <= int(name) <= len(names):
        index = int(name)
    elif name in names:
        index = names.index(name) + 1
    else:
        raise ValueError(f"--gain {text!r}: no source {name!r}; sources are {', '.join(names)} (or 1..{len(names)})")
    v = value.strip().lower()
    try:
        number = float(v[:-2] if v.endswith("db") else v)
    except ValueError:
        raise ValueError(f"--gain {text!r}: {value!r} is neither a dB value (-6dB) nor a factor (0.5)") from None
    if not math.isfinite(number):
        raise ValueError(f"--gain {text!r}: {value!r} is not a finite number")
    if v.endswith("db"):
        return index, number, False
    factor = number
    db = 20 * math.log10(abs(factor)) if factor != 0 else -60.0
    return index, max(-60.0, db), factor < 0


def cmd_render(args: argparse.Namespace) -> int:
    """Mix files in latent space (gains, inversion, presets) and write the result through effect chains."""
    from lincae.engine.effects import parse_chain_arg
    from lincae.files.atomic import check_not_input
    from lincae.presets import load_preset
    from lincae.rig import Rig, file_sources, parse_pre_args

    names = [Path(p).stem for p in args.inputs]
    if not args.inputs:
        raise ValueError("render needs at least one input file")
    check_not_input(args.output, args.inputs)
    values: dict[str, float] = {}
    for text in args.gain:
        index, db, inverted = parse_gain(text, names)
        values[f"source.{index}.gain_db"] = db
        values[f"source.{index}.invert"] = 1.0 if inverted else 0.0
    pre = parse_pre_args(args.pre)
    post = parse_chain_arg(args.post) if args.post else None
    preset = load_preset(args.preset) if args.preset else None
    if preset is not None and preset.num_sources != len(args.inputs):
        raise ValueError(
            f"preset {args.preset} is for {preset.num_sources} source(s); got {len(args.inputs)} input file(s)"
        )
    layout = file_sources(args.inputs)
    model_id = args.model or (preset.model if preset else None) or "default"
    model = _load_named_model(model_id, max_batch_size=8)
    rig = Rig(model, layout, preset, pre=pre, post=post, parameters=values, model_id=model_id)
    bar = _progress_bar(args.no_progress)
    try:
        result = rig.render(
            args.inputs,
            args.output,
            output_rate=args.rate,
            overwrite=args.overwrite,
            progress=bar.update if bar else None,
        )
    finally:
        if bar:
            bar.close()
    for err in result.plugin_errors:
        print(f"warning: plugin bypassed after an error: {err}", file=sys.stderr)
    if result.notice:
        print(f"note: {result.notice}", file=sys.stderr)
    print(
        f"wrote {result.output}: {result.seconds:.2f} s, {result.channels} channel(s) at {result.sample_rate} Hz",
        file=sys.stderr,
    )
    return 0


class _Bar:
    """Render progress in seconds of audio and its speed as a multiple of real time.

    The bar appears with the first progress report, so a render that fails its checks prints none.
    """

    def __init__(self, sample_rate: int = 44100) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bar: Any = None
        self._rate = sample_rate

    def update(self, done: int, total: int) -> None:
        if self._bar is None:
            fmt = "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s of audio [{elapsed}<{remaining}{postfix}]"
            self._bar = self._tqdm(total=round(total / self._rate, 1), desc="render", bar_format=fmt)
        self._bar.n = round(done / self._rate, 1)
        elapsed = self._bar.format_dict["elapsed"]
        if elapsed > 0:
            self._bar.set_postfix_str(f"{done / self._rate / elapsed:.1f}× real time", refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _progress_bar(disabled: bool) -> _Bar | None:
    if disabled:
        return None
    try:
        return _Bar()
    except ImportError:
        return None


def cmd_export(args: argparse.Namespace) -> int:
    """Export a trained model folder (e.g. runs/small/best) as a compact model, optionally the shipped default."""
    from lincae.training.export import compact_checkpoint, export_model

    if Path(args.source).suffix == ".ckpt":
        if args.name or args.default or args.float32:
            raise ValueError("--name, --default and --float32 are for model folders, not training checkpoints")
        out = compact_checkpoint(args.source, args.dest)
        print(
            f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); to resume, copy it to RUN/last.ckpt and run "
            "lincae train ... --out RUN --resume",
            file=sys.stderr,
        )
        return 0
    if not args.name:
        raise ValueError("exporting a model folder needs --name")
    out = export_model(args.source, args.dest, name=args.name, default=args.default, half=not args.float32)
    size = sum(f.stat().st_size for f in Path(out).iterdir()) / 1e6
    print(f"wrote {out} ({size:.1f} MB)", file=sys.stderr)
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from lincae_gui.app import main as gui_main
    except ImportError as e:
        raise OSError(f"the GUI needs the gui extra (pip install 'lincae[gui]'): {e}") from e
    return gui_main(args.gui_args)


def cmd_presets(args: argparse.Namespace) -> int:
    """List the shipped presets with what their engine settings cost (latency, worker load) and their descriptions."""
    import textwrap

    from lincae.profiles import engine_profiles

    profiles = engine_profiles(args.block)
    for p in profiles:
        print(f"{p.name}: {p.title}")
        load = f"worker load {p.worker_load:.2f}" if p.worker_load is not None else "worker load not measured"
        print(
            f"  engine latency {p.latency_ms:.0f} ms at block {args.block} (plus the device's), {load}; "
            f"windows of {p.window_ms:.0f} ms every {p.step_ms:.0f} ms"
        )
        print(textwrap.fill(p.description, width=100, initial_indent="  ", subsequent_indent="  "))
    machines = sorted({p.measured_on for p in profiles if p.measured_on})
    if machines:
        print(
            "worker load: compute time / audio time of a step (above 1 drops out) for the preset's sources, "
            "model only (effect chains add their own), one PyTorch "
            f"thread, measured with the shipped model on {'; '.join(machines)}"
        )
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    """List audio devices and MIDI input ports."""
    from lincae.io.devices import NO_AUDIO_HINT, list_audio_devices, list_midi_inputs, native_messages_hidden

    # PortAudio and RtMidi print their JACK/ALSA probing failures to stderr; show a summary instead.
    with native_messages_hidden():
        devices = list_audio_devices()
    print("audio devices:")
    for d in devices:
        print(f"  {d}")
    if not devices:
        print(f"  ({NO_AUDIO_HINT})")
    print("MIDI inputs:")
    try:
        with native_messages_hidden():
            ports = list_midi_inputs()
    except Exception as e:  # no MIDI API could start
        print(f"  (unavailable: {e})")
        ports = []
    for port in ports:
        print(f"  {port}")
    if not ports:
        print("  (none)")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    """Mix live inputs in latent space, with MIDI control and a status line; Ctrl-C stops.

    The first Ctrl-C (or SIGTERM, SIGHUP, ...) stops the session in order and further signals are
    absorbed (:class:`lincae.io.shutdown.StopRequest`); a stop that takes longer than
    :data:`~lincae.io.shutdown.STOP_SECONDS` (plus the time to encode a FLAC take) is ended by a watchdog
    that leaves the recordings valid (:class:`~lincae.io.shutdown.StopWatchdog`). A recording that fails
    (a full disk) is reported when it happens and again as the last line, and makes the exit status 2.
    """
    from lincae.io.shutdown import StopRequest

    with StopRequest() as stop:  # until armed, the first signal interrupts the start as it always did
        return _live(args, stop)


def _live(args: argparse.Namespace, stop: StopRequest) -> int:
    import time

    from lincae.engine.effects import parse_chain_arg
    from lincae.io.live import LiveConfig, parse_sources
    from lincae.io.osc import parse_osc_address
    from lincae.presets import load_preset
    from lincae.rig import Rig, parse_pre_args

    sources = parse_sources(args.sources)
    preset = load_preset(args.preset) if args.preset else None
    if preset is not None and preset.num_sources != len(sources):
        raise ValueError(f"preset {args.preset} is for {preset.num_sources} source(s), --sources gives {len(sources)}")
    pre = parse_pre_args(args.pre)
    post = parse_chain_arg(args.post) if args.post else None
    model_id = args.model or (preset.model if preset else None) or "default"
    model = _load_named_model(model_id, max_batch_size=8)
    # live: a plugin file that fails to load is bypassed and reported; the audio still runs
    rig = Rig(model, [len(c) for c in sources], preset, pre=pre, post=post, on_load_error="bypass", model_id=model_id)
    config = LiveConfig(
        input_device=_device_arg(args.input),
        output_device=_device_arg(args.output),
        source_channels=sources,
        output_channels=args.outputs,
        block=args.block,
        sample_rate=args.rate or model.sample_rate,
        backend=args.backend,
    )
    if args.record_inputs and not args.record:
        raise ValueError("--record-inputs records beside --record OUT.wav: give --record too")
    if args.record:  # before the audio starts: a file that exists or a folder that is missing ends it here
        from lincae.io.record import check_record_path, input_path

        for path in [args.record, *(input_path(args.record, i + 1) for i in range(len(sources)) if args.record_inputs)]:
            check_record_path(path, args.force)
    stop.arm()  # from here on, native clients and threads start: a signal stops them in order
    midi = None
    session = None
    started = time.monotonic()
    try:
        if args.midi and not stop.requested:
            programs = [p.strip() for p in args.programs.split(",")] if args.programs else None
            midi = rig.attach_midi(
                api=args.midi_api,
                port=args.midi,
                programs=programs,
                report=lambda line: print(f"\n{line}", file=sys.stderr),
            )
        if not stop.requested:
            session = rig.start_live(config, threads=args.threads)
        if args.record and session is not None and not stop.requested:
            for path in rig.start_recording(args.record, inputs=args.record_inputs, force=args.force):
                print(f"live: recording {path}", file=sys.stderr)
        if args.osc and session is not None and not stop.requested:
            host, port = parse_osc_address(args.osc)
            osc = rig.start_osc(host, port, report=lambda line: print(f"\n{line}", file=sys.stderr))
            print(f"live: OSC on {osc.address[0]}:{osc.address[1]} (/lincae/...)", file=sys.stderr)
    except BaseException:
        _stop_live(rig, midi, stop)
        raise
    if session is not None:
        started = time.monotonic()
        _run_live(rig, session, stop, args.duration, midi is not None)
    recorded, problems, warnings = _stop_live(rig, midi, stop)
    if session is not None:
        m = session.engine.metrics
        print(
            f"\nstopped after {time.monotonic() - started:.1f} s: windows {m.windows}, dropouts {m.dropouts}, "
            f"xruns {m.xruns}, {session.outage_summary()}, peak load {m.rtf_peak:.2f}",
            file=sys.stderr,
        )
    for path in recorded:
        print(f"recorded {path}", file=sys.stderr)
    for warning in warnings:
        print(f"live: warning: {warning}", file=sys.stderr)
    if stop.describe():
        print(f"lincae live: {stop.describe()}", file=sys.stderr)
    for problem in problems:  # a recording that failed fails the command, in the usual one-line form
        print(f"lincae live: error: {problem}", file=sys.stderr)
    return stop.exit_status(bool(problems))


def _run_live(rig: Rig, session: LiveSession, stop: StopRequest, duration: float | None, midi: bool) -> None:
    """The control loop of ``lincae live``: MIDI and OSC, the status line, until ``duration`` or a stop."""
    import time

    engine = session.engine
    print(
        f"live: {rig.num_sources} source(s), latency {engine.metrics.latency_ms:.0f} ms; Ctrl-C stops",
        file=sys.stderr,
    )
    if engine.metrics.notice:  # a standing remark: said here, once (the status line leaves it out)
        print(f"live: {engine.metrics.notice}", file=sys.stderr)
    for err in engine.metrics.plugin_errors:
        print(f"live: plugin bypassed: {err}", file=sys.stderr)
    started = time.monotonic()
    last_print = 0.0
    told: set[str] = set()
    # MIDI is read every 5 ms (a knob's delay before the engine sees it), the status twice a second
    interval = 0.005 if midi else 0.02
    while not stop.requested and (duration is None or time.monotonic() - started < duration):
        rig.poll()
        now = time.monotonic()
        if now - last_print >= 0.5:
            for problem in session.recording_problems():  # each once, on a line of its own
                if problem not in told:
                    told.add(problem)
                    print(f"\nlive: {problem}", file=sys.stderr)
            print("\r" + session.status_line()[:200].ljust(120), end="", file=sys.stderr, flush=True)
            last_print = now
        stop.wait(interval)


def _stop_live(rig: Rig, midi: MidiController | None, stop: StopRequest) -> tuple[list[Path], list[str], list[str]]:
    """Stop OSC, the recording, the audio and MIDI, in that order, under a watchdog (see :func:`cmd_live`).

    Returns the files recorded, the recordings' problems and their warnings (samples clipped in a FLAC).
    """
    from lincae.io.record import FLAC_ENCODE_SPEED
    from lincae.io.shutdown import SALVAGE_SECONDS, STOP_SECONDS, StopWatchdog

    session = rig.session
    recorders = session.recorders if session is not None else []

    def salvage() -> list[str]:
        return [rec.salvage(SALVAGE_SECONDS / (len(recorders) + 1)) for rec in recorders]

    def status(incomplete: bool) -> int:
        return stop.exit_status(incomplete or bool(session is not None and session.recording_problems()))

    encoding = sum(rec.seconds for rec in recorders if rec.flac) / FLAC_ENCODE_SPEED
    watchdog = StopWatchdog(STOP_SECONDS + encoding, salvage=salvage, status=status).start()
    try:
        rig.stop_osc()
        recorded = rig.stop_recording()
        problems = list(session.recording_errors) if session is not None else []
        warnings = list(session.recording_warnings) if session is not None else []
        rig.stop()
        if midi is not None:
            midi.close()
    finally:
        watchdog.cancel()
    return recorded, problems, warnings


def _device_arg(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def _profiles_epilog() -> str:
    """What each shipped preset's engine settings cost (read from files, nothing heavy is imported)."""
    try:
        from lincae.profiles import profiles_help

        return profiles_help()
    except Exception as e:  # a broken installation must not break --help
        return f"(engine profiles unavailable: {e})"


def _add_plugin_path(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plugin-path",
        action="append",
        default=[],
        metavar="FOLDER",
        help="a folder presets and chain files may load VST3/AU plugins from, besides the standard ones "
        "(~/.vst3, /usr/lib/vst3, /usr/local/lib/vst3), $LINCAE_PLUGIN_PATH and the settings file",
    )


def build_parser() -> argparse.ArgumentParser:
    from lincae import __version__
    from lincae.rig import LIVE_THREADS

    parser = _Parser(prog="lincae", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"lincae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="describe a model")
    p.add_argument("--model", default="default", help="model id, folder or file (default: the shipped model)")
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("demo", help="render the Lin-CAE demonstrations of a generated piece into a web page")
    p.add_argument("--out", default="demo", help="output folder")
    p.add_argument("--model", default=None, help="model id, folder or file (default: the shipped model)")
    p.add_argument("--seconds", type=_seconds(1.0, 600.0), default=8.0, help="length of the generated piece")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0)
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser(
        "export", help="export a trained model folder as a compact (fp16) model, or a checkpoint as a small one"
    )
    p.add_argument("source", help="model folder (e.g. runs/small/best) or training checkpoint (runs/small/last.ckpt)")
    p.add_argument("dest", help="output folder (e.g. src/lincae/assets/models/lincae-small) or checkpoint file")
    p.add_argument("--name", help="model name (model folders)")
    p.add_argument("--default", action="store_true", help="mark as the default model")
    p.add_argument("--float32", action="store_true", help="keep float32 weights")
    p.set_defaults(handler=cmd_export)

    p = sub.add_parser("presets", help="the shipped presets: what they do and what latency they cost")
    p.add_argument("--block", type=_int_in(0, MAX_BLOCK), default=256, help="audio block size the latency is given for")
    p.set_defaults(handler=cmd_presets)

    p = sub.add_parser("devices", help="list audio devices and MIDI input ports")
    p.set_defaults(handler=cmd_devices)

    p = sub.add_parser(
        "live",
        help="mix live inputs in latent space (MIDI control, status line; Ctrl-C stops)",
        epilog=_profiles_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--input",
        help="input device: on JACK a JACK client name (system), else a PortAudio index or name substring "
        "(default: the physical ports / the system default)",
    )
    p.add_argument("--output", help="output device, as --input")
    p.add_argument("--sources", default="1", help="input channels per source: '1,2' two mono, '1+2' one stereo")
    p.add_argument("--outputs", type=_channels, default=(1, 2), help="output channels, e.g. '1,2'")
    p.add_argument("--block", type=_int_in(0, MAX_BLOCK), default=256, help="frames per audio callback (0: the host's)")
    p.add_argument(
        "--rate",
        type=_int_in(*RATE),
        help="device sample rate in Hz (default: the model's; other rates are resampled)",
    )
    p.add_argument("--model", help="model id, folder or file (default: the preset's, else the shipped model)")
    p.add_argument("--preset", help="shipped preset name, or a preset file by its path (./mine, mine.json)")
    p.add_argument("--pre", action="append", default=[], metavar="N=CHAIN", help="chain before encoding source N")
    p.add_argument("--post", help="chain after decoding, e.g. 'reverb(room_size=0.3),brickwalllimiter'")
    _add_plugin_path(p)
    p.add_argument("--midi", help="MIDI input port name substring (picked up when it appears)")
    p.add_argument("--midi-api", choices=["jack", "alsa"], help="MIDI API (default: automatic)")
    p.add_argument(
        "--programs",
        help="presets recalled by MIDI program changes 0, 1, ... (comma-separated names or file paths; "
        "default: the shipped presets in alphabetical order)",
    )
    p.add_argument("--duration", type=_seconds(0.0, 1e9), help="stop after this many seconds")
    p.add_argument(
        "--threads",
        type=_int_in(1, MAX_THREADS),
        default=LIVE_THREADS,
        help=f"PyTorch threads for the inference worker (default {LIVE_THREADS})",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "jack", "portaudio"),
        default="auto",
        help="audio back end: a JACK client of lincae's own (devices are JACK client names, e.g. system; the "
        "session rejoins a restarted server), PortAudio, or auto (JACK when a JACK server runs)",
    )
    p.add_argument("--record", metavar="OUT.wav", help="record what the outputs play (.wav float32 or .flac 24-bit)")
    p.add_argument("--record-inputs", action="store_true", help="also record each source's input (OUT.input1.wav, ...)")
    p.add_argument("--force", action="store_true", help="let --record replace existing files")
    p.add_argument(
        "--osc",
        metavar="[HOST:]PORT",
        help="serve OSC control on UDP PORT (on 127.0.0.1 unless HOST names another interface; see the README)",
    )
    p.set_defaults(handler=cmd_live)

    p = sub.add_parser("gui", help="the performer window (PyQt6): live mixing, MIDI learn, presets, renders")
    p.add_argument("gui_args", nargs=argparse.REMAINDER, help="--preset P, --model M, --midi-api jack|alsa, --start")
    p.set_defaults(handler=cmd_gui)

    p = sub.add_parser("render", help="mix files in latent space and write the result through effect chains")
    p.add_argument("inputs", nargs="+", help="audio files, one source each (mono or stereo)")
    p.add_argument("-o", "--output", required=True, help="output file (wav, flac, ogg)")
    p.add_argument("--model", help="model id, folder or file (default: the preset's, else the shipped model)")
    p.add_argument(
        "--preset",
        help="shipped preset name, or a preset file by its path (./mine, mine.json): engine settings, parameters, "
        "chains",
    )
    p.add_argument(
        "--gain",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="latent gain of a source (file name without suffix, or number): -6dB, 0.5, or -1 to subtract",
    )
    p.add_argument(
        "--pre",
        action="append",
        default=[],
        metavar="N=CHAIN",
        help="chain before encoding source N: 'noisegate(threshold_db=-50),compressor' or a JSON file",
    )
    p.add_argument(
        "--post",
        help="chain after decoding: 'reverb(room_size=0.3),brickwalllimiter', or a chain file by its path "
        "(./tape, tape.json)",
    )
    _add_plugin_path(p)
    p.add_argument("--rate", type=_int_in(*RATE), help="output sample rate (default: the first input's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_render)

    p = sub.add_parser("encode", help="audio file → latent file (.latent, safetensors with metadata)")
    p.add_argument("input", help="audio file (wav, flac, mp3, ogg; any rate and channel count)")
    p.add_argument("-o", "--output", required=True, help="latent file to write")
    p.add_argument("--model", default="default", help="model id, folder or file (default: the shipped model)")
    p.add_argument(
        "--chunk-seconds",
        type=_seconds(0.1, 300.0),
        default=10.0,
        help="longer audio is encoded in overlapping chunks",
    )
    p.add_argument(
        "--batch", type=_int_in(1, MAX_BATCH), default=4, help="most chunks through the model at once (see --memory-mb)"
    )
    _add_memory_mb(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(handler=cmd_encode)

    p = sub.add_parser("decode", help="latent file → audio file")
    p.add_argument("input", help="latent file from `lincae encode` (or your own arithmetic on one)")
    p.add_argument("-o", "--output", required=True, help="audio file to write (wav, flac, ogg)")
    p.add_argument("--model", default="default", help="the model that made the latents")
    p.add_argument("--rate", type=_int_in(*RATE), help="output sample rate (default: the original file's)")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0, help="decoder noise seed")
    p.add_argument(
        "--batch",
        type=_int_in(1, MAX_BATCH),
        default=1,
        help="chunks whose decoder noise is drawn together (changes the audio; more hold more memory; "
        "--memory-mb decides how many go through the model at once)",
    )
    _add_memory_mb(p)
    p.add_argument("--force", action="store_true", help="decode with a model other than the one that encoded")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(handler=cmd_decode)

    p = sub.add_parser("dataset", help="make datasets")
    dsub = p.add_subparsers(dest="dataset_kind", required=True)
    q = dsub.add_parser("synth", help="procedural multi-instrument music with separate stems (GM SoundFont)")
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--hours", type=_seconds(0.0, 1000.0), default=2.0, help="total length")
    q.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0, help="same seed, same files")
    q.add_argument("--piece-seconds", type=_seconds(1.0, 600.0), default=30.0, help="length of each piece")
    q.add_argument("--workers", type=_int_in(1, 256), default=1, help="rendering processes")
    q.add_argument(
        "--soundfont",
        help="General MIDI .sf2 file to render with (default: $LINCAE_SOUNDFONT or the installed FluidR3_GM); "
        "render several datasets with different SoundFonts and seeds for timbre variety",
    )
    q.set_defaults(handler=cmd_dataset_synth)

    p = sub.add_parser("train", help="train a model (torchrun --nproc-per-node N -m lincae train ... for DDP)")
    p.add_argument("--config", required=True, help="training configuration (YAML)")
    p.add_argument("--data", required=True, help="folder of training audio")
    p.add_argument("--val-data", help="folder of held-out audio for validation (default: crops of --data)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    p.add_argument("--until", type=_int_in(1, 10**9), help="stop at this step (the schedules still span config.steps)")
    p.add_argument("--minutes", type=_seconds(0.0, 1e7), help="stop after this much training time (resume later)")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), help="override the config's seed")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--threads", type=_int_in(1, MAX_THREADS), help="CPU threads for PyTorch")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (slow first steps)")
    p.add_argument(
        "--init-from", metavar="MODEL", help="start a new run from this model's weights (same parameter shapes)"
    )
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("eval", help="the paper's metrics for one or more models, side by side")
    p.add_argument("models", nargs="+", help="model ids, folders or files; NAME=PATH to label a column")
    p.add_argument("--data", required=True, help="held-out synth dataset (folders of mix + stems)")
    p.add_argument("--out", default="eval", help="report folder (results.md, results.csv, plots)")
    p.add_argument("--real", help="a folder of held-out real recordings (scripts/real_eval_set.py makes one)")
    p.add_argument("--pieces", type=_int_in(1, 10**6), help="use only the first N pieces")
    p.add_argument("--seconds", type=_seconds(0.1, 600.0), default=3.0, help="crop of each piece")
    p.add_argument("--batch", type=_int_in(1, MAX_BATCH), default=8, help="max batch size through the model")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0, help="decoder noise seed")
    p.add_argument("--no-quality", action="store_true", help="leave out ViSQOL and the high-band figures")
    p.add_argument(
        "--no-reference", action="store_true", help="leave out the 64-band mel + Griffin-Lim reference column"
    )
    p.set_defaults(handler=cmd_eval)
    return parser


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone; if so, point it at /dev/null for exit's flush."""
    try:
        sys.stdout.flush()
        return False
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return True


#: Commands whose process runs audio callbacks beside the model.
REALTIME_COMMANDS = frozenset({"live", "gui"})


def prepare_process(command: str) -> None:
    """Process-wide settings for ``command``; call before PyTorch is imported.

    Real-time commands make idle OpenMP threads sleep (:func:`lincae.rig.prepare_realtime_process`);
    offline commands keep OpenMP's default. A value the user set is kept either way.
    """
    if command in REALTIME_COMMANDS:
        from lincae.rig import prepare_realtime_process

        prepare_realtime_process()


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Python warnings (a model folder without a known latent scale factor, ...) as one line each,
    ``lincae CMD: warning: ...``, instead of ``file:line: UserWarning: ...`` and the source line."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        print(f"lincae {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _plugin_folders(args: argparse.Namespace) -> Iterator[None]:
    """The command's ``--plugin-path`` folders (and the plugin files it trusts) for its duration only."""
    if not hasattr(args, "plugin_path"):
        yield
        return
    from lincae.engine.effects.plugin_paths import allow_plugin_folder, plugin_scope

    with plugin_scope():
        for folder in args.plugin_path:
            allow_plugin_folder(folder)
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prepare_process(args.command)  # the sub-commands import PyTorch lazily, after this
    handler: Handler = args.handler
    from lincae.files.atomic import Terminated, discard_all, restore_signals, stop_on_signals
    from lincae.io.shutdown import stop_began
    from lincae.models.runtime import keep_freed_memory

    keep_freed_memory()  # large activations reuse the process's pages instead of faulting in fresh ones
    # SIGTERM, SIGHUP, ... unwind like Ctrl-C, so writers remove their temporary files (not in the GUI,
    # where Qt's event loop owns the main thread: an exception in a slot would abort it).
    previous = stop_on_signals() if args.command not in ("gui",) else {}
    try:
        with _plugin_folders(args), _one_line_warnings(args.command):
            return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Terminated as e:
        print(f"lincae {args.command}: {e}", file=sys.stderr)
        return 128 + e.signum
    except BrokenPipeError as e:
        if not _stdout_closed():
            print(f"lincae {args.command}: error: {e}", file=sys.stderr)
            return 2
        return 141  # the reader of our output went away (``lincae presets | head``): quietly, as SIGPIPE would
    except (ValueError, OSError) as e:
        print(f"lincae {args.command}: error: {e}", file=sys.stderr)
        return 2
    finally:
        discard_all()  # whatever an interrupted writer left
        if not stop_began():  # (once a live stop began, later signals stay absorbed until the process ends)
            restore_signals(previous)


if __name__ == "__main__":
    sys.exit(main())
