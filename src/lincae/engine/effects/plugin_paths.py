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

:func:`settings_plugin_path` reads the settings file's ``plugin_path`` as written, and
:func:`save_settings_plugin_path` replaces it (the GUI's *Plugin folders* dialog), keeping the file's
other keys: it takes absolute folders only, and leaves a file it cannot read as it is.

A path in such an entry is either absolute (it must lie inside one of the folders once symbolic links
are resolved) or relative (``Foo.vst3``, ``Vendor/Foo.vst3``: looked up in each folder in turn, and
again it must not leave that folder). A plugin path the user typed on the command line
(``--post "vst3(path=./Foo.vst3)"``) is the user's own choice and is trusted as given:
:func:`lincae.engine.effects.parse_chain_arg` records it with :func:`trust_plugin_file`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lincae.config import parse_json, read_config_text
from lincae.engine.effects.catalog import PluginLoadError
from lincae.files.atomic import write_atomically

__all__ = [
    "ENV_VAR",
    "PluginNotAllowed",
    "allow_plugin_folder",
    "plugin_folders",
    "plugin_scope",
    "resolve_plugin_path",
    "save_settings_plugin_path",
    "settings_file",
    "settings_plugin_path",
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


def _read_settings() -> object:
    """The settings file's JSON value (no file: ``{}``); one-line :class:`PluginLoadError` when unreadable."""
    path = settings_file()
    try:
        return parse_json(read_config_text(path), str(path))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).removeprefix(f"{path}: ")
        raise PluginLoadError(f"{path}: cannot read the settings file ({why})") from None


def settings_plugin_path() -> list[str]:
    """``plugin_path`` of the settings file, as written (entries that are not absolute folders included:
    the lookup leaves them out). Raises :class:`PluginLoadError` (one line) when the file is unreadable."""
    return _settings_entries()


def save_settings_plugin_path(folders: Sequence[str]) -> Path:
    """Make ``folders`` the settings file's ``plugin_path`` (duplicates once), keeping its other keys.

    Each must be an absolute folder (``~`` counts as the home folder): an empty, relative or ``.`` entry
    is refused (``ValueError`` naming them), as the lookup would leave it out. A settings file that cannot
    be read, or holds something other than a JSON object, is refused and left as it is. Returns the file.
    """
    bad = [f for f in folders if not f.strip() or not Path(f.strip()).expanduser().is_absolute()]
    if bad:
        listed = ", ".join(repr(f) for f in bad)
        raise ValueError(
            f"plugin folders are absolute paths (/home/me/vst3, ~/vst3); not {listed}, which would trust "
            "whatever folder lincae runs in"
        )
    path = settings_file()
    data = _read_settings()
    if not isinstance(data, dict):
        raise PluginLoadError(f"{path}: the settings file holds {type(data).__name__}, not a JSON object; fix it")
    data["plugin_path"] = list(dict.fromkeys(f.strip() for f in folders))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _settings_entries() -> list[str]:
    """``plugin_path`` of the settings file, as given (no file: none)."""
    path = settings_file()
    data = _read_settings()
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
