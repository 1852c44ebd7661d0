"""The latent view: a scrolling heat map of the latest latent frames, and what it shows.

``metrics.latents`` is ``[sources, 64]``, the latest latent frame of each source. The heat map shows,
per processed window, one column: by default the **mean over the sources** (what the sources share);
the menu beside it switches to the mix (``metrics.mix_latents``: gains, inversions, mutes applied) or
one source.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PyQt6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from lincae_gui.widgets import LatentHeatMap


class LatentPanel(QGroupBox):
    """The "Latent space" box: view menu and heat map, fed by :meth:`show_metrics`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Latent space", parent)
        lv = QVBoxLayout(self)
        lv.setContentsMargins(6, 6, 6, 6)
        top = QHBoxLayout()
        self.combo = QComboBox()
        self.combo.setToolTip("What the heat map shows: the mean of the sources' latent frames, the mix, or one source")
        top.addWidget(QLabel("Show"))
        top.addWidget(self.combo)
        top.addStretch(1)
        self.info = QLabel("64 latent channels × time (one column per processed window)")
        top.addWidget(self.info)
        lv.addLayout(top)
        self.heatmap = LatentHeatMap()
        lv.addWidget(self.heatmap, 1)
        self._last_windows = -1

    def set_sources(self, n: int) -> None:
        """Offer the mean, the mix and each of ``n`` sources (the choice is kept where it still exists)."""
        current = self.combo.currentIndex()
        self.combo.clear()
        self.combo.addItem("Mean of sources", "mean")
        self.combo.addItem("Mix (after gains)", "mix")
        for i in range(1, n + 1):
            self.combo.addItem(f"Source {i}", i)
        self.combo.setCurrentIndex(max(0, min(current, self.combo.count() - 1)))

    def restart(self) -> None:
        """A new engine: its window count starts again."""
        self._last_windows = -1

    def show_metrics(self, m: Any) -> None:
        """Push one column per new processed window of ``m`` (:class:`~lincae.engine.stream.EngineMetrics`)."""
        if m.windows == self._last_windows:
            return
        self._last_windows = m.windows
        frame = self.frame(m)
        if frame is not None:
            self.heatmap.push(frame)

    def frame(self, m: Any) -> np.ndarray | None:
        """The column to show, ``[64]``, or ``None`` when the metrics have none yet."""
        choice = self.combo.currentData()
        if choice == "mix":
            return None if m.mix_latents is None else np.asarray(m.mix_latents)
        if m.latents is None:
            return None
        latents = np.asarray(m.latents)
        if isinstance(choice, int):
            return latents[choice - 1] if 0 < choice <= latents.shape[0] else None
        return latents.mean(axis=0)
