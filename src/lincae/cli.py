"""The ``lincae`` command: a thin layer over the library.

Each sub-command lives in one function that parses nothing itself; heavy imports happen inside it so
that ``lincae --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


def cmd_info(args: argparse.Namespace) -> int:
    """Print what a model is: its size, rates and latent geometry."""
    from lincae.models.autoencoder import num_parameters
    from lincae.models.registry import load_model

    model = load_model(args.model)
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
    """Encode and decode a generated test signal; write input, reconstruction and half-gain WAVs."""
    from lincae.demo import run_basic_demo

    out = run_basic_demo(Path(args.out), model_id=args.model, seconds=args.seconds, seed=args.seed)
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from lincae import __version__

    parser = argparse.ArgumentParser(prog="lincae", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"lincae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="describe a model")
    p.add_argument("--model", default="default", help="model id, folder or file (default: the shipped model)")
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("demo", help="encode/decode a generated signal and write the results")
    p.add_argument("--out", default="demo", help="output folder")
    p.add_argument("--model", default=None, help="model id, folder or file (default: the shipped model)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of the test signal")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        print(f"lincae {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
