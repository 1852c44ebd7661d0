"""Finding, loading and saving model weights.

Sources ``from_pretrained`` understands, in the order it tries them:

1. An official id (``m2l``, ``lin-cae``, ``lin-cae-2``): files are fetched from the Hugging Face Hub
   repository ``BernardoTorres/linear_consistency_autoencoders`` (cached; ``HF_HUB_OFFLINE=1``
   uses the cache only).
2. The name of a model shipped inside this package (``default`` and its real name).
3. A local folder in the official layout: ``autoencoder_inference_model_{last}.pth`` next to
   ``frontend_kwargs_{last}.yaml``, ``generator_kwargs_{last}.yaml`` and ``diffusion_kwargs_{last}.yaml``
   (or a Hub snapshot holding one ``{hash}_weights`` folder).
4. A local folder in our format: ``model.safetensors`` + ``config.json`` (see :data:`FORMAT_VERSION`).
   Its ``family`` picks the model class: ``unet`` (the consistency UNet, format version 1, the
   default when the key is absent) or ``framenet`` (:mod:`lincae.models.frame_autoencoder`, format
   version 2, which an older lincae refuses with a version error instead of mis-loading it).
5. A single file: ``*.safetensors`` with the config in its metadata, or an official ``*.pth`` with
   its YAML files beside it.

Nothing here unpickles code: ``.pth`` files are read with ``torch.load(weights_only=True)``.

Families. The model classes sit above this module (they derive from :class:`lincae.models.base.
LatentAutoencoder`, whose ``from_pretrained`` and ``save_pretrained`` come here), so it does not import
them: :data:`FAMILY_CLASSES` names each family's class by its import path, as a file names its family,
and :func:`family_class` imports the one a file asks for when a model is built. Loading hands back any
family; the caller says what it expects (``kind``), which the model is checked against.
"""

from __future__ import annotations

import importlib
import json
import warnings
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from lincae.config import parse_json, parse_yaml, read_config_text
from lincae.files.atomic import write_atomically
from lincae.models.official import OFFICIAL_HASHES, OFFICIAL_REPO, OFFICIAL_SCALE_FACTORS
from lincae.version import __version__

M = TypeVar("M", bound=nn.Module)

DEFAULT_MODEL_ALIAS = "default"

FORMAT_NAME = "lincae.autoencoder"
#: The newest model format this lincae reads: 1 = the consistency UNet, 2 = a ``family`` key (FrameNet).
FORMAT_VERSION = 2
#: The format version each family writes (UNet folders stay readable by older lincae).
FAMILY_FORMAT_VERSION = {"unet": 1, "framenet": 2}
#: The top-level config keys that belong to each family.
FAMILY_KEYS = {"unet": ("frontend", "generator", "diffusion"), "framenet": ("framenet",)}
#: The class that builds each family, as ``module:Class`` (see the module docstring).
FAMILY_CLASSES = {
    "unet": "lincae.models.autoencoder:Autoencoder",
    "framenet": "lincae.models.frame_autoencoder:FrameAutoencoder",
}
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_METADATA_KEY = "lincae_config"

_INFERENCE_KEYS = {"max_batch_size", "diffusion_steps", "max_chunk_size", "overlap_percentage"}
_CONSTRUCTOR_KWARGS = _INFERENCE_KEYS | {
    "mixed_precision",
    "enable_grad_denoise",
    "name",
    "scale_factor",
    "autocast_dtype",
}


class ModelNotFoundError(FileNotFoundError):
    """No model matches the given id or path."""


class ModelDownloadError(OSError):
    """An official model could not be fetched from the Hugging Face Hub."""


class Savable(Protocol):
    """What :func:`save_pretrained` needs of a model: its family, constructor arguments and weights."""

    family: str

    def config_dict(self) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...


def family_class(family: str) -> type[nn.Module]:
    """The class that builds models of ``family`` (a key of :data:`FAMILY_CLASSES`), imported on first use."""
    module, _, name = FAMILY_CLASSES[family].partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):  # pragma: no cover - a broken table
        raise TypeError(f"family {family!r}: {FAMILY_CLASSES[family]} is not a model class")
    return cls


# --------------------------------------------------------------------------- shipped models
def shipped_models_dir() -> Path:
    """Folder inside the package holding the shipped models (one sub-folder each)."""
    return Path(str(resources.files("lincae"))) / "assets" / "models"


def shipped_models() -> dict[str, Path]:
    """Shipped model names → folders; ``default`` points at the one marked default."""
    found: dict[str, Path] = {}
    root = shipped_models_dir()
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if (p / CONFIG_FILE).is_file()):
        found[folder.name] = folder
        meta = json.loads((folder / CONFIG_FILE).read_text()).get("metadata", {})
        if meta.get("default"):
            found[DEFAULT_MODEL_ALIAS] = folder
    return found


# --------------------------------------------------------------------------- loading
def load_pretrained(
    model_id: str | Path,
    kind: type[M],
    ckpt_type: str = "last",
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    **kwargs: Any,
) -> M:
    """Resolve ``model_id`` (see the module docstring) and build the model in eval mode on CPU.

    ``kind``: the class the model must be an instance of (:class:`~lincae.models.base.LatentAutoencoder`
    for any family); ``TypeError`` otherwise. ``kwargs`` override constructor arguments such as
    ``max_batch_size`` or ``max_chunk_size``.
    """
    model = _load(model_id, ckpt_type, cache_dir, revision, **kwargs)
    if not isinstance(model, kind):
        raise TypeError(f"model {str(model_id)!r} is a {type(model).__name__}, not a {kind.__name__}")
    return model


def _load(
    model_id: str | Path, ckpt_type: str, cache_dir: str | Path | None, revision: str | None, **kwargs: Any
) -> nn.Module:
    unknown = sorted(set(kwargs) - _CONSTRUCTOR_KWARGS)
    if unknown:
        raise TypeError(f"unknown argument(s) for from_pretrained: {', '.join(unknown)}")
    key = str(model_id)
    if key in OFFICIAL_HASHES:
        folder = download_official(key, ckpt_type=ckpt_type, cache_dir=cache_dir, revision=revision)
        return _load_official_folder(folder, ckpt_type, name=key, **kwargs)
    shipped = shipped_models()
    if key in shipped:
        return _load_lincae_folder(shipped[key], **kwargs)
    path = Path(model_id).expanduser()
    if path.is_dir():
        return _load_folder(path, ckpt_type, **kwargs)
    if path.is_file():
        if path.suffix == ".safetensors":
            return _load_safetensors_file(path, **kwargs)
        if path.suffix in (".pth", ".pt"):
            return _load_official_folder(path.parent, ckpt_type, weights=path, **kwargs)
        raise ValueError(f"{path}: unsupported model file type {path.suffix!r} (expected .safetensors or .pth)")
    if key == DEFAULT_MODEL_ALIAS:
        raise ModelNotFoundError("no default model is shipped with this installation of lincae")
    names = sorted(set(OFFICIAL_HASHES) | set(shipped))
    raise ModelNotFoundError(f"unknown model {key!r}: not a known id ({', '.join(names)}) nor an existing path")


def download_official(
    model_id: str, ckpt_type: str = "last", cache_dir: str | Path | None = None, revision: str | None = None
) -> Path:
    """Fetch an official checkpoint's four files from the Hub; returns the local folder holding them."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:  # pragma: no cover - a core dependency
        raise ModelDownloadError("huggingface_hub is needed to download official models") from e
    sub = f"{OFFICIAL_HASHES[model_id]}_weights"
    names = [_official_weights_name(ckpt_type)] + [_official_yaml_name(p, ckpt_type) for p in _PARTS]
    path = None
    for name in names:
        try:
            path = hf_hub_download(
                repo_id=OFFICIAL_REPO, filename=f"{sub}/{name}", cache_dir=cache_dir, revision=revision
            )
        except Exception as e:  # the hub raises many types: offline, HTTP, connection, missing entry
            raise ModelDownloadError(
                f"could not fetch official model {model_id!r} ({sub}/{name}) from the Hugging Face Hub "
                f"repository {OFFICIAL_REPO}: {type(e).__name__}: {e}\n"
                f"Without network access, copy the folder {sub}/ of that repository to this machine and load it "
                f"with Autoencoder.from_pretrained('/path/to/{sub}') (or `--model /path/to/{sub}` on the "
                "command line)."
            ) from e
    assert path is not None
    return Path(path).parent


_PARTS = ("frontend", "generator", "diffusion")


def _official_weights_name(ckpt_type: str) -> str:
    return f"autoencoder_inference_model_{ckpt_type}.pth"


def _official_yaml_name(part: str, ckpt_type: str) -> str:
    return f"{part}_kwargs_{ckpt_type}.yaml"


def _load_folder(path: Path, ckpt_type: str, **kwargs: Any) -> nn.Module:
    if (path / CONFIG_FILE).is_file():
        return _load_lincae_folder(path, **kwargs)
    if (path / _official_weights_name(ckpt_type)).is_file():
        return _load_official_folder(path, ckpt_type, **kwargs)
    snapshots = sorted(p for p in path.glob("*_weights") if (p / _official_weights_name(ckpt_type)).is_file())
    if len(snapshots) == 1:
        return _load_official_folder(snapshots[0], ckpt_type, **kwargs)
    if snapshots:
        raise ValueError(
            f"{path} holds several official checkpoints ({', '.join(p.name for p in snapshots)}): "
            "pass one of those folders"
        )
    raise ModelNotFoundError(
        f"{path} holds no model: expected {CONFIG_FILE} + {WEIGHTS_FILE}, or the official "
        f"{_official_weights_name(ckpt_type)} with its *_kwargs_{ckpt_type}.yaml files"
    )


def _official_name_for(folder: Path) -> str | None:
    by_hash = {h: k for k, h in OFFICIAL_HASHES.items()}
    return by_hash.get(folder.name.removesuffix("_weights"))


def _load_official_folder(
    folder: Path,
    ckpt_type: str,
    weights: Path | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    weights = weights or folder / _official_weights_name(ckpt_type)
    parts: dict[str, dict[str, Any]] = {}
    for part in _PARTS:
        yml = folder / _official_yaml_name(part, ckpt_type)
        if not yml.is_file():
            raise ModelNotFoundError(
                f"{folder}: missing {yml.name} (the official layout needs it beside {weights.name})"
            )
        values = parse_yaml(read_config_text(yml), str(yml))
        if not isinstance(values, dict):
            raise ValueError(f"{yml}: expected a mapping of constructor arguments, got {type(values).__name__}")
        parts[part] = dict(values)  # the configs read the official spellings
    name = name or _official_name_for(folder) or kwargs.get("name") or folder.name
    kwargs = {k: v for k, v in kwargs.items() if k != "name"}
    if "scale_factor" not in kwargs and name not in OFFICIAL_SCALE_FACTORS:
        warnings.warn(
            f"{folder}: no latent scale factor known for {name!r}; using 1.0 (pass scale_factor=...)", stacklevel=3
        )
    model = _build(
        "unet",
        where=str(folder),
        frontend=parts["frontend"],
        generator=parts["generator"],
        diffusion=parts["diffusion"],
        name=name,
        **kwargs,
    )
    _load_state(model, _read_pth(weights), str(weights))
    return model.eval()


def _read_pth(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for code, RuntimeError/EOFError for corrupt or truncated files
        # One line of PyTorch's message: its refusal of code runs over many lines (advice to load with
        # weights_only=False, which would run the code; "WeightsUnpickler error: Unsupported global: ..."; a
        # link), so the WeightsUnpickler line's first sentence where there is one, else the first line.
        lines = [" ".join(line.replace("\x1b[1m", "").replace("\x1b[0m", "").split()) for line in str(e).splitlines()]
        lines = [line for line in lines if line] or ["no detail"]
        why = next((line for line in lines if "WeightsUnpickler error:" in line), lines[0])
        why = why.split("WeightsUnpickler error:", 1)[-1].strip().split(". ")[0].rstrip(".")
        raise ValueError(
            f"cannot read checkpoint {path}: it is corrupt, truncated or holds more than tensors "
            f"(only weights are loaded, never code): {type(e).__name__}: {why}"
        ) from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return obj


def _read_config(path: Path, text: str) -> dict[str, Any]:
    try:
        config = parse_json(text, str(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: config is not valid JSON: {e}") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise ValueError(f'{path}: not a lincae model config (missing "format": "{FORMAT_NAME}")')
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1 or version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {version!r} not supported (this lincae reads 1..{FORMAT_VERSION}; "
            "a newer lincae wrote it)"
        )
    family = config.get("family", "unet")
    if family not in FAMILY_KEYS:
        raise ValueError(f"{path}: unknown model family {family!r} (known: {', '.join(FAMILY_KEYS)})")
    if version < FAMILY_FORMAT_VERSION[family]:
        raise ValueError(
            f"{path}: family {family!r} needs format version {FAMILY_FORMAT_VERSION[family]}, got {version}"
        )
    for other, keys in FAMILY_KEYS.items():
        stray = [k for k in keys if other != family and k in config]
        if stray:
            raise ValueError(f"{path}: field {stray[0]!r} belongs to family {other!r}, but this config is {family!r}")
    return config


def _load_lincae_folder(folder: Path, **kwargs: Any) -> nn.Module:
    cfg_path = folder / CONFIG_FILE
    config = _read_config(cfg_path, read_config_text(cfg_path))
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelNotFoundError(f"{folder}: missing {WEIGHTS_FILE}")
    model = _from_config(config, str(cfg_path), **kwargs)
    _load_state(model, _read_safetensors(weights), str(weights))
    return model.eval()


def _load_safetensors_file(path: Path, **kwargs: Any) -> nn.Module:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise ValueError(f"cannot read {path}: corrupt or truncated safetensors file: {e}") from e
    if _METADATA_KEY not in meta:
        raise ValueError(
            f"{path}: safetensors file has no '{_METADATA_KEY}' metadata; "
            f"save models with save_pretrained() or use a folder with {CONFIG_FILE}"
        )
    model = _from_config(_read_config(path, meta[_METADATA_KEY]), str(path), **kwargs)
    _load_state(model, _read_safetensors(path), str(path))
    return model.eval()


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as e:
        raise ValueError(f"cannot read {path}: corrupt or truncated safetensors file: {e}") from e


def _from_config(config: dict[str, Any], where: str, **kwargs: Any) -> nn.Module:
    inference = dict(config.get("inference") or {})
    bad = sorted(set(inference) - _INFERENCE_KEYS)
    if bad:
        raise ValueError(f"{where}: unknown inference key(s): {', '.join(bad)}")
    inference.update(kwargs)
    inference.setdefault("name", config.get("name", Path(where).parent.name))
    inference.setdefault("scale_factor", config.get("scale_factor", 1.0))
    if config.get("family", "unet") == "framenet":
        return _build("framenet", where=where, framenet=config.get("framenet"), **inference)
    return _build(
        "unet",
        where=where,
        frontend=config.get("frontend"),
        generator=config.get("generator"),
        diffusion=config.get("diffusion"),
        **inference,
    )


def _build(family: str, where: str, **kwargs: Any) -> nn.Module:
    cls = family_class(family)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: invalid model configuration: {e}") from e


def _load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:

        def few(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

        problems = [
            f"{label}: {few(items)}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
            if items
        ]
        raise ValueError(f"{where}: weights do not match the model configuration; " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- saving
def save_pretrained(model: Savable, target: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model`` as a folder (``config.json`` + ``model.safetensors``), or as one ``.safetensors`` file.

    Files are written to temporary names and renamed, so an interrupted save leaves no partial model.
    Returns the path written (the folder, or the file).
    """
    from safetensors.torch import save_file

    target = Path(target)
    config = {
        "format": FORMAT_NAME,
        "format_version": FAMILY_FORMAT_VERSION[model.family],
        "lincae_version": __version__,
        **model.config_dict(),
        "metadata": metadata or {},
    }
    text = json.dumps(config, indent=2, sort_keys=True)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    if target.suffix == ".safetensors":
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, lambda p: save_file(state, str(p), metadata={_METADATA_KEY: text}))
    else:
        target.mkdir(parents=True, exist_ok=True)
        write_atomically(target / WEIGHTS_FILE, lambda p: save_file(state, str(p)))
        write_atomically(target / CONFIG_FILE, lambda p: p.write_text(text + "\n"))
    _verify(state, target / WEIGHTS_FILE if target.suffix != ".safetensors" else target)
    return target


def _verify(state: dict[str, torch.Tensor], path: Path) -> None:
    loaded = _read_safetensors(path)
    if loaded.keys() != state.keys() or any(not torch.equal(loaded[k], v) for k, v in state.items()):
        raise OSError(f"{path}: saved weights do not read back identically")
