"""A latent-mixing session built in one place: model, preset, sources, chains, parameters and engine.

``lincae live``, ``lincae render`` and the GUI translate their arguments and widgets into a :class:`Rig`;
it holds the effect-chain specs, builds the chains with the load-error policy, owns the parameter
registry (the mixer's parameters and the chains'), builds the latent mixer and the streaming engine,
runs a live session, records it, attaches MIDI (mappings and program changes) and OSC, renders files,
and turns its state back into a preset::

    rig = Rig(model, sources=[2], preset=load_preset("stage-reverb"), on_load_error="bypass")
    session = rig.start_live(LiveConfig(source_channels=((1, 2),)))
    rig.attach_midi(port="nanoKONTROL")                  # mappings, soft takeover, program changes
    rig.start_osc("127.0.0.1", 9000)                     # OSC control, meters to subscribers
    rig.start_recording("set.wav", inputs=True)          # the set, and each source's input
    rig.poll()                                           # 50-100 Hz from the control loop: MIDI and OSC
    ...
    rig.render(["song.wav"], "song-lincae.wav")           # the same mix offline, chains included
    rig.to_preset("my take").save("take.json")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lincae.engine.config import EngineConfig
from lincae.engine.params import ParameterRegistry, mixer_parameters
from lincae.io.midi import MidiController
from lincae.io.osc import OscControl
from lincae.presets import Preset
from lincae.programs import ProgramRecall, recall_preset

if TYPE_CHECKING:
    from lincae.engine.stream import StreamingEngine
    from lincae.io.live import LiveConfig, LiveSession
    from lincae.models.autoencoder import Autoencoder
    from lincae.render.files import RenderResult

ChainSpec = list[dict[str, Any]]

__all__ = [
    "LIVE_THREADS",
    "ChainSpec",
    "Rig",
    "file_sources",
    "offline_threads",
    "parse_pre_args",
    "prepare_realtime_process",
]

#: PyTorch threads of the live inference worker: on a small machine a second thread competes with the
#: audio callbacks for the cores (BENCHMARKS.md, the live soak), so live sessions run one by default.
LIVE_THREADS = 1


def prepare_realtime_process() -> None:
    """Make idle OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``) in a process that runs live audio
    (``lincae live``, the GUI); call it before PyTorch is imported. Threads that spin between parallel
    regions take the CPU from the audio callbacks of a small machine; offline work keeps OpenMP's default
    (a short spin), with which ``lincae render`` runs about 1.3× faster on 2 cores (BENCHMARKS.md). A
    value the user set is kept."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def offline_threads() -> int:
    """PyTorch threads for a render: one per CPU this process may run on (what ``lincae render`` gets)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def parse_pre_args(texts: Sequence[str]) -> dict[int, ChainSpec]:
    """``--pre N=CHAIN`` arguments → chain specs by source number (the command-line chain form)."""
    from lincae.engine.effects import parse_chain_arg

    out: dict[int, ChainSpec] = {}
    for text in texts:
        key, sep, chain = text.partition("=")
        if not sep or not key.isdigit():
            raise ValueError(f"--pre {text!r}: expected SOURCE_NUMBER=CHAIN, e.g. 1=noisegate(threshold_db=-50)")
        out[int(key)] = parse_chain_arg(chain)
    return out


def file_sources(paths: Sequence[str | Path]) -> list[int]:
    """Channels per source for audio files: stereo files are stereo sources, all others mono."""
    from lincae.files.audiofile import AudioReader

    layout = []
    for p in paths:
        with AudioReader(p, 44100) as r:
            layout.append(2 if r.channels == 2 else 1)
    return layout


class Rig:
    """One session's model, sources, chains, parameters and engine.

    Args:
        model: the autoencoder, or ``None`` until one is loaded (:meth:`use_model`; live sessions and
            renders need one).
        sources: channels (1 or 2) of each source.
        preset: engine settings, parameter values, MIDI mappings and chains to start from (its number of
            sources must match), or ``None``.
        engine: engine settings replacing the preset's (its ``sources`` are replaced by ``sources``).
        pre: chain specs by source number (from 1) replacing the preset's for those sources.
        post: a chain spec replacing the preset's post chain.
        parameters: values set on top of the preset's (mixer or chain parameters, by name).
        registry: an existing registry to use and extend with the chains' parameters (the GUI's, bound to
            its knobs); its values stay, and only the parameters it gains take the preset's values.
            Default: a new one, holding the preset's values.
        on_load_error: ``"raise"`` or ``"bypass"`` (live use: a plugin file that does not load becomes a
            bypassed slot that reports its error).
        model_id: how the model was named (stored by :meth:`to_preset`).
    """

    def __init__(
        self,
        model: Autoencoder | None,
        sources: Sequence[int],
        preset: Preset | None = None,
        *,
        engine: EngineConfig | None = None,
        pre: Mapping[int, ChainSpec] | None = None,
        post: ChainSpec | None = None,
        parameters: Mapping[str, float] | None = None,
        registry: ParameterRegistry | None = None,
        on_load_error: str = "raise",
        model_id: str | None = None,
    ) -> None:
        from lincae.engine.effects import build_chain, chain_parameter_specs

        n = len(sources)
        if preset is not None and preset.num_sources != n:
            raise ValueError(f"preset {preset.name or '(unnamed)'} is for {preset.num_sources} source(s), got {n}")
        self.model = model
        self.model_id = model_id if model_id is not None else (preset.model if preset else None)
        self.preset = preset
        base = engine or (preset.engine if preset is not None else EngineConfig())
        self.engine_config = EngineConfig.from_dict({**base.to_dict(), "sources": list(sources)})
        self.pre_specs: dict[int, ChainSpec] = {k: list(v) for k, v in (preset.pre if preset else {}).items()}
        for i, spec in (pre or {}).items():
            if not 1 <= i <= n:
                raise ValueError(f"pre chain for source {i}, but there are {n} source(s)")
            self.pre_specs[i] = list(spec)
        self.post_spec: ChainSpec = list(post) if post is not None else list(preset.post if preset else [])
        self.on_load_error = on_load_error
        self.pre_chains = {
            i: build_chain(spec, f"pre.{i}", on_load_error=on_load_error) for i, spec in self.pre_specs.items() if spec
        }
        self.post_chain = build_chain(self.post_spec, "post", on_load_error=on_load_error) if self.post_spec else None
        chain_specs = [s for i, b in sorted(self.pre_chains.items()) for s in chain_parameter_specs(b, f"pre.{i}")]
        if self.post_chain is not None:
            chain_specs += chain_parameter_specs(self.post_chain, "post")
        self.chain_parameters = [s.name for s in chain_specs]
        if registry is None:
            registry = ParameterRegistry([*mixer_parameters(n), *chain_specs])
            fresh = {s.name for s in registry}
        else:
            missing = [s.name for s in mixer_parameters(n) if s.name not in registry]
            if missing:
                raise ValueError(f"the registry lacks the mixer parameters of {n} source(s): {', '.join(missing)}")
            fresh = set()
            for spec in chain_specs:
                if spec.name not in registry:
                    registry.add(spec)
                    fresh.add(spec.name)
        self.registry = registry
        values = {k: v for k, v in (preset.parameters if preset else {}).items() if k in fresh}
        values.update(parameters or {})
        registry.update(values)
        self.mappings = list(preset.midi) if preset is not None else []
        self.engine: StreamingEngine | None = None
        self.session: LiveSession | None = None
        self.midi: MidiController | None = None
        self.programs: ProgramRecall | None = None
        self.osc: OscControl | None = None

    @property
    def num_sources(self) -> int:
        return self.engine_config.num_sources

    @property
    def running(self) -> bool:
        """Whether a live session runs."""
        return self.session is not None

    def use_model(self, model: Autoencoder, model_id: str | None = None) -> None:
        """Run ``model`` from the next live session or render on (``model_id``: how it is named in presets;
        default: unchanged). Refused while a live session runs."""
        if self.session is not None:
            raise ValueError("stop the live session before changing the model")
        self.model = model
        if model_id is not None:
            self.model_id = model_id

    def _model(self) -> Autoencoder:
        if self.model is None:
            raise ValueError("no model loaded")
        return self.model

    # ------------------------------------------------------------------ engines
    def build_engine(self, block: int = 0, max_block: int = 4096) -> StreamingEngine:
        """A streaming engine over a fresh latent mixer, with this rig's chains and registry."""
        from lincae.engine.cached import make_mixer
        from lincae.engine.stream import StreamingEngine

        mixer = make_mixer(self._model(), self.engine_config, self.registry)
        return StreamingEngine(mixer, block=block, max_block=max_block, pre=self.pre_chains, post=self.post_chain)

    def start_live(self, config: LiveConfig, *, threads: int = LIVE_THREADS) -> LiveSession:
        """Open the audio devices of ``config`` and run the engine live (see :class:`~lincae.io.live.LiveSession`).

        On a JACK server the block is JACK's period, whatever ``config.block`` says (the declared latency
        counts the block the engine really gets). ``threads`` sets PyTorch's thread count (process-wide;
        the inference worker takes it when it starts).
        """
        import dataclasses

        import torch

        from lincae.io.jack_stream import jack_period
        from lincae.io.live import LiveSession, resolve_backend

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._model()

        if config.source_layout != list(self.engine_config.sources):
            raise ValueError(
                f"the live inputs give sources of {config.source_layout} channel(s), the rig has "
                f"{list(self.engine_config.sources)}"
            )
        backend = resolve_backend(config.backend)
        period = jack_period() if backend == "jack" else None
        config = dataclasses.replace(config, backend=backend, block=period or config.block)
        self.stop()
        torch.set_num_threads(threads)
        self.engine = self.build_engine(block=config.block, max_block=max(config.max_block, config.block))
        session = LiveSession(self.engine, config)
        session.start()
        self.session = session
        return session

    def stop(self) -> None:
        """Stop the live session, if one runs (MIDI stays attached); a recording is finished first."""
        session, self.session = self.session, None
        if session is not None:
            session.stop()

    # ------------------------------------------------------------------ recording
    def start_recording(self, path: str | Path, *, inputs: bool = False, force: bool = False) -> list[Path]:
        """Record the live session's output into ``path`` (``.wav`` or ``.flac``, at the device rate), and
        with ``inputs`` each source's input beside it (``OUT.input1.wav``, ...). Returns the files.

        Raises ``ValueError`` (one line) when no session runs, a file exists (without ``force``), or a
        folder is not writable; see :meth:`lincae.io.live.LiveSession.start_recording`.
        """
        if self.session is None:
            raise ValueError("no live session runs: start one before recording")
        return self.session.start_recording(path, inputs=inputs, force=force)

    def stop_recording(self) -> list[Path]:
        """Finish the recording, if one runs; returns the files written."""
        return self.session.stop_recording() if self.session is not None else []

    @property
    def recording(self) -> bool:
        return self.session is not None and bool(self.session.recorders)

    # ------------------------------------------------------------------ control
    def attach_midi(
        self,
        midi: MidiController | None = None,
        *,
        api: str | None = None,
        port: str | None = None,
        programs: Sequence[str | Path] | None = None,
        report: Callable[[str], None] = lambda line: None,
    ) -> MidiController:
        """Drive the registry from MIDI: the rig's mappings, and program changes that recall presets.

        Args:
            midi: an existing controller, else one is created on ``api``. One that drives another
                registry (a rig this one replaces) is rebound to this rig's registry and mappings, its
                port kept open.
            port: an input port name substring to open (and reopen when it reappears).
            programs: presets for program changes 0, 1, ... (default: the shipped presets, alphabetical).
            report: receives one line per program change (recalled or refused).
        """
        if midi is None:
            midi = MidiController(self.registry, self.mappings, api=api)
        elif midi.registry is not self.registry:
            midi.rebind(self.registry, self.mappings)

        def reported(line: str) -> None:
            if self.programs is not None and self.programs.current is not None:
                self.preset = self.programs.current
            report(line)

        self.programs = ProgramRecall(self.registry, programs, num_sources=self.num_sources, report=reported)
        self.programs.attach(midi)
        self.midi = midi
        midi.start_client()  # before any JACK audio stream of ours runs (see JackStream)
        if port is not None:
            midi.watch(port)
        return midi

    def start_osc(
        self, host: str = "127.0.0.1", port: int = 9000, *, report: Callable[[str], None] = lambda line: None
    ) -> OscControl:
        """Serve OSC control on UDP ``host:port`` (see :mod:`lincae.io.osc` for the addresses): parameters,
        program changes (the MIDI programs, else the shipped presets) and meters to subscribers. Bind another
        interface than 127.0.0.1 only on purpose. :meth:`poll` applies what arrives. ``report`` receives
        one line per program change.
        """

        self.stop_osc()
        if self.programs is None:
            self.programs = ProgramRecall(self.registry, num_sources=self.num_sources)

        def program(number: int) -> str:
            assert self.programs is not None
            line = self.programs.recall(number)
            if self.programs.current is not None:
                self.preset = self.programs.current
            report(line)
            return line

        self.osc = OscControl(self.registry, host, port, status=self._osc_status, program=program)
        return self.osc

    def stop_osc(self) -> None:
        """Stop serving OSC, if it runs."""
        osc, self.osc = self.osc, None
        if osc is not None:
            osc.close()

    def _osc_status(self) -> list[tuple[str, list[float]]]:
        session = self.session
        if session is None:
            return []
        m = session.engine.metrics
        return [
            ("/lincae/meters", [*m.input_peak_db, m.output_peak_db]),
            ("/lincae/latency", [m.latency_ms, float(session.latency)]),
            ("/lincae/load", [m.rtf_last, m.rtf_peak]),
        ]

    def poll(self) -> None:
        """Apply what MIDI and OSC received since the last call; call it 50-100 times a second from the
        control thread (the command's loop, the GUI's timer)."""
        if self.midi is not None:
            self.midi.poll()
        if self.osc is not None:
            self.osc.poll()

    def recall(self, preset: Preset) -> int:
        """Set every parameter to ``preset``'s values (defaults where it has none) and take its MIDI mappings.

        The engine's sources, windowing and chain plugins stay as built. Returns how many of the preset's
        mappings were left out (parameters this rig lacks).
        """
        if preset.num_sources != self.num_sources:
            raise ValueError(f"preset is for {preset.num_sources} source(s), the rig has {self.num_sources}")
        left_out = recall_preset(preset, self.registry, self.midi)
        self.mappings = [m for m in preset.midi if m.parameter in self.registry]
        self.preset = preset
        return left_out

    # ------------------------------------------------------------------ files
    def render(
        self,
        inputs: Sequence[str | Path],
        output: str | Path,
        *,
        output_rate: int | None = None,
        overwrite: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> RenderResult:
        """Render ``inputs`` (one file per source) through this rig's mix and chains into ``output``.

        The render takes a snapshot of the registry's values. It runs the rig's chains (reset first), or
        fresh ones built from the same specs while a live session runs them, so the live plugins and
        their tails are untouched.
        """
        from lincae.engine.effects import build_chain
        from lincae.render.files import render_files

        layout = file_sources(inputs)
        if layout != list(self.engine_config.sources):
            raise ValueError(
                f"the files give sources of {layout} channel(s), the rig is built for "
                f"{list(self.engine_config.sources)}"
            )
        snapshot = ParameterRegistry([self.registry.spec(name) for name in self.registry.values()])
        snapshot.update(self.registry.values())
        if self.session is None:
            pre, post = self.pre_chains, self.post_chain
            for board in [*pre.values(), post]:
                if board is not None:
                    board.reset()
        else:
            pre = {i: build_chain(spec, f"pre.{i}") for i, spec in self.pre_specs.items() if spec}
            post = build_chain(self.post_spec, "post") if self.post_spec else None
        return render_files(
            self._model(),
            list(inputs),
            output,
            engine=self.engine_config,
            registry=snapshot,
            pre=pre,
            post=post,
            output_rate=output_rate,
            overwrite=overwrite,
            progress=progress,
        )

    def to_preset(self, name: str | None = None, description: str | None = None) -> Preset:
        """This rig's state as a preset: engine settings, every parameter, MIDI mappings, chains, model."""
        base = self.preset
        mappings = self.midi.mappings if self.midi is not None else self.mappings
        return Preset(
            name=name if name is not None else (base.name if base else ""),
            description=description if description is not None else (base.description if base else ""),
            engine=self.engine_config,
            parameters=dict(self.registry.values()),
            midi=list(mappings),
            pre={k: list(v) for k, v in self.pre_specs.items() if v},
            post=list(self.post_spec),
            model=self.model_id,
        )
