"""Pedalboard effect chains: JSON specs, building, streaming processing and named parameters.

Modules: :mod:`~.catalog` (the built-in plugins and their ranges, errors), :mod:`~.spec` (validation),
:mod:`~.chain` (building and reading back), :mod:`~.parse` (command-line form, chain files),
:mod:`~.automation` (registry parameters), :mod:`~.processor` (streaming).

A *chain spec* is a JSON-able list of plugin entries, applied in order::

    [
        {"plugin": "Compressor", "params": {"threshold_db": -18.0, "ratio": 2.0}},
        {"plugin": "Reverb", "params": {"room_size": 0.5}, "bypass": true},
        {"plugin": "vst3", "path": "/usr/lib/vst3/Foo.vst3", "params": {"mix": 0.5}, "state": "<base64>"},
    ]

Built-in plugins are named by their pedalboard class name, matched case-insensitively and ignoring
``_``/``-`` (``high_shelf_filter`` is ``HighShelfFilter``; a trailing ``Filter`` may be left out:
``highpass``); the canonical name is stored. ``params`` are constructor arguments; numbers are
checked against the plugin's valid range (``BUILTIN_RANGES``), enum arguments (``LadderFilter.mode``,
``Resample.quality``) are given by member name (``"LPF24"``). External plugins are ``"vst3"`` or
``"au"`` (macOS) entries with a ``path`` (and ``name`` to pick one plugin of a multi-plugin bundle),
loaded with :func:`pedalboard.load_plugin`; ``state`` (base64 of ``raw_state``) is restored first,
then ``params`` are set by their pedalboard (Python) names. ``"bypass": true`` keeps a plugin in the
chain without running it. Loading a plugin runs its code, so a path in a spec must lie in the plugin
folders (standard ones, ``--plugin-path``, ``$LINCAE_PLUGIN_PATH``, the settings file; relative paths
are looked up there), unless the user typed it on the command line (:func:`parse_chain_arg`): see
:mod:`~.plugin_paths`.

:func:`build_chain` turns a spec into an :class:`EffectChain` (a :class:`pedalboard.Pedalboard` that
remembers bypass flags and how external plugins were loaded); :func:`chain_to_spec` reads a board back
(every constructor argument of a built-in, at its current value). ``build_chain(spec,
on_load_error="bypass")`` (for live use) keeps going when a plugin *file* fails to load: the slot holds
a bypassed :class:`UnloadedPlugin` carrying the error, reported by :func:`load_failures` and
:class:`ChainProcessor` like a plugin that fails while running; the default ``"raise"`` fails
loudly. Spec mistakes (an unknown plugin name or parameter) raise either way.
:class:`ChainProcessor` runs a board block by block for streaming (``reset=False``, so reverb tails
continue across blocks), bypasses any plugin that fails, and ramps parameter changes
(:meth:`ChainProcessor.process_ramped`). :func:`chain_parameter_specs` and :func:`apply_parameter`
expose the plugins' numeric parameters to the :class:`~lincae.engine.params.ParameterRegistry` (MIDI,
presets, GUI) under names like ``post.0.reverb.room_size``; ``post.0.bypass`` switches a slot.

Latency. Pedalboard compensates plugin latency when a whole buffer is processed with ``reset=True``,
but when streaming, a plugin that buffers internally (``BrickwallLimiter``'s lookahead, ``Resample``,
``MP3Compressor``, ``GSMFullRateCompressor``, ``PitchShift`` — about a second) returns fewer samples
than it was given until its buffer fills. :class:`ChainProcessor` pads those blocks with leading
silence, so its output is the chain's output delayed by :attr:`ChainProcessor.latency` samples, with
every block as long as its input. :func:`chain_latency` predicts that delay.
"""

from __future__ import annotations

from lincae.engine.effects.automation import apply_parameter, chain_parameter_specs
from lincae.engine.effects.catalog import (
    BUILTIN_RANGES,
    CHAIN_FILE_FORMAT,
    DEFAULT_BUFFER_SIZE,
    EXTERNAL_KINDS,
    RAMP_BLOCK,
    UNSMOOTHED,
    ChainSpecError,
    PluginFailure,
    PluginLoadError,
    available_plugins,
    plugin_parameters,
)
from lincae.engine.effects.chain import (
    ON_LOAD_ERROR,
    EffectChain,
    UnloadedPlugin,
    build_chain,
    chain_to_spec,
    is_bypassed,
    load_failures,
    set_bypass,
)
from lincae.engine.effects.parse import load_chain_file, names_a_chain_file, parse_chain_arg
from lincae.engine.effects.plugin_paths import (
    PluginNotAllowed,
    allow_plugin_folder,
    plugin_folders,
    plugin_scope,
    trust_plugin_file,
)
from lincae.engine.effects.processor import ChainProcessor, chain_latency
from lincae.engine.effects.spec import validate_chain_spec

__all__ = [
    "BUILTIN_RANGES",
    "CHAIN_FILE_FORMAT",
    "DEFAULT_BUFFER_SIZE",
    "EXTERNAL_KINDS",
    "ON_LOAD_ERROR",
    "RAMP_BLOCK",
    "UNSMOOTHED",
    "ChainProcessor",
    "ChainSpecError",
    "EffectChain",
    "PluginFailure",
    "PluginLoadError",
    "PluginNotAllowed",
    "UnloadedPlugin",
    "allow_plugin_folder",
    "apply_parameter",
    "available_plugins",
    "build_chain",
    "chain_latency",
    "chain_parameter_specs",
    "chain_to_spec",
    "is_bypassed",
    "load_chain_file",
    "load_failures",
    "names_a_chain_file",
    "parse_chain_arg",
    "plugin_folders",
    "plugin_parameters",
    "plugin_scope",
    "set_bypass",
    "trust_plugin_file",
    "validate_chain_spec",
]
