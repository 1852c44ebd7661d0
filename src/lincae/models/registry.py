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
5. A single file: ``*.safetensors`` with the config in its metadata, or an official ``*.pth`` with
   its YAML files beside it.

Nothing here unpickles code: ``.pth`` files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lincae.config import parse_json, parse_yaml, read_config_text
from lincae.io.atomic import write_atomically

if TYPE_CHECKING:
    from lincae.models.autoencoder import Autoencoder

OFFICIAL_REPO = "BernardoTorres/linear_consistency_autoencoders"
OFFICIAL_HASHES = {"m2l": "1511f18a", "lin-cae": "0a3afbec", "lin-cae-2": "2f4c6d21"}
OFFICIAL_SCALE_FACTORS = {"m2l": 15.0, "lin-cae": 33.0, "lin-cae-2": 40.0}
DEFAULT_MODEL_ALIAS = "default"

FORMAT_NAME = "lincae.autoencoder"
FORMAT_VERSION = 1
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
def load_model(model_id: str | Path = DEFAULT_MODEL_ALIAS, **kwargs: Any) -> Autoencoder:
    """``Autoencoder.from_pretrained`` without importing the class first."""
    from lincae.models.autoencoder import Autoencoder

    return load_pretrained(Autoencoder, model_id, **kwargs)


def load_pretrained(
    cls: type[Autoencoder],
    model_id: str | Path,
    ckpt_type: str = "last",
    cache_dir: str | Path | None = None,
    revision: str | None = None,
    **kwargs: Any,
) -> Autoencoder:
    """Resolve ``model_id`` (see the module docstring) and build the model in eval mode on CPU.

    ``kwargs`` override constructor arguments such as ``max_batch_size`` or ``max_chunk_size``.
    """
    unknown = sorted(set(kwargs) - _CONSTRUCTOR_KWARGS)
    if unknown:
        raise TypeError(f"unknown argument(s) for from_pretrained: {', '.join(unknown)}")
    key = str(model_id)
    if key in OFFICIAL_HASHES:
        folder = download_official(key, ckpt_type=ckpt_type, cache_dir=cache_dir, revision=revision)
        return _load_official_folder(cls, folder, ckpt_type, name=key, **kwargs)
    shipped = shipped_models()
    if key in shipped:
        return _load_lincae_folder(cls, shipped[key], **kwargs)
    path = Path(model_id).expanduser()
    if path.is_dir():
        return _load_folder(cls, path, ckpt_type, **kwargs)
    if path.is_file():
        if path.suffix == ".safetensors":
            return _load_safetensors_file(cls, path, **kwargs)
        if path.suffix in (".pth", ".pt"):
            return _load_official_folder(cls, path.parent, ckpt_type, weights=path, **kwargs)
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


def _load_folder(cls: type[Autoencoder], path: Path, ckpt_type: str, **kwargs: Any) -> Autoencoder:
    if (path / CONFIG_FILE).is_file():
        return _load_lincae_folder(cls, path, **kwargs)
    if (path / _official_weights_name(ckpt_type)).is_file():
        return _load_official_folder(cls, path, ckpt_type, **kwargs)
    snapshots = sorted(p for p in path.glob("*_weights") if (p / _official_weights_name(ckpt_type)).is_file())
    if len(snapshots) == 1:
        return _load_official_folder(cls, snapshots[0], ckpt_type, **kwargs)
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
    cls: type[Autoencoder],
    folder: Path,
    ckpt_type: str,
    weights: Path | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> Autoencoder:
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
        cls,
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
        raise ValueError(
            f"cannot read checkpoint {path}: it is corrupt, truncated or holds more than tensors "
            f"(only weights are loaded, never code): {type(e).__name__}: {e}"
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
            f"{path}: model format version {version!r} not supported (this lincae reads 1..{FORMAT_VERSION})"
        )
    return config


def _load_lincae_folder(cls: type[Autoencoder], folder: Path, **kwargs: Any) -> Autoencoder:
    cfg_path = folder / CONFIG_FILE
    config = _read_config(cfg_path, read_config_text(cfg_path))
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelNotFoundError(f"{folder}: missing {WEIGHTS_FILE}")
    model = _from_config(cls, config, str(cfg_path), **kwargs)
    _load_state(model, _read_safetensors(weights), str(weights))
    return model.eval()


def _load_safetensors_file(cls: type[Autoencoder], path: Path, **kwargs: Any) -> Autoencoder:
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
    model = _from_config(cls, _read_config(path, meta[_METADATA_KEY]), str(path), **kwargs)
    _load_state(model, _read_safetensors(path), str(path))
    return model.eval()


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as e:
        raise ValueError(f"cannot read {path}: corrupt or truncated safetensors file: {e}") from e


def _from_config(cls: type[Autoencoder], config: dict[str, Any], where: str, **kwargs: Any) -> Autoencoder:
    inference = dict(config.get("inference") or {})
    bad = sorted(set(inference) - _INFERENCE_KEYS)
    if bad:
        raise ValueError(f"{where}: unknown inference key(s): {', '.join(bad)}")
    inference.update(kwargs)
    inference.setdefault("name", config.get("name", Path(where).parent.name))
    inference.setdefault("scale_factor", config.get("scale_factor", 1.0))
    return _build(
        cls,
        where=where,
        frontend=config.get("frontend"),
        generator=config.get("generator"),
        diffusion=config.get("diffusion"),
        **inference,
    )


def _build(cls: type[Autoencoder], where: str, **kwargs: Any) -> Autoencoder:
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
def save_pretrained(model: Autoencoder, target: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model`` as a folder (``config.json`` + ``model.safetensors``), or as one ``.safetensors`` file.

    Files are written to temporary names and renamed, so an interrupted save leaves no partial model.
    Returns the path written (the folder, or the file).
    """
    from safetensors.torch import save_file

    from lincae import __version__

    target = Path(target)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
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
