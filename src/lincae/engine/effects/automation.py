"""The plugins' numeric parameters as registry parameters (``post.0.reverb.room_size``)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from lincae.engine.effects.catalog import BUILTIN_RANGES, EXTERNAL_KINDS, UNSMOOTHED, ChainSpecError, _builtins
from lincae.engine.effects.chain import EffectChain, _clean, _kind_of, _slot_info, set_bypass
from lincae.engine.effects.spec import _check_builtin_value, _is_number
from lincae.engine.params import ParameterSpec

_PARAM_RE = re.compile(r"(?:^|\.)(\d+)\.([a-z][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
_BYPASS_RE = re.compile(r"(?:^|\.)(\d+)\.bypass$")


def _slug(plugin: Any, board: Any) -> str:
    info = _slot_info(board, plugin)
    kind = info.kind if info else _kind_of(plugin)
    if kind in EXTERNAL_KINDS:
        s = re.sub(r"[^a-z0-9]+", "_", str(getattr(plugin, "name", kind)).lower()).strip("_")
        return s if s[:1].isalpha() else f"p_{s}"
    return kind.lower()


_CONTINUOUS_STEPS = 0x7FFFFFFF  # JUCE's AudioProcessor::getDefaultNumParameterSteps(): not stepped


def _is_discrete(param: Any) -> bool:
    """Whether an external plugin's parameter moves in steps (a choice or switch) rather than continuously.

    JUCE's rule: a parameter is discrete unless it reports the default step count. Pedalboard's
    ``is_discrete`` also says true for continuous VST3 parameters (a plain float ``Gain`` of the test
    plugin, with pedalboard 0.9), so the step count decides where the parameter has one.
    """
    steps = getattr(param, "num_steps", None)
    if isinstance(steps, int) and not isinstance(steps, bool):
        return steps != _CONTINUOUS_STEPS
    return bool(getattr(param, "is_discrete", False))


def chain_parameter_specs(board: Sequence[Any], prefix: str) -> list[ParameterSpec]:
    """Registry parameters for a chain's slots: ``{prefix}.{i}.bypass`` and ``{prefix}.{i}.{plugin}.{param}``.

    Built-ins expose the numeric parameters of ``BUILTIN_RANGES`` over their control range (widened to
    include the current value) and their switches as toggles; external plugins expose float parameters
    over the range pedalboard detected and boolean ones as toggles (text-valued ones are left out).
    Defaults are the current values, so a registry built from these starts where the board is.
    Continuous parameters are ``smoothed`` (the engine ramps them, see
    :meth:`ChainProcessor.process_ramped`); toggles, discrete external parameters and the built-ins of
    :data:`UNSMOOTHED` are not (they switch at a block boundary).
    """
    if not prefix or any(c.isspace() for c in prefix):
        raise ValueError(f"prefix {prefix!r} must be non-empty without spaces")
    specs = []
    for i, plugin in enumerate(board):
        info = _slot_info(board, plugin)
        kind = info.kind if info else _kind_of(plugin)
        slug = _slug(plugin, board)
        base = f"{prefix}.{i}"
        label = f"{prefix} slot {i} ({kind if kind not in EXTERNAL_KINDS else getattr(plugin, 'name', kind)})"
        if isinstance(board, EffectChain):
            specs.append(
                ParameterSpec(
                    f"{base}.bypass",
                    0.0,
                    1.0,
                    1.0 if info and info.bypass else 0.0,
                    toggle=True,
                    description=f"Bypass {label}",
                    smoothed=False,
                )
            )
        if info is not None and info.load_error:
            continue  # not loaded: its parameters are unknown
        if kind in _builtins():
            ranges = BUILTIN_RANGES.get(kind, {})
            for arg in _builtins()[kind].args:
                name = f"{base}.{slug}.{arg.name}"
                if arg.kind == "bool" and arg.has_property:
                    cur = 1.0 if getattr(plugin, arg.name) else 0.0
                    specs.append(
                        ParameterSpec(
                            name, 0.0, 1.0, cur, toggle=True, description=f"{label} {arg.name}", smoothed=False
                        )
                    )
                elif arg.kind == "float" and arg.has_property and arg.name in ranges:
                    lo_valid, hi_valid, lo, hi, unit = ranges[arg.name]
                    cur = min(hi_valid, max(lo_valid, _clean(float(getattr(plugin, arg.name)))))
                    specs.append(
                        ParameterSpec(
                            name,
                            min(lo, cur),
                            max(hi, cur),
                            cur,
                            unit,
                            description=f"{label} {arg.name}",
                            smoothed=arg.name not in UNSMOOTHED.get(kind, ()),
                        )
                    )
        elif kind in EXTERNAL_KINDS:
            for pname, param in plugin.parameters.items():
                name = f"{base}.{slug}.{pname}"
                ptype = getattr(param, "type", None)
                if ptype is bool:
                    cur = 1.0 if getattr(plugin, pname) else 0.0
                    specs.append(
                        ParameterSpec(name, 0.0, 1.0, cur, toggle=True, description=f"{label} {pname}", smoothed=False)
                    )
                elif ptype is float:
                    lo, hi = param.min_value, param.max_value
                    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                        continue
                    cur = min(hi, max(lo, float(getattr(plugin, pname))))
                    unit = param.label or ""
                    specs.append(
                        ParameterSpec(
                            name,
                            float(lo),
                            float(hi),
                            cur,
                            unit.replace(" ", ""),
                            description=f"{label} {pname}",
                            smoothed=not _is_discrete(param),  # choices switch, never ramp
                        )
                    )
    return specs


def apply_parameter(board: Sequence[Any], name: str, value: float) -> float:
    """Set the plugin parameter ``name`` (as from :func:`chain_parameter_specs`, any prefix) to ``value``.

    ``name`` ends in ``{slot}.{plugin}.{param}`` or ``{slot}.bypass``; the plugin part must match the slot
    (a stale mapping fails instead of driving the wrong plugin). Returns the value applied. Raises
    :class:`ChainSpecError` naming the parameter and value when it is unknown or out of range. A slot
    whose plugin failed to load (an :class:`UnloadedPlugin`) accepts and ignores its parameters.
    """
    plugins = list(board)
    m = _PARAM_RE.search(name)
    bypass = None if m else _BYPASS_RE.search(name)
    if not m and not bypass:
        raise ChainSpecError(
            f"{name}: not a chain parameter name (expected PREFIX.SLOT.PLUGIN.PARAM or PREFIX.SLOT.bypass)"
        )
    index = int((m or bypass).group(1))  # type: ignore[union-attr]
    if index >= len(plugins):
        raise ChainSpecError(f"{name}: the chain has {len(plugins)} plugin(s), no slot {index}")
    plugin = plugins[index]
    if not _is_number(value) and not isinstance(value, bool):
        raise ChainSpecError(f"{name} = {value!r}: expected a number")
    v = float(value)
    if not math.isfinite(v):
        raise ChainSpecError(f"{name} = {value!r}: must be finite")
    if bypass:
        set_bypass(board, index, v >= 0.5)  # type: ignore[arg-type]
        return 1.0 if v >= 0.5 else 0.0
    assert m is not None
    info = _slot_info(board, plugin)
    if info is not None and info.load_error:
        return v  # the plugin did not load: a preset's values for it are accepted and ignored
    slug, pname = m.group(2), m.group(3)
    actual = _slug(plugin, board)
    if slug != actual:
        raise ChainSpecError(f"{name}: slot {index} holds {actual}, not {slug}")
    kind = info.kind if info else _kind_of(plugin)
    if kind in _builtins():
        b = _builtins()[kind]
        arg = b.arg(pname)
        if arg is None or not arg.has_property or arg.kind not in ("float", "bool"):
            settable = [a.name for a in b.args if a.has_property and a.kind in ("float", "bool")]
            raise ChainSpecError(f"{name}: {kind} has no numeric parameter {pname!r}; numeric: {', '.join(settable)}")
        checked = _check_builtin_value(b, arg, bool(v >= 0.5) if arg.kind == "bool" else v, name)
        setattr(plugin, pname, checked)
        return float(checked)
    known = plugin.parameters
    if pname not in known:
        raise ChainSpecError(f"{name}: {actual} has no parameter {pname!r}; its parameters: {', '.join(sorted(known))}")
    new: Any = v >= 0.5 if getattr(known[pname], "type", None) is bool else v
    try:
        setattr(plugin, pname, new)
    except Exception as e:
        raise ChainSpecError(f"{name} = {value!r} rejected: {e}") from e
    return float(new)
