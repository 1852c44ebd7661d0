"""Live audio: a duplex stream around the streaming engine (JACK directly, or PortAudio).

The audio callback copies the mapped input channels into a preallocated buffer, calls the engine's
non-blocking ``push`` and ``pull``, and copies the result to the output channels; it takes no lock,
never waits, always fills its output (silence if anything goes wrong) and counts the xruns the
device reports. When the device runs at another rate than the model, a windowed-sinc resampler
(:class:`lincae.io.resample.DuplexResampler`) converts the input to the model's rate before ``push``
and the output back after ``pull``; its delay is part of the declared latency. A supervisor thread
watches the stream: when the device errors or disappears it is reported in :attr:`LiveSession.status`
and reopened with back-off, without blocking the caller; :attr:`LiveSession.device_losses` and
:attr:`LiveSession.lost_seconds` count the gaps (:meth:`LiveSession.outage_summary`).
:meth:`LiveSession.start_recording` records what the outputs play (and each source's input) through
:mod:`lincae.io.record`: the callback only copies into preallocated rings. A recording keeps time
through an outage: the first callback after the device comes back has the silence of the gap written
into every take that ran through it (:meth:`lincae.io.record.Recorder.add_silence`), so the takes stay
aligned with each other and with the clock.

Back ends (``LiveConfig.backend``): on a running JACK server the stream is a JACK client of its own
(:class:`lincae.io.jack_stream.JackStream`), which survives the server going away and comes back when
it restarts; elsewhere it is a ``sounddevice`` (PortAudio) stream.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lincae.engine.stream import StreamingEngine
from lincae.io.record import Recorder, check_record_path, input_path
from lincae.io.resample import DuplexResampler

SWITCH_INTERVAL = 0.0005
"""Seconds a Python thread may hold the GIL while another waits, during a live session (default 0.005)."""


@dataclass(frozen=True)
class LiveConfig:
    """Where live audio comes from and goes to.

    Attributes:
        input_device, output_device: sounddevice device index or name substring (``None``: default).
        source_channels: per source, the device input channels it takes (1-based), e.g. ``[[1], [2]]``
            for two mono sources or ``[[1, 2]]`` for one stereo source.
        output_channels: device output channels (1-based) that receive the engine's output channels.
        block: frames per callback (0: the host chooses; the engine then assumes ``max_block``).
        sample_rate: the device rate in Hz (``None``: the model's rate). Any other rate than the
            model's is converted in the callback (windowed sinc) and adds a few ms of latency.
        reopen_backoff: seconds between attempts to reopen a failed device (doubling, at most 8×).
        backend: ``"jack"`` (a JACK client of its own: devices are JACK client names such as ``system``),
            ``"portaudio"`` (sounddevice), or ``"auto"``: JACK when a JACK server runs and JACK-Client is
            installed, else PortAudio. Decided when the session starts.
    """

    input_device: int | str | None = None
    output_device: int | str | None = None
    source_channels: tuple[tuple[int, ...], ...] = ((1,),)
    output_channels: tuple[int, ...] = (1, 2)
    block: int = 256
    sample_rate: int | None = None
    reopen_backoff: float = 0.5
    max_block: int = 4096
    backend: str = "auto"

    def __post_init__(self) -> None:
        if not self.source_channels or any(len(c) not in (1, 2) for c in self.source_channels):
            raise ValueError(f"each source takes 1 or 2 input channels, got {self.source_channels}")
        if any(ch < 1 for c in self.source_channels for ch in c) or any(ch < 1 for ch in self.output_channels):
            raise ValueError("device channels are counted from 1")
        if not self.output_channels:
            raise ValueError("need at least one output channel")
        if self.sample_rate is not None and self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.block < 0 or self.block > self.max_block:
            raise ValueError(f"block must be 0..{self.max_block}, got {self.block}")
        if self.backend not in ("auto", "jack", "portaudio"):
            raise ValueError(f"backend must be 'auto', 'jack' or 'portaudio', got {self.backend!r}")

    @property
    def source_layout(self) -> list[int]:
        return [len(c) for c in self.source_channels]


def parse_sources(text: str) -> tuple[tuple[int, ...], ...]:
    """``"1,2"`` → two mono sources on channels 1 and 2; ``"1+2,3"`` → stereo 1+2 and mono 3."""
    try:
        sources = tuple(tuple(int(c) for c in part.split("+")) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--sources {text!r}: expected channel numbers like 1,2 or 1+2,3") from None
    if not sources:
        raise ValueError("--sources: no channels given")
    return sources


def resolve_backend(backend: str) -> str:
    """``auto`` → ``jack`` when a JACK server runs (and JACK-Client is installed), else ``portaudio``."""
    if backend != "auto":
        return backend
    from lincae.io.jack_stream import jack_available

    return "jack" if jack_available() else "portaudio"


class LiveSession:
    """Runs a :class:`StreamingEngine` on an audio device until :meth:`stop`.

    Args:
        engine: the engine; its sources must match ``config.source_layout``.
        config: devices and channel mapping.
        stream_factory: builds the ``sounddevice.Stream`` (replaceable for other back ends).
    """

    def __init__(
        self, engine: StreamingEngine, config: LiveConfig, stream_factory: Callable[..., Any] | None = None
    ) -> None:
        if engine.mixer.config.sources != config.source_layout:
            raise ValueError(
                f"engine sources {engine.mixer.config.sources} do not match the channel mapping {config.source_layout}"
            )
        self.engine = engine
        self.config = config
        self.model_rate = int(engine.mixer.sample_rate)
        self.device_rate = int(config.sample_rate or self.model_rate)
        self._factory = stream_factory
        self._in_index = [ch - 1 for chans in config.source_channels for ch in chans]
        self._out_index = [ch - 1 for ch in config.output_channels]
        self._rows = np.zeros((len(self._in_index), config.max_block), np.float32)
        self._out = np.zeros((engine.out_channels, config.max_block), np.float32)
        # Device rate ≠ model rate: convert around the engine (None: the engine sees the device's samples).
        self._resampler: DuplexResampler | None = None
        if self.device_rate != self.model_rate:
            self._resampler = DuplexResampler(
                self.device_rate, self.model_rate, len(self._in_index), engine.out_channels, config.max_block
            )
            engine_max = getattr(engine, "max_block", None)
            if engine_max is not None and engine_max < self._resampler.max_model_block:
                raise ValueError(
                    f"at {self.device_rate} Hz on the device, blocks of up to {config.max_block} frames reach the "
                    f"engine as up to {self._resampler.max_model_block} samples: give the engine max_block >= that"
                )
        self._stream: Any = None
        self._stop = threading.Event()
        self._failed = threading.Event()
        # PortAudio is not thread-safe: opening, aborting and closing streams (the supervisor, stop(),
        # abort_device()) take this lock, so that no two of them run at once.
        self._device_lock = threading.RLock()
        self._saved_switch: float | None = None  # Python's switch interval before start()
        self._supervisor: threading.Thread | None = None
        self.status = "stopped"
        self.callback_errors = 0
        self.reopens = 0
        self.device_losses = 0
        self.lost_seconds = 0.0  # the gaps that ended (see outage_seconds)
        self._lost_at: float | None = None  # when the current gap began (the supervisor's)
        self.backend = ""  # "jack" or "portaudio", once started
        self._routing_jack = False
        # Recordings fed by the callback: (recorder, first row, end row) of a source's input, or (recorder,
        # -1, -1) for the output. Replaced as a whole (an atomic assignment); the callback reads it once.
        self._taps: tuple[tuple[Recorder, int, int], ...] = ()
        self.recording_errors: list[str] = []
        self.recording_warnings: list[str] = []  # lines about takes that were finished (clipped samples)
        self._last_callback = 0.0  # time.monotonic() of the last callback
        # Set by the supervisor when the stream is lost while recording: when the audio stopped and the
        # takes that ran then; the first callback after the gap puts its silence into them.
        self._gap_from: float | None = None
        self._gap_taps: tuple[Recorder, ...] = ()

    @property
    def resampler_latency(self) -> int:
        """Device-rate samples the rate conversion adds to the latency (0 when the rates match)."""
        return self._resampler.priming if self._resampler is not None else 0

    @property
    def resample_underruns(self) -> int:
        """Output samples the rate conversion could not supply in time (zeros instead; 0 when healthy)."""
        return self._resampler.underruns if self._resampler is not None else 0

    # ------------------------------------------------------------------ the audio callback
    def _callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        try:
            now = time.monotonic()
            if self._gap_from is not None:
                self._fill_gap(now, frames)
            self._last_callback = now
            if status:
                self.engine.metrics.xruns += 1
            if frames > self.config.max_block:
                raise ValueError(f"block of {frames} frames exceeds max_block")
            rs = self._resampler
            out = self._out[:, :frames]
            if rs is None:
                rows = self._rows[:, :frames]
                for r, ch in enumerate(self._in_index):
                    rows[r] = indata[:, ch]
                self.engine.push(rows)
                self.engine.pull(out)
            else:  # device rate → model rate, the engine (as many samples out as in), → device rate
                rows = rs.input_block(frames)
                for r, ch in enumerate(self._in_index):
                    rows[r] = indata[:, ch]
                model_in = rs.to_model(rows)
                model_out = rs.model_block(model_in.shape[-1])
                self.engine.push(model_in)
                self.engine.pull(model_out)
                rs.to_device(model_out, out)
            taps = self._taps
            for recorder, lo, hi in taps:  # what is heard (lo < 0), or one source's device-rate input
                recorder.feed(out if lo < 0 else rows[lo:hi])
            last = out.shape[0] - 1
            for o in range(outdata.shape[1]):
                outdata[:, o] = out[min(o, last)]
        except Exception as e:  # never raise into the audio thread: silence, and report
            outdata.fill(0.0)
            self.callback_errors += 1
            self.engine.metrics.error = f"audio callback: {type(e).__name__}: {e}"

    def _fill_gap(self, now: float, frames: int) -> None:
        """First callback after an outage: the frames the device did not run for (the time since the last
        callback before it, less this block's) go into the takes that ran through it as silence."""
        gap_from, self._gap_from = self._gap_from, None
        if not gap_from:  # (no callback had run before the outage: nothing to align with)
            return
        lost = round((now - gap_from) * self.device_rate) - frames
        for recorder, _, _ in self._taps:
            if recorder in self._gap_taps:
                recorder.add_silence(lost)
        self._gap_taps = ()

    # ------------------------------------------------------------------ stream management
    def _open(self) -> None:
        with self._device_lock:
            self._open_locked()

    def _open_locked(self) -> None:
        cfg = self.config
        if self._resampler is not None:  # a fresh stream starts from a fresh conversion (no callback runs now)
            self._resampler.reset()
        n_in = max(self._in_index) + 1
        n_out = max(self._out_index) + 1
        if self._factory is not None or self.backend == "portaudio":
            import sounddevice as sd

            from lincae.io.devices import resolve_audio_device

            factory = self._factory or sd.Stream
            dev_in = resolve_audio_device(cfg.input_device, "input").index if cfg.input_device is not None else None
            dev_out = resolve_audio_device(cfg.output_device, "output").index if cfg.output_device is not None else None
        else:
            from functools import partial

            from lincae.io.jack_stream import JackStream

            factory = partial(JackStream, max_block=cfg.max_block, latency_frames=self.through_latency)
            dev_in, dev_out = cfg.input_device, cfg.output_device
        self._stream = factory(
            device=(dev_in, dev_out),
            samplerate=self.device_rate,
            blocksize=cfg.block,
            channels=(n_in, n_out),
            dtype="float32",
            callback=self._callback,
            finished_callback=self._failed.set,
        )
        self._stream.start()
        period = getattr(self._stream, "period", 0)
        if period and cfg.block and period != cfg.block:
            self._stream.abort()
            self._stream.close()
            self._stream = None
            raise ValueError(
                f"the JACK server runs with periods of {period} frames, the engine was built for blocks of "
                f"{cfg.block}: start with --block {period}"
            )
        self._failed.clear()
        self._declare_latency()
        self.status = "running"

    def _declare_latency(self) -> None:
        """Declare the latency in device-rate samples: the engine's (converted to the device rate), the
        rate conversion's, and the device's own input and output latency as the host reports it."""
        reported = getattr(self._stream, "latency", (0.0, 0.0))
        seconds = sum(reported) if isinstance(reported, tuple | list) else float(reported)
        device = round(seconds * self.device_rate)
        m = self.engine.metrics
        m.device_latency_samples = device
        m.latency_samples = self.through_latency + device
        m.latency_rate = self.device_rate

    @property
    def through_latency(self) -> int:
        """Input-to-output latency in device-rate samples without the device's own: the engine's declared
        latency (:attr:`StreamingEngine.latency`, converted to the device rate) and the rate conversion's."""
        rs = self._resampler
        return rs.delay(self.engine.latency) if rs is not None else self.engine.latency

    @property
    def port_names(self) -> tuple[list[str], list[str]]:
        """The JACK ports of the open stream (inputs, outputs), with the JACK back end; else empty."""
        return getattr(self._stream, "port_names", ([], []))

    @property
    def latency(self) -> int:
        """Declared input-to-output latency in device-rate samples: the engine's, the rate conversion's
        (:attr:`resampler_latency`, when the device rate differs from the model's) and the device's."""
        return self.engine.metrics.latency_samples

    def _close(self) -> None:
        with self._device_lock:
            stream, self._stream = self._stream, None
            if stream is not None:
                try:
                    stream.abort(ignore_errors=True)
                    stream.close(ignore_errors=True)
                except Exception:
                    pass

    def abort_device(self) -> None:
        """Stop the stream as a failing device would; the supervisor reports it and reopens the device.

        For a "reset audio" action, and for tests of the recovery path.
        """
        with self._device_lock:
            if self._stream is not None:
                self._stream.abort(ignore_errors=True)

    @property
    def outage_seconds(self) -> float:
        """Seconds without audio because the device (or the JACK server) was gone, the current gap included."""
        lost_at = self._lost_at
        return self.lost_seconds + (time.monotonic() - lost_at if lost_at is not None else 0.0)

    def outage_summary(self) -> str:
        """``outages N (S s lost)``: how often the device went away and how long the audio stopped."""
        return f"outages {self.device_losses} ({self.outage_seconds:.1f} s lost)"

    def _supervise(self) -> None:
        delay = self.config.reopen_backoff
        while not self._stop.is_set():
            self._failed.wait(0.25)
            if self._stop.is_set():
                break
            stream = self._stream
            broken = stream is None or self._failed.is_set() or not getattr(stream, "active", False)
            if not broken:
                delay = self.config.reopen_backoff
                continue
            if self._lost_at is None:
                self._lost_at = time.monotonic()
                self.device_losses += 1
            self._close()
            if self._gap_from is None and self._taps:  # no callback runs now: the last one is the gap's start
                self._gap_taps = tuple(recorder for recorder, _, _ in self._taps)
                self._gap_from = self._last_callback
            self.status = f"device lost; reopening in {delay:.1f} s"
            if self._stop.wait(delay):
                break
            try:
                self._open()
                self.reopens += 1
                self.lost_seconds += time.monotonic() - self._lost_at
                self._lost_at = None
            except Exception as e:
                self.status = f"device unavailable ({type(e).__name__}: {e}); retrying"
                delay = min(delay * 2, self.config.reopen_backoff * 8)

    def start(self) -> None:
        """Open the device, start the worker and the supervisor. Raises if the device cannot be opened.

        While the session runs, Python's thread switch interval is lowered to :data:`SWITCH_INTERVAL`: the
        audio callback needs the GIL back within a fraction of a block, and the default 5 ms is about a
        whole 256-frame block at 44.1 kHz (JACK then misses its deadline). The objects alive at start are
        also frozen out of the garbage collector (:func:`gc.freeze`): a full collection holds the GIL for
        as long as it takes to scan every object, tens of milliseconds in a process holding a model, Qt
        and the like, and the callback would wait that long. Both are restored by :meth:`stop`.
        """
        self.backend = resolve_backend(self.config.backend) if self._factory is None else "portaudio"
        if self._saved_switch is None:
            self._saved_switch = sys.getswitchinterval()
            sys.setswitchinterval(min(self._saved_switch, SWITCH_INTERVAL))
            gc.collect()
            gc.freeze()
        self.engine.start()
        self._route_jack(self.backend == "jack")
        try:
            self._open()
        except Exception as e:
            self.engine.stop()
            self._route_jack(False)
            self._restore_interpreter()
            if isinstance(e, (ValueError, OSError)):
                raise
            # PortAudio's errors (an unsupported rate, block size or channel count) are not OSErrors
            raise OSError(
                f"cannot open the audio device at {self.device_rate} Hz, block {self.config.block}: {e}"
                " (choose the device's rate with --rate, or another block size)"
            ) from e
        self._stop.clear()
        self._supervisor = threading.Thread(target=self._supervise, name="lincae-audio-supervisor", daemon=True)
        self._supervisor.start()

    # ------------------------------------------------------------------ recording
    def start_recording(self, path: str | Path, *, inputs: bool = False, force: bool = False) -> list[Path]:
        """Record what the outputs play (the engine's output channels at the device rate) into ``path``
        (``.wav``: float32; ``.flac``: 24-bit, encoded at stop), and with ``inputs`` each source's input
        into ``OUT.input1.wav``, ... (see :mod:`lincae.io.record`). Every file is checked before any starts;
        an existing one is only replaced with ``force``. Returns the files being written.
        """
        if self._taps:
            raise ValueError(f"already recording to {self._taps[0][0].path}; stop that recording first")
        targets: list[tuple[Path, int, int]] = [(Path(path), -1, -1)]
        if inputs:
            row = 0
            for i, chans in enumerate(self.config.source_channels, start=1):
                targets.append((input_path(path, i), row, row + len(chans)))
                row += len(chans)
        for p, _, _ in targets:
            check_record_path(p, force)
        started: list[tuple[Recorder, int, int]] = []
        try:
            for p, lo, hi in targets:
                channels = self.engine.out_channels if lo < 0 else hi - lo
                rec = Recorder(p, self.device_rate, channels, max_block=self.config.max_block, force=force)
                started.append((rec, lo, hi))
        except BaseException:
            for rec, _, _ in started:
                rec.stop()
                rec.wav_path.unlink(missing_ok=True)
            raise
        self.recording_errors = []
        self.recording_warnings = []
        self._taps = tuple(started)
        return [rec.path for rec, _, _ in started]

    def stop_recording(self) -> list[Path]:
        """Stop recording and finish the files; returns those finished (failures go to
        :attr:`recording_errors`, remarks such as samples clipped in a FLAC take to
        :attr:`recording_warnings`)."""
        taps, self._taps = self._taps, ()
        done = []
        for rec, _, _ in taps:
            out = rec.stop()
            if out is not None:
                done.append(out)
            if rec.error and rec.error not in self.recording_errors:
                self.recording_errors.append(rec.error)
            note = rec.clip_note()
            if note and note not in self.recording_warnings:
                self.recording_warnings.append(note)
        return done

    @property
    def recorders(self) -> list[Recorder]:
        """The recordings running now (the output's first)."""
        return [rec for rec, _, _ in self._taps]

    def recording_problems(self) -> list[str]:
        """One line per recording that stopped early or could not be finished (a full disk, ...)."""
        return [r.error for r in self.recorders if r.error] + self.recording_errors

    def _recording_status(self) -> str:
        recs = self.recorders
        errors = self.recording_problems()
        if errors:
            return f" | {errors[-1]}"
        if not recs:
            return ""
        lost = sum(r.lost for r in recs)
        clipped = sum(r.clipped for r in recs if r.flac)
        return (
            f" | rec {recs[0].seconds:.0f} s"
            + (f" ({lost} samples lost: the disk is slow)" if lost else "")
            + (f" ({clipped} samples above 0 dBFS, clipped in the FLAC)" if clipped else "")
        )

    def stop(self) -> None:
        self.stop_recording()
        self._stop.set()
        self._failed.set()
        if self._supervisor is not None:
            self._supervisor.join(5.0)
            self._supervisor = None
        self._close()
        self._route_jack(False)
        self.engine.stop()
        self._restore_interpreter()
        self.status = "stopped"

    def _route_jack(self, on: bool) -> None:
        """libjack's messages to the logger while this session runs on JACK (see ``route_jack_messages``)."""
        if on == self._routing_jack:
            return
        from lincae.io.jack_stream import route_jack_messages

        route_jack_messages(on)
        self._routing_jack = on

    def _restore_interpreter(self) -> None:
        """Undo :meth:`start`'s switch interval and garbage-collector freeze."""
        if self._saved_switch is not None:
            sys.setswitchinterval(self._saved_switch)
            self._saved_switch = None
            gc.unfreeze()

    def __enter__(self) -> LiveSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ reporting
    def status_line(self, source_names: Sequence[str] | None = None) -> str:
        """One line for a terminal: latency, worker load, dropouts, xruns, levels, what went wrong.

        The engine's standing remark (``metrics.notice``: a stream that runs in windows) is not part of
        it: it does not change while the session runs, so it is said once, when the session starts."""
        m = self.engine.metrics
        names = source_names or [str(i + 1) for i in range(len(m.input_peak_db))]
        levels = " ".join(f"{n}:{_fmt_db(v)}" for n, v in zip(names, m.input_peak_db, strict=False))
        extra = f" | {self.status}" if self.status != "running" else ""
        err = f" | {m.error}" if m.error else ""
        if m.plugin_errors:
            err += f" | {len(m.plugin_errors)} plugin(s) bypassed: {m.plugin_errors[-1]}"
        if self.resample_underruns:
            err += f" | resampler short by {self.resample_underruns} samples"
        err += self._recording_status()
        return (
            f"latency {m.latency_ms:.0f} ms | load {m.rtf_last:.2f} (peak {m.rtf_peak:.2f}) | "
            f"dropouts {m.dropouts} | xruns {m.xruns} | {self.outage_summary()} | in {levels} | "
            f"out {_fmt_db(m.output_peak_db)}{extra}{err}"
        )


def _fmt_db(v: float) -> str:
    return "-inf" if v <= -120 else f"{v:.1f}dB"


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
