"""The PyQt6 GUI (``gui/lincae_gui``), offscreen with pytest-qt.

Run: ``QT_QPA_PLATFORM=offscreen PYTHONPATH=src:gui python -m pytest tests/test_gui.py -q``.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6.QtWidgets", reason="the gui extra (PyQt6) is not installed")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed")
_GUI = Path(__file__).resolve().parents[1] / "gui"
if str(_GUI) not in sys.path:
    sys.path.insert(0, str(_GUI))

from conftest import make_tiny_model  # noqa: E402
from lincae_gui.main_window import MainWindow  # noqa: E402
from lincae_gui.render_dialog import RenderDialog  # noqa: E402
from lincae_gui.widgets import ParamKnob, ParamToggle  # noqa: E402
from PyQt6.QtCore import QSettings  # noqa: E402
from PyQt6.QtWidgets import QWidget  # noqa: E402

from lincae.engine.config import EngineConfig  # noqa: E402
from lincae.files.audiofile import read_audio, write_audio  # noqa: E402
from lincae.presets import Preset  # noqa: E402

pytest_plugins = ["jackd_fixture"]

REPO = Path(__file__).resolve().parents[1]
# Engine settings that fit the tiny test model (hop 32) and stay far below real time on a small machine.
ENGINE = dict(window_frames=24, step_frames=16, lookahead_frames=2, crossfade=512, seed=3, compute_budget=3.0)


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "lincae-gui.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings: QSettings):  # type: ignore[no-untyped-def]
    w = MainWindow(settings, engine_config=EngineConfig(sources=[1], **ENGINE), popups=False)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.shutdown()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny-model")
    make_tiny_model().save_pretrained(d)
    return d


def test_turning_a_knob_and_clicking_a_button_write_the_registry(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    knob = window.controls["source.1.gain_db"]
    assert isinstance(knob, ParamKnob)
    knob.set_value(-6.0)
    assert window.registry.get("source.1.gain_db") == -6.0
    assert knob.readout.text() == "-6.0 dB"
    knob.dial.setValue(knob.dial.maximum())  # as a mouse drag or the arrow keys would
    assert window.registry.get("source.1.gain_db") == 12.0
    knob.dial.setValue(knob.dial.minimum())
    assert window.registry.get("source.1.gain_db") == -60.0
    assert knob.readout.text() == "-inf dB"
    window.controls["mix.dry_wet"].set_value(25.0)
    assert window.registry.get("mix.dry_wet") == 25.0
    mute = window.controls["source.1.mute"]
    assert isinstance(mute, ParamToggle)
    from PyQt6.QtCore import Qt

    qtbot.mouseClick(mute.button, Qt.MouseButton.LeftButton)
    assert window.registry.get("source.1.mute") == 1.0
    # every control carries a tooltip from its ParameterSpec description
    for name, control in window.controls.items():
        assert window.registry.spec(name).description in control.toolTip()


def test_window_fits_a_1366x768_screen_and_has_shortcuts(window: MainWindow) -> None:
    hint = window.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 740, hint
    window.sources_box.setValue(4)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 740, hint
    from PyQt6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QDial, QLineEdit

    kinds = (QAbstractButton, QDial, QAbstractSpinBox, QComboBox, QLineEdit)
    untipped = [
        w.objectName() or w.accessibleName() or type(w).__name__
        for w in window.findChildren(QWidget)
        if isinstance(w, kinds)
        and not w.objectName().startswith("qt_")  # Qt's own helpers
        and not isinstance(w.parent(), QAbstractSpinBox)
        and not w.toolTip()
    ]
    assert not untipped, untipped
    shortcuts = {a.text(): a.shortcut().toString() for a in window.actions()}
    assert shortcuts["&Start"] == "F5" and shortcuts["S&top"] == "Shift+F5"
    assert shortcuts["&Open preset…"] == "Ctrl+O" and shortcuts["&Save preset"] == "Ctrl+S"
    assert shortcuts["Save preset &as…"] == "Ctrl+Shift+S"


def test_registry_changes_made_elsewhere_update_the_widgets(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    window.registry.set("master.gain_db", -12.0)
    knob = window.controls["master.gain_db"]
    assert knob.value() == -12.0 and knob.readout.text() == "-12.0 dB"
    # from another thread (as a MIDI or control thread would): marshalled to the GUI thread by a signal
    t = threading.Thread(target=lambda: window.registry.update({"source.1.solo": 1.0, "mix.dry_wet": 40.0}))
    t.start()
    t.join()
    qtbot.waitUntil(lambda: window.controls["source.1.solo"].value() == 1.0, timeout=2000)
    qtbot.waitUntil(lambda: window.controls["mix.dry_wet"].value() == 40.0, timeout=2000)
    assert window.controls["source.1.solo"].button.isChecked()


def test_midi_learn_binds_a_cc_from_the_midi_input_path_and_the_control_shows_it(window: MainWindow) -> None:
    knob = window.controls["source.1.gain_db"]
    knob.set_value(-6.0)
    menu = knob.context_menu()  # right-click → "MIDI learn"
    learn = next(a for a in menu.actions() if a.text() == "MIDI learn")
    learn.trigger()
    assert window.midi.learning == "source.1.gain_db"
    assert knob.cc_label.text() == "learning…"
    assert window.midi.handle_message([0xB0, 21, 10])  # what rtmidi delivers for CC 21 on channel 1
    window.poll_midi()
    assert window.midi.learning is None
    assert [(m.parameter, m.cc) for m in window.midi.mappings] == [("source.1.gain_db", 21)]
    assert knob.cc_label.text() == "CC 21 ch 1"
    assert "MIDI: CC 21 ch 1" in knob.toolTip()
    # soft takeover (from the controller): the knob at position 10 is far below -6 dB and does not jump it ...
    window.midi.handle_message([0xB0, 21, 20])
    window.poll_midi()
    assert window.registry.get("source.1.gain_db") == -6.0
    # ... until it crosses the current value; then it drives the parameter, and the GUI follows.
    window.midi.handle_message([0xB0, 21, 127])
    window.poll_midi()
    assert window.registry.get("source.1.gain_db") == 12.0
    assert knob.value() == 12.0 and knob.readout.text() == "+12.0 dB"
    # toggles learn too; the button shows its CC
    window.toggle_learn("source.1.mute")
    window.midi.handle_message([0xB0, 64, 0])
    window.poll_midi()
    mute = window.controls["source.1.mute"]
    assert mute.button.text() == "Mute CC64" and "MIDI: CC 64 ch 1" in mute.button.toolTip()
    # forget
    window.forget_mapping("source.1.gain_db")
    assert knob.cc_label.text().strip() == ""


def test_preset_save_and_load_restore_every_control(window: MainWindow, tmp_path: Path) -> None:
    window.sources_box.setValue(2)
    assert set(window.controls) == {
        *(f"source.{i}.{p}" for i in (1, 2) for p in ("gain_db", "invert", "mute", "solo")),
        "master.gain_db",
        "mix.dry_wet",
    }
    chosen = {
        "source.1.gain_db": -9.0,
        "source.1.invert": 1.0,
        "source.1.mute": 0.0,
        "source.1.solo": 1.0,
        "source.2.gain_db": 3.0,
        "source.2.invert": 0.0,
        "source.2.mute": 1.0,
        "source.2.solo": 0.0,
        "master.gain_db": -4.5,
        "mix.dry_wet": 70.0,
    }
    for name, value in chosen.items():
        window.controls[name].set_value(value)
    window.toggle_learn("master.gain_db")
    window.midi.handle_message([0xB0, 7, 0])
    window.poll_midi()
    path = tmp_path / "mine.json"
    assert window.save_preset_as(path), window.last_error
    assert window.windowTitle() == "lincae — mine (mine.json)"

    for name in chosen:  # scramble everything, forget the mapping
        spec = window.registry.spec(name)
        window.controls[name].set_value(spec.maximum if spec.toggle else spec.minimum)
    window.forget_all()
    assert window.load_preset(path), window.last_error
    for name, value in chosen.items():
        assert window.registry.get(name) == pytest.approx(value, abs=1e-9), name
        assert window.controls[name].value() == pytest.approx(value, abs=1e-9), name
    assert window.controls["master.gain_db"].cc_label.text() == "CC 7 ch 1"
    assert window.recent_presets()[0] == str(path.resolve())
    assert window.recent_menu.actions()[0].text().endswith("mine.json")


def test_changing_the_number_of_sources_leaves_one_master_and_one_dry_wet_knob(window: MainWindow) -> None:
    """The master section is rebuilt with the strips; the old knobs leave it at once (no overlapping pair)."""
    for n in (2, 3, 1):
        window.sources_box.setValue(n)
        knobs = window.master_box.findChildren(ParamKnob)
        assert sorted(k.name for k in knobs) == ["master.gain_db", "mix.dry_wet"], n
        assert len(window.strip_holder.findChildren(ParamKnob)) == n


def test_midi_program_change_loads_the_shipped_preset_of_that_number(window: MainWindow) -> None:
    """Program changes go through the same ProgramRecall as ``lincae live``: values and mappings, same sources."""
    from lincae.presets import list_presets
    from lincae.programs import ProgramRecall

    assert isinstance(window.midi.on_program, ProgramRecall)
    program = list_presets().index("half-volume")
    window.midi.handle_message([0xC0, program])  # program change on channel 1, as rtmidi delivers it
    window.poll_midi()
    assert window.preset is not None and window.preset.name == "Half volume"
    assert window.controls["master.gain_db"].value() == pytest.approx(-6.0)
    window.midi.handle_message([0xC0, 120])
    window.poll_midi()
    assert window.preset.name == "Half volume"  # no preset 120: nothing changes
    assert "no preset" in window.statusBar().currentMessage()
    window.midi.handle_message([0xC0, list_presets().index("two-inputs")])  # for 2 sources: refused, as live
    window.poll_midi()
    assert window.preset.name == "Half volume" and window.num_sources == 1
    assert "is for 2 source(s)" in window.statusBar().currentMessage()


def test_a_shipped_preset_name_is_not_a_file_in_the_current_folder(
    window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--preset half-volume`` (and the Shipped menu) load the shipped preset, not ``./half-volume``; and
    saving then asks where, instead of writing over that file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "half-volume").write_text("not a preset")
    assert window.load_preset("half-volume"), window.last_error
    assert window.registry.get("master.gain_db") == -6.0
    assert window.preset_path is None
    assert (tmp_path / "half-volume").read_text() == "not a preset"


def test_bad_preset_and_failed_model_load_show_messages_without_crashing(
    window: MainWindow, qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "lincae.preset", "schema_version": 1, "engine": {"step_frames": 0}}')
    assert not window.load_preset(bad)
    assert "Cannot load preset" in window.last_error and "engine.step_frames" in window.last_error
    assert not window.load_preset(tmp_path / "missing.json")
    with qtbot.waitSignal(window.error_shown, timeout=20000) as blocker:
        window.load_model(str(tmp_path / "no-such-model"))
    assert blocker.args[0].startswith("Model load failed")
    assert "Traceback" not in window.last_error
    window.start()  # no devices / model: a message, no exception
    qtbot.waitUntil(lambda: window._loader is None, timeout=20000)
    assert window.session is None


def test_window_remembers_geometry_devices_and_recent_presets(qtbot, settings: QSettings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = MainWindow(settings, popups=False)
    qtbot.addWidget(w)
    w.resize(700, 500)
    w.block_combo.setCurrentIndex(w.block_combo.findData(512))
    w.rate_combo.setCurrentIndex(w.rate_combo.findData(48000))
    w.select_device(w.input_combo, "my-interface")
    w.model_edit.setText("/models/x")
    w.save_preset_as(tmp_path / "p.json")
    w.shutdown()
    w2 = MainWindow(settings, popups=False)
    qtbot.addWidget(w2)
    assert w2.block_combo.currentData() == 512 and w2.rate_combo.currentData() == 48000
    assert w2.input_combo.currentData() == "my-interface"
    assert "not found" in w2.input_combo.currentText()
    assert w2.model_edit.text() == "/models/x"
    assert (w2.width(), w2.height()) == (700, 500)
    assert w2.recent_presets() == [str((tmp_path / "p.json").resolve())]
    w2.shutdown()


def test_render_dialog_renders_a_file_on_a_worker_thread(qtbot, tmp_path: Path, tiny_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    t = np.arange(22050) / 44100
    src = tmp_path / "in.wav"
    write_audio(src, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None], 44100)
    dialog = RenderDialog(
        model_id=str(tiny_model_dir),  # loaded on the worker thread
        preset=Preset(engine=EngineConfig(**ENGINE), parameters={"source.1.gain_db": -3.0, "mix.dry_wet": 100.0}),
    )
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.add_inputs([src])
    out = tmp_path / "out.wav"
    dialog.output_edit.setText(str(out))
    dialog.post_edit.setText("reverb(room_size=0.3)")
    seen: list[int] = []
    dialog.progress.valueChanged.connect(seen.append)
    with qtbot.waitSignal(dialog.finished_render, timeout=60000) as blocker:
        assert dialog.start_render()
        assert not dialog.render_button.isEnabled()  # the GUI thread is free while the worker renders
    assert blocker.args[0] == str(out), dialog.error
    assert out.is_file() and out.stat().st_size > 1000
    assert dialog.progress.value() == 1000 and seen
    assert dialog.message.text().startswith("Wrote")
    # a bad chain and an existing output are readable messages
    dialog.post_edit.setText("nosuchplugin(x=1)")
    assert not dialog.start_render()
    assert dialog.message.text().startswith("⚠ Post chain")
    dialog.post_edit.setText("")
    with qtbot.waitSignal(dialog.finished_render, timeout=60000) as blocker:
        dialog.start_render()
    assert blocker.args[0] == "" and "exists" in dialog.error


def test_starting_on_a_missing_device_is_a_readable_error(window: MainWindow) -> None:
    window.set_model(make_tiny_model(), "tiny")
    window.select_device(window.input_combo, "no-such-device-xyz")
    window.start()
    assert window.session is None
    assert window.last_error.startswith("Cannot start audio: no audio input device matches 'no-such-device-xyz'")
    assert "Traceback" not in window.last_error
    assert window.start_button.isEnabled() and not window.stop_button.isEnabled()


def test_render_dialog_opens_from_the_window_with_its_settings(window: MainWindow) -> None:
    window.controls["master.gain_db"].set_value(-5.0)
    window.act_render.trigger()  # Ctrl+R
    dialogs = [w for w in window.findChildren(RenderDialog) if w.isVisible()]
    assert len(dialogs) == 1
    assert dialogs[0].preset.parameters["master.gain_db"] == -5.0
    assert dialogs[0].preset.engine.window_frames == window.engine_config.window_frames
    dialogs[0].close()


def test_renders_from_the_window_run_the_loaded_presets_chains(
    window: MainWindow, qtbot, tmp_path: Path, tiny_model_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    """The window says a preset's chains "run live and in renders": a -12 dB post gain shows in the file."""
    t = np.arange(22050) / 44100
    src = write_audio(tmp_path / "in.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None], 44100)
    window.set_model(make_tiny_model().__class__.from_pretrained(tiny_model_dir), str(tiny_model_dir))
    levels = []
    for name, post in (("plain", []), ("quiet", [{"plugin": "Gain", "params": {"gain_db": -12.0}}])):
        Preset(name=name, engine=EngineConfig(sources=[1], **ENGINE), post=post).save(tmp_path / f"{name}.json")
        assert window.load_preset(tmp_path / f"{name}.json"), window.last_error
        dialog = window.open_render_dialog()
        qtbot.addWidget(dialog)
        dialog.add_inputs([src])
        dialog.output_edit.setText(str(tmp_path / f"{name}.wav"))
        with qtbot.waitSignal(dialog.finished_render, timeout=60000) as blocker:
            assert dialog.start_render()
        assert blocker.args[0], dialog.error
        y = read_audio(tmp_path / f"{name}.wav", 44100)
        levels.append(20 * np.log10(np.sqrt(np.mean(y**2))))
        dialog.close()
    assert levels[1] - levels[0] == pytest.approx(-12.0, abs=0.05)


def test_midi_learn_over_a_virtual_jack_port(qtbot, settings, jack_server) -> None:  # type: ignore[no-untyped-def]
    rtmidi = pytest.importorskip("rtmidi")
    w = MainWindow(settings, engine_config=EngineConfig(sources=[1], **ENGINE), midi_api="jack", popups=False)
    qtbot.addWidget(w)
    sender = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK, name="gui-knob")
    try:
        before = set(jack_server.ports())
        w.refresh_devices()
        w.midi_combo.setCurrentIndex(w.midi_combo.findText("Virtual port (lincae:in)"))
        w.midi_combo.activated.emit(w.midi_combo.currentIndex())
        ours = [p for p in set(jack_server.ports()) - before if p.endswith(":in")]
        assert len(ours) == 1, (ours, w.last_error)
        sender.open_virtual_port("out")
        jack_server.wait_for_port("gui-knob:out")
        jack_server.connect("gui-knob:out", ours[0])
        knob = w.controls["mix.dry_wet"]
        next(a for a in knob.context_menu().actions() if a.text() == "MIDI learn").trigger()
        sender.send_message([0xB2, 33, 100])  # CC 33 on channel 3
        qtbot.waitUntil(lambda: knob.cc_label.text() == "CC 33 ch 3", timeout=5000)  # the GUI's MIDI timer polls
        assert w.registry.get("mix.dry_wet") == 100.0  # soft takeover: the knob at 100/127 has not caught 100 %
        sender.send_message([0xB2, 33, 127])  # reaches 100 % → caught
        qtbot.waitUntil(lambda: w.midi.caught("mix.dry_wet"), timeout=5000)
        sender.send_message([0xB2, 33, 0])  # now it drives the parameter
        qtbot.waitUntil(lambda: w.registry.get("mix.dry_wet") == 0.0, timeout=5000)
        assert knob.value() == 0.0 and knob.readout.text() == "0 %"
    finally:
        sender.close_port()
        sender.delete()
        w.shutdown()


def _tone_player(jack_server):  # type: ignore[no-untyped-def]
    """A JACK client that plays two tones with noise into lincae's input (so meters and latents move)."""
    jack = pytest.importorskip("jack", reason="JACK-Client is installed by scripts/setup.sh (dev extra)")
    client = jack.Client("gui-tone", no_start_server=True)
    port = client.outports.register("out")
    state = {"n": 0}
    rng = np.random.default_rng(0)

    def process(frames: int) -> None:
        n = state["n"] + np.arange(frames)
        env = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * n / 44100)
        sig = env * (0.3 * np.sin(2 * np.pi * 220 * n / 44100) + 0.15 * np.sin(2 * np.pi * 557 * n / 44100))
        port.get_array()[:] = (sig + 0.02 * rng.standard_normal(frames)).astype(np.float32)
        state["n"] += frames

    client.set_process_callback(process)
    client.activate()
    return client


def test_a_presets_chains_run_live_and_a_plugin_that_fails_to_load_is_reported(
    qtbot, settings, jack_server, tiny_model_dir, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from lincae.io.mapping import MidiMapping
    from lincae.presets import Preset

    preset = Preset(
        name="chained",
        engine=EngineConfig(sources=[1], **ENGINE),
        post=[{"plugin": "Gain", "params": {"gain_db": -6.0}}, {"plugin": "vst3", "path": str(tmp_path / "gone.vst3")}],
        parameters={"post.0.gain.gain_db": -9.0},
        midi=[MidiMapping(parameter="post.0.gain.gain_db", cc=30, soft_takeover=False)],
    )
    preset.save(tmp_path / "chained.json")
    w = MainWindow(settings, engine_config=EngineConfig(sources=[1], **ENGINE), popups=False)
    qtbot.addWidget(w)
    try:
        assert w.load_preset(tmp_path / "chained.json"), w.last_error
        w.refresh_devices(rescan=False)
        w.select_device(w.input_combo, "system")
        w.select_device(w.output_combo, "system")
        w.model_edit.setText(str(tiny_model_dir))
        with qtbot.waitSignal(w.session_started, timeout=30000):
            w.start_button.click()
        assert w.session is not None, w.last_error
        assert w.registry.get("post.0.gain.gain_db") == -9.0  # the preset's value, on the live chain
        qtbot.waitUntil(lambda: w.engine.metrics.windows > 2, timeout=20000)
        qtbot.waitUntil(lambda: any("plugin bypassed" in e and "gone.vst3" in e for e in w.audio_events), timeout=5000)
        assert w.run_label.text() == "running"
        w.midi.handle_message([0xB0, 30, 127])  # the preset's mapping drives the plugin parameter
        w.poll_midi()
        assert w.registry.get("post.0.gain.gain_db") > -9.0
        saved = w.current_preset()
        assert "post.0.gain.gain_db" in saved.parameters
        assert saved.post == Preset.load(tmp_path / "chained.json").post
        # a preset loaded while audio runs is recalled into the running rig: values and mappings change,
        # the sources and the running chains stay (as with a program change); one for 2 sources is refused
        rig = w.rig
        Preset(name="plain", engine=EngineConfig(sources=[1], **ENGINE), parameters={"mix.dry_wet": 30.0}).save(
            tmp_path / "plain.json"
        )
        assert w.load_preset(tmp_path / "plain.json"), w.last_error
        assert w.rig is rig and w.rig.preset.name == "plain" and w.controls["mix.dry_wet"].value() == 30.0
        assert w.rig.post_spec == saved.post and w.registry.get("post.0.gain.gain_db") == -6.0  # its default
        assert "running effect chains stay" in w.statusBar().currentMessage()
        assert not w.load_preset("two-inputs") and "stop audio first" in w.last_error
        w.stop_button.click()
        # After the live run the registry holds the chain's parameters; a render from the window takes them
        # (it used to fail with "unknown parameter(s)") and skips the missing plugin file only when live.
        src = write_audio(tmp_path / "in.wav", (0.1 * np.ones((1, 8000))).astype(np.float32), 44100)
        dialog = w.open_render_dialog()
        qtbot.addWidget(dialog)
        assert dialog.preset == w.rig.to_preset()
        dialog.preset.post = dialog.preset.post[:1]  # the render refuses the missing VST3 file; keep the gain
        dialog.add_inputs([src])
        dialog.output_edit.setText(str(tmp_path / "after-live.wav"))
        with qtbot.waitSignal(dialog.finished_render, timeout=60000) as blocker:
            assert dialog.start_render()
        assert blocker.args[0], dialog.error
        dialog.close()
    finally:
        w.shutdown()


def test_a_device_rate_the_device_refuses_is_a_readable_error(qtbot, settings, jack_server, tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    w = MainWindow(settings, engine_config=EngineConfig(sources=[1], **ENGINE), popups=False)
    qtbot.addWidget(w)
    try:
        w.refresh_devices(rescan=False)
        w.select_device(w.input_combo, "system")
        w.select_device(w.output_combo, "system")
        w.model_edit.setText(str(tiny_model_dir))
        w.rate_combo.setCurrentIndex(w.rate_combo.findData(96000))  # the JACK server runs at 44.1 kHz
        w.start_button.click()
        qtbot.waitUntil(lambda: w.model is not None and w._loader is None, timeout=30000)
        qtbot.waitUntil(lambda: "96000 Hz" in (w.last_error or ""), timeout=10000)
        assert w.session is None and w.start_button.isEnabled()
    finally:
        w.shutdown()


def test_screenshot_of_the_main_window_with_audio_running_through_jack(
    qtbot, settings, jack_server, tiny_model_dir, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    w = MainWindow(settings, engine_config=EngineConfig(sources=[1], **ENGINE), popups=False)
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    try:
        w.refresh_devices(rescan=False)
        w.select_device(w.input_combo, "system")
        w.select_device(w.output_combo, "system")
        w.model_edit.setText(str(tiny_model_dir))
        w.controls["source.1.gain_db"].set_value(-3.0)
        w.controls["mix.dry_wet"].set_value(80.0)
        with qtbot.waitSignal(w.session_started, timeout=30000):
            w.start_button.click()  # loads the model on a worker thread, then starts
        assert w.session is not None and w.session is w.rig.session, w.last_error
        assert w.engine is w.rig.engine and w.rig.model is w.model
        import torch

        from lincae.rig import LIVE_THREADS

        assert torch.get_num_threads() == LIVE_THREADS  # the live worker's count, as lincae live sets it
        player = _tone_player(jack_server)
        try:
            for port in w.session.port_names[0][:1]:
                for other in jack_server.connections(port):
                    jack_server.disconnect(other, port)
                jack_server.connect("gui-tone:out", port)
            qtbot.waitUntil(lambda: w.engine.metrics.windows > 0, timeout=20000)
            qtbot.waitUntil(lambda: w.heatmap.frames >= w.heatmap.history - 10, timeout=20000)
            assert w.strips[0].meter.level_db > -40
            assert w.latency_label.text().endswith("ms")
            assert w.run_label.text() == "running"
            assert not w.start_button.isEnabled() and w.stop_button.isEnabled()
            out = tmp_path / "gui-main-window.png"  # the README's screenshot is made by scripts/screenshot.py
            assert w.grab().save(str(out))
            assert out.stat().st_size > 10000
        finally:
            player.deactivate()
            player.close()
        # the device stops under us (as when it is unplugged): reported in the window, then reopened
        w.session.abort_device()
        qtbot.waitUntil(lambda: any(e.startswith("⚠ device lost") for e in w.audio_events), timeout=10000)
        qtbot.waitUntil(lambda: w.session.reopens >= 1 and w.run_label.text() == "running", timeout=10000)
        w.stop_button.click()
        assert w.session is None and w.rig.session is None and w.run_label.text() == "stopped"
    finally:
        w.shutdown()


def test_dark_and_light_palettes(qapp, window: MainWindow) -> None:  # type: ignore[no-untyped-def]
    from lincae_gui.theme import apply_theme, system_is_dark
    from PyQt6.QtGui import QPalette

    before = qapp.palette()
    try:
        assert apply_theme(qapp, "dark") == "dark"
        qapp.processEvents()  # widgets take the new palette from a change event
        assert window.palette().color(QPalette.ColorRole.Window).lightness() < 80
        assert window.palette().color(QPalette.ColorRole.WindowText).lightness() > 180
        assert apply_theme(qapp, "light") == "light"
        qapp.processEvents()
        assert window.palette().color(QPalette.ColorRole.Window).lightness() > 180
        # "system" follows the platform's scheme (offscreen reports none: light)
        assert apply_theme(qapp, "system") == ("dark" if system_is_dark() else "light")
        with pytest.raises(ValueError, match="theme must be one of"):
            apply_theme(qapp, "sepia")
    finally:
        qapp.setPalette(before)


def test_the_preset_menu_shows_each_presets_latency_for_the_block(window: MainWindow) -> None:
    from lincae.profiles import engine_profiles

    labels = [a.text() for a in window.shipped_menu.actions()]
    block = int(window.block_combo.currentData())
    assert labels == [f"{p.name}  ({p.cost()})" for p in engine_profiles(block)]
    other = next(i for i in range(window.block_combo.count()) if window.block_combo.itemData(i) != block)
    window.block_combo.setCurrentIndex(other)
    block = int(window.block_combo.currentData())
    assert [a.text() for a in window.shipped_menu.actions()] == [
        f"{p.name}  ({p.cost()})" for p in engine_profiles(block)
    ]
    assert all(a.toolTip() for a in window.shipped_menu.actions())


def test_the_window_is_a_view_of_its_rig(window: MainWindow, tmp_path: Path) -> None:
    """Controls, MIDI, presets and the sources box all act on ``window.rig``; what is saved is ``Rig.to_preset``."""
    rig = window.rig
    assert window.registry is rig.registry and window.midi is rig.midi and rig.programs is not None
    assert rig.midi.on_program is rig.programs  # program changes recall through the rig
    window.controls["source.1.gain_db"].set_value(-7.0)
    assert rig.registry.get("source.1.gain_db") == -7.0
    window.toggle_learn("mix.dry_wet")
    rig.midi.handle_message([0xB0, 12, 0])
    window.poll_midi()
    assert [(m.parameter, m.cc) for m in rig.midi.mappings] == [("mix.dry_wet", 12)]
    assert window.current_preset("take") == rig.to_preset("take")
    assert window.save_preset_as(tmp_path / "take.json"), window.last_error
    assert Preset.load(tmp_path / "take.json") == rig.to_preset("take")

    # a preset loaded while stopped becomes a new rig: its sources, chains and values; the MIDI controller
    # (and its open port) moves over to the new registry with the preset's mappings
    midi = rig.midi
    chained = Preset(
        name="chained",
        engine=EngineConfig(sources=[1, 2], **ENGINE),
        post=[{"plugin": "Gain", "params": {"gain_db": -6.0}}],
        parameters={"post.0.gain.gain_db": -9.0, "source.2.gain_db": -4.0},
    )
    chained.save(tmp_path / "chained.json")
    assert window.load_preset(tmp_path / "chained.json"), window.last_error
    assert window.rig is not rig and window.rig.preset == chained
    assert window.rig.engine_config.sources == [1, 2] and window.sources_box.value() == 2
    assert window.registry.get("post.0.gain.gain_db") == -9.0 and window.controls["source.2.gain_db"].value() == -4.0
    assert window.midi is midi and midi.registry is window.rig.registry and midi.mappings == []
    assert window.current_preset() == window.rig.to_preset() and window.current_preset().post == chained.post
    # more sources: a rig of three, the values of the first two kept, the stereo layout too
    window.sources_box.setValue(3)
    assert window.rig.num_sources == 3 and window.registry.get("source.2.gain_db") == -4.0
    assert window.rig.post_spec == chained.post and window.registry.get("post.0.gain.gain_db") == -9.0
    assert window.rig.engine_config.window_frames == ENGINE["window_frames"]


def test_renders_run_on_their_own_model_copy_and_thread_count(
    window: MainWindow, qtbot, tmp_path: Path, tiny_model_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    """A render runs at its own engine's precision on its own model copy; the window's model (its precision
    setting included) and threads stay."""
    import torch

    from lincae.rig import offline_threads

    model = make_tiny_model().__class__.from_pretrained(tiny_model_dir)
    window.set_model(model, str(tiny_model_dir))
    model.mixed_precision = False
    before = torch.get_num_threads()
    src = write_audio(tmp_path / "in.wav", (0.1 * np.ones((1, 6000))).astype(np.float32), 44100)
    dialog = window.open_render_dialog()
    qtbot.addWidget(dialog)
    dialog.preset.engine = EngineConfig(**{**dialog.preset.engine.to_dict(), "precision": "bf16"})
    dialog.add_inputs([src])
    dialog.output_edit.setText(str(tmp_path / "out.wav"))
    with qtbot.waitSignal(dialog.finished_render, timeout=60000) as blocker:
        assert dialog.start_render()
        worker = dialog.worker
    assert blocker.args[0], dialog.error
    assert worker is not None and worker.render_model is not model
    assert not worker.render_model.mixed_precision and not model.mixed_precision  # bf16 came from a scope
    assert worker.threads == offline_threads() and torch.get_num_threads() == before
    dialog.close()


def test_osc_is_off_by_default_serves_the_rig_and_follows_it_to_a_new_one(
    window: MainWindow, qtbot, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pythonosc")
    from pythonosc.udp_client import SimpleUDPClient

    panel = window.osc_panel
    assert not panel.enable_box.isChecked() and window.rig.osc is None
    panel.address_edit.setText("no-port-here")
    panel.enable_box.setChecked(True)
    assert not panel.enable_box.isChecked() and window.rig.osc is None
    assert window.last_error.startswith("OSC: OSC address 'no-port-here': expected PORT or HOST:PORT")
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a free UDP port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    panel.address_edit.setText(f"127.0.0.1:{port}")
    panel.enable_box.setChecked(True)
    assert panel.enable_box.isChecked() and window.rig.osc is not None, window.last_error
    SimpleUDPClient(*window.rig.osc.address).send_message("/lincae/master/gain", -6.0)
    qtbot.waitUntil(lambda: window.registry.get("master.gain_db") == -6.0, timeout=5000)  # the GUI's timer polls
    assert window.controls["master.gain_db"].value() == -6.0
    old = window.rig
    assert window.load_preset("half-volume"), window.last_error  # a new rig: the server moves to it
    assert window.rig is not old and old.osc is None and window.rig.osc is not None
    assert window.rig.osc.address == ("127.0.0.1", port)
    SimpleUDPClient(*window.rig.osc.address).send_message("/lincae/dry_wet", 25.0)
    qtbot.waitUntil(lambda: window.registry.get("mix.dry_wet") == 25.0, timeout=5000)
    panel.enable_box.setChecked(False)
    assert window.rig.osc is None and panel.address_edit.isEnabled()


def test_record_button_records_the_live_output_into_the_chosen_file(
    qtbot, settings, jack_server, tiny_model_dir, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from PyQt6.QtWidgets import QFileDialog

    w = MainWindow(settings, engine_config=EngineConfig(sources=[1], **ENGINE), popups=False)
    qtbot.addWidget(w)
    rec = w.record
    try:
        assert not rec.record_button.isEnabled()  # no session yet
        rec.toggle()
        assert "start audio before recording" in w.last_error
        w.refresh_devices(rescan=False)
        w.select_device(w.input_combo, "system")
        w.select_device(w.output_combo, "system")
        w.model_edit.setText(str(tiny_model_dir))
        with qtbot.waitSignal(w.session_started, timeout=30000):
            w.start_button.click()
        assert rec.record_button.isEnabled() and rec.time_label.text() == ""
        take = tmp_path / "take.wav"
        # the chooser (a modal dialog offscreen: its answer is given here) picks the file when none is set
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "take"), ""))
        rec.record_button.click()
        assert w.rig.recording, w.last_error
        assert rec.path_edit.text() == str(take) and rec.record_button.text() == "■ Stop recording"
        qtbot.waitUntil(lambda: w.rig.session.recorders[0].seconds >= 1.0, timeout=20000)
        qtbot.waitUntil(lambda: rec.time_label.text().startswith("REC 0:0") and rec.time_label.text() != "REC 0:00")
        rec.record_button.click()
        assert not w.rig.recording and rec.time_label.text() == "" and rec.record_button.text() == "● Record"
        audio = read_audio(take, 44100)
        assert audio.shape[-1] >= 44100 and f"Recorded {take}" in w.statusBar().currentMessage()
        # a typed path that exists is not replaced; the chooser's confirmation replaces it
        rec.set_path(take)
        rec.record_button.click()
        assert not w.rig.recording and "Cannot record" in w.last_error and "exists" in w.last_error
        rec.set_path(take, confirmed=True)
        rec.record_button.click()
        assert w.rig.recording, w.last_error
        w.stop_button.click()  # stopping audio finishes the recording
        assert not w.rig.recording and not rec.record_button.isEnabled() and take.stat().st_size > 44
    finally:
        w.shutdown()


# Last: quitting the application leaves Qt's event loops returning at once, so later waits would fail.
def test_app_main_opens_the_window_and_exits_cleanly(qapp, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lincae_gui import app as gui_app
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    # the default QSettings (organisation/application names) land in tmp_path
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # main() installs its own; restored afterwards
    seen: list[str] = []

    def close_it() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen.extend(w.windowTitle() for w in windows)
        for w in windows:
            w.close()
        qapp.quit()

    QTimer.singleShot(300, close_it)
    assert gui_app.main(["--preset", "half-volume"]) == 0
    assert seen and seen[0].startswith("lincae — ")
    stored = QSettings("lincae", "lincae-gui")
    assert stored.value("audio/block") is not None  # remembered on close


def test_a_knob_refuses_nan_with_a_message_and_keeps_its_value(window: MainWindow) -> None:
    knob, mute = window.controls["source.1.gain_db"], window.controls["source.1.mute"]
    assert isinstance(knob, ParamKnob) and isinstance(mute, ParamToggle)
    knob.set_value(-6.0)
    mute.set_value(1.0)
    for bad in (float("nan"), float("inf"), float("-inf")):
        window.last_error = ""
        knob.set_value(bad)  # (clamped to -60 dB or +12 dB before)
        assert window.registry.get("source.1.gain_db") == -6.0
        assert knob.value() == -6.0 and knob.readout.text() == "-6.0 dB"
        assert window.last_error == (
            f"Parameter: parameter source.1.gain_db: {bad!r} is not a finite number; it stays at -6.0 dB"
        )
        assert window.statusBar().currentMessage() == window.last_error
        mute.set_value(bad)  # (turned off before)
        assert window.registry.get("source.1.mute") == 1.0 and mute.button.isChecked()
        assert "source.1.mute: " in window.last_error and "it stays at on" in window.last_error


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME and XDG_CONFIG_HOME in a temporary folder: the settings file is ``config_home/lincae/settings.json``."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    return home / ".config"


def test_the_plugin_folders_dialog_edits_plugin_path_in_the_settings_file(
    window: MainWindow, config_home: Path, tmp_path: Path
) -> None:
    import json

    from lincae.engine.effects.plugin_paths import plugin_folders

    settings = config_home / "lincae" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"plugin_path": ["/opt/old-plugins"], "theme": "dark"}))
    mine = tmp_path / "my-plugins"
    mine.mkdir()
    dialog = window.open_plugin_folders()
    assert dialog.folders() == ["/opt/old-plugins"] and dialog.file == settings
    assert not dialog.add_folder("relative/plugins") and not dialog.add_folder(".") and not dialog.add_folder("  ")
    assert "is not an absolute folder" in dialog.message.text() and dialog.folders() == ["/opt/old-plugins"]
    assert dialog.add_folder(str(mine)) and dialog.add_folder("~/vst3-extra") and dialog.add_folder(str(mine))
    dialog.list.setCurrentRow(0)
    dialog.remove_selected()
    assert dialog.folders() == [str(mine), "~/vst3-extra"]
    assert dialog.save()
    assert json.loads(settings.read_text()) == {"plugin_path": [str(mine), "~/vst3-extra"], "theme": "dark"}
    assert window.statusBar().currentMessage() == f"Plugin folders saved in {settings}"
    # what the commands and the GUI's chains look plugins up in, from now on
    assert plugin_folders("vst3")[:2] == [mine, config_home.parent / "vst3-extra"]
    # a settings file that cannot be read is said so, and left as it is
    settings.write_text("{not json")
    dialog = window.open_plugin_folders()
    assert "cannot read the settings file" in dialog.message.text() and not dialog.save()
    assert settings.read_text() == "{not json"
