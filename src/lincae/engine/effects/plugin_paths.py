"""Where external plugins may be loaded from: the plugin folders, and files the user typed.

Loading a VST3 or Audio Unit runs its native code (its constructors run as the library is opened),
so a chain read from a file someone else wrote — a preset, a chain file, a program list — may only
name plugins the way a DAW project does: inside the plugin folders. Those are the standard ones
(VST3: ``~/.vst3``, ``/usr/lib/vst3``, ``/usr/local/lib/vst3``; Audio Units: ``~/Library/Audio/Plug-Ins/
Components``, ``/Library/Audio/Plug-Ins/Components``), the folders in ``$LINCAE_PLUGIN_PATH``
(``os.pathsep``-separated), the ``plugin_path`` list of the settings file
(``$XDG_CONFIG_HOME/lincae/settings.json``, default ``~/.config/lincae/settings.json``), and folders
added for this process (the commands' ``--plugin-path``, :func:`allow_plugin_folder`).

Only absolute folders count: an empty, relative or ``.`` entry of ``$LINCAE_PLUGIN_PATH`` or of
``plugin_path`` would trust whatever folder a command runs in, so it is left out (a refusal names what
was left out). The settings file is read through :func:`lincae.config.read_config_text` and
:func:`lincae.config.parse_json`, with their caps on size and nesting: a file that breaks them is one
error line.

A path in such an entry is either absolute (it must lie inside one of the folders once symbolic links
are resolved) or relative (``Foo.vst3``, ``Vendor/Foo.vst3``: looked up in each folder in turn, and
again it must not leave that folder). A plugin path the user typed on the command line
(``--post "vst3(path=./Foo.vst3)"``) is the user's own choice and is trusted as given:
:func:`lincae.engine.effects.parse_chain_arg` records it with :func:`trust_plugin_file`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lincae.config import parse_json, read_config_text
from lincae.engine.effects.catalog import PluginLoadError

__all__ = [
    "ENV_VAR",
    "PluginNotAllowed",
    "allow_plugin_folder",
    "plugin_folders",
    "plugin_scope",
    "resolve_plugin_path",
    "settings_file",
    "trust_plugin_file",
]

ENV_VAR = "LINCAE_PLUGIN_PATH"
STANDARD_FOLDERS: dict[str, tuple[str, ...]] = {
    "vst3": ("~/.vst3", "/usr/lib/vst3", "/usr/local/lib/vst3"),
    "au": ("~/Library/Audio/Plug-Ins/Components", "/Library/Audio/Plug-Ins/Components"),
}

_added_folders: list[Path] = []
_trusted_files: set[Path] = set()


class PluginNotAllowed(PluginLoadError):
    """A chain from a file names a plugin outside the plugin folders; nothing was loaded."""


def settings_file() -> Path:
    """``$XDG_CONFIG_HOME/lincae/settings.json`` (default ``~/.config/lincae/settings.json``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lincae" / "settings.json"


def _absolute(entries: list[str], where: str, left_out: list[str]) -> list[Path]:
    """The entries that name absolute folders (after ``~`` expansion); the others are noted in ``left_out``."""
    folders = []
    for entry in entries:
        folder = Path(entry).expanduser()
        if entry and folder.is_absolute():
            folders.append(folder)
        else:
            left_out.append(f"{entry!r} in {where}")
    return folders


def _settings_entries() -> list[str]:
    """``plugin_path`` of the settings file, as given (no file: none)."""
    path = settings_file()
    try:
        data = parse_json(read_config_text(path), str(path))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).removeprefix(f"{path}: ")
        raise PluginLoadError(f"{path}: cannot read the settings file ({why})") from None
    value = data.get("plugin_path", []) if isinstance(data, dict) else None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PluginLoadError(f"{path}: 'plugin_path' must be a list of folder paths")
    return value


def _configured_folders(left_out: list[str]) -> list[Path]:
    """The absolute folders of ``$LINCAE_PLUGIN_PATH`` and of the settings file, in that order."""
    env = os.environ.get(ENV_VAR)
    folders = _absolute(env.split(os.pathsep), f"${ENV_VAR}", left_out) if env else []
    return folders + _absolute(_settings_entries(), str(settings_file()), left_out)


def _lookup_folders(kind: str, left_out: list[str]) -> list[Path]:
    """This process's folders, the configured ones, the standard ones of ``kind``: in lookup order."""
    standard = [Path(p).expanduser() for p in STANDARD_FOLDERS.get(kind, ())]
    return [*_added_folders, *_configured_folders(left_out), *standard]


def plugin_folders(kind: str = "vst3") -> list[Path]:
    """The folders plugins of ``kind`` named by files may come from, in lookup order."""
    return _lookup_folders(kind, [])


def allow_plugin_folder(folder: str | os.PathLike[str]) -> Path:
    """Add ``folder`` to the plugin folders of this process (``--plugin-path``); it must exist."""
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"--plugin-path {folder}: no such folder")
    if p not in _added_folders:
        _added_folders.append(p)
    return p


def trust_plugin_file(path: str | os.PathLike[str]) -> None:
    """Allow this plugin file for this process: the user named it themself (the command line)."""
    _trusted_files.add(Path(path).expanduser().resolve())


@contextmanager
def plugin_scope() -> Iterator[None]:
    """Undo :func:`allow_plugin_folder` and :func:`trust_plugin_file` calls made inside the block."""
    folders, files = list(_added_folders), set(_trusted_files)
    try:
        yield
    finally:
        _added_folders[:] = folders
        _trusted_files.clear()
        _trusted_files.update(files)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def resolve_plugin_path(kind: str, path: str, where: str) -> str:
    """The file to load for an entry's ``path``, or :class:`PluginNotAllowed` (nothing is opened).

    Raises:
        PluginNotAllowed: the path lies outside every plugin folder (the message says how to allow it).
        FileNotFoundError: a relative name found in no folder, or a trusted/allowed path that is missing.
    """
    given = Path(path).expanduser()
    if given.resolve() in _trusted_files:
        return str(given)
    left_out: list[str] = []
    folders = _lookup_folders(kind, left_out)
    real_folders = [f.resolve() for f in folders]
    if given.is_absolute():
        real = given.resolve()
        if any(_inside(real, f) for f in real_folders):
            if not given.exists():
                raise FileNotFoundError(f"{where}: {kind} plugin not found: {path}")
            return str(given)
    else:
        for folder, real_folder in zip(folders, real_folders, strict=True):
            candidate = folder / given
            if candidate.exists():
                if _inside(candidate.resolve(), real_folder):
                    return str(candidate)
                break
        else:
            if ".." not in given.parts:
                raise FileNotFoundError(
                    f"{where}: {kind} plugin {path} is in none of the plugin folders ({_listed(folders, left_out)})"
                )
    raise PluginNotAllowed(
        f"{where}: {kind} plugin {path} is outside the plugin folders ({_listed(folders, left_out)}); "
        "nothing was loaded. "
        f"Presets and chain files may only name plugins there: to allow its folder, pass --plugin-path FOLDER, "
        f"add it to ${ENV_VAR} or to 'plugin_path' in {settings_file()}"
    )


def _listed(folders: list[Path], left_out: list[str]) -> str:
    listed = ", ".join(str(f) for f in folders) or "none"
    if left_out:
        listed += f"; left out, not being absolute folders: {', '.join(left_out)}"
    return listed
