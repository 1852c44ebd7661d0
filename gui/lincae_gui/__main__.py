"""``python -m lincae_gui``."""

import sys

from lincae_gui.app import main

sys.exit(main())
