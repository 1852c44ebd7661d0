"""``python -m lincae`` (also what ``torchrun ... -m lincae train`` runs)."""

import sys

from lincae.cli import main

sys.exit(main())
