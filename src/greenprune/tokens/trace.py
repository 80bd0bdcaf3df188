"""Per-layer trace of kept sequence lengths, for every forward, with export and a plot."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from greenprune._utils import atomic_write_text


@dataclass
class LengthTrace:
    """Kept lengths per layer for every forward since the last `reset()`.

    Each forward adds one (num_layers + 1, batch) integer tensor: row 0 is the input length of each sequence
    (real tokens), row i+1 the length after layer i (fused tokens count as tokens). `widths` holds the padded width
    the batch actually ran at after each layer, which is what the compute follows.
    """

    pruning_layers: list[int] = field(default_factory=list)
    num_layers: int = 0
    lengths: list[torch.Tensor] = field(default_factory=list)
    widths: list[list[int]] = field(default_factory=list)

    def record(self, lengths: list[torch.Tensor], widths: list[int]) -> None:
        self.lengths.append(torch.stack([t.detach().to("cpu", torch.int32) for t in lengths]))
        self.widths.append(list(widths))

    def reset(self) -> None:
        self.lengths.clear()
        self.widths.clear()

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def sequences(self) -> int:
        return int(sum(t.shape[1] for t in self.lengths))

    def all_lengths(self) -> torch.Tensor:
        """(num_layers + 1, total sequences) lengths over all recorded forwards."""
        if not self.lengths:
            return torch.zeros(self.num_layers + 1, 0, dtype=torch.int32)
        return torch.cat(self.lengths, dim=1)

    def mean_lengths(self) -> list[float]:
        """Mean kept length per stage (input, after layer 0, ...), over every recorded sequence."""
        lengths = self.all_lengths()
        if lengths.shape[1] == 0:
            return []
        return lengths.to(torch.float64).mean(dim=1).tolist()

    def kept_ratios(self) -> list[float]:
        """Mean over sequences of (length after the layer / input length), per stage."""
        lengths = self.all_lengths().to(torch.float64)
        if lengths.shape[1] == 0:
            return []
        return (lengths / lengths[0:1].clamp(min=1.0)).mean(dim=1).tolist()

    def mean_widths(self) -> list[float]:
        if not self.widths:
            return []
        return torch.tensor(self.widths, dtype=torch.float64).mean(dim=0).tolist()

    def summary(self) -> dict[str, object]:
        return {
            "forwards": len(self),
            "sequences": self.sequences,
            "num_layers": self.num_layers,
            "pruning_layers": list(self.pruning_layers),
            "mean_lengths": self.mean_lengths(),
            "kept_ratios": self.kept_ratios(),
            "mean_padded_widths": self.mean_widths(),
        }

    def to_dict(self, per_sequence: bool = False) -> dict[str, object]:
        out = self.summary()
        if per_sequence:
            out["lengths"] = self.all_lengths().T.tolist()  # one row per sequence: input, after layer 0, ...
        return out

    def save_json(self, path: str | os.PathLike[str], per_sequence: bool = True) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(per_sequence), indent=2) + "\n")


def plot_trace(
    traces: dict[str, LengthTrace], path: str | os.PathLike[str], *, title: str = "ALPINE: mean sequence length"
) -> Path:
    """Plot mean length per layer for each trace, with the unpruned length (the input length) as the reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    unpruned_drawn = False
    for name, trace in traces.items():
        means = trace.mean_lengths()
        if not means:
            continue
        stages = list(range(len(means)))
        ax.plot(stages, means, marker="o", label=name)
        if not unpruned_drawn:
            ax.plot(stages, [means[0]] * len(stages), linestyle="--", color="grey", label="unpruned")
            unpruned_drawn = True
    ax.set_xlabel("stage (0 = input, i = after layer i-1)")
    ax.set_ylabel("mean tokens per sequence")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
