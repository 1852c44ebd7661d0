"""``python -m lincae_gui``."""

import sys

from lincae.cli import prepare_process

prepare_process("gui")  # before PyTorch loads, as ``lincae gui`` does

from lincae_gui.app import main  # noqa: E402

sys.exit(main())
