"""``python -m lincae_gui``."""

import sys

from lincae.rig import prepare_realtime_process

prepare_realtime_process()  # before PyTorch loads, as ``lincae gui`` does

from lincae_gui.app import main  # noqa: E402

sys.exit(main())
