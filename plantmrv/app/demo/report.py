"""The demo's report: a Markdown page with a table per project and a plot of cumulative reductions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class ProjectOutcome:
    project: str
    plant_type: str
    site: str
    methodology: str
    energy_saved_kwh: float
    reduction_t_co2: float
    truth_energy_saved_kwh: float
    truth_reduction_t_co2: float
    completeness: float = 1.0
    ts_ns: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    cumulative_t_co2: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def label(self) -> str:
        """Plant type, saying so where no methodology credits the reductions (U-BCF KPIs)."""
        return f"{self.plant_type}, KPI not credited" if self.plant_type == "ubcf" else self.plant_type

    @property
    def error_pct(self) -> float:
        if self.truth_reduction_t_co2 == 0:
            return 0.0 if self.reduction_t_co2 == 0 else float("inf")
        return 100.0 * (self.reduction_t_co2 - self.truth_reduction_t_co2) / abs(self.truth_reduction_t_co2)


def plot_cumulative(outcomes: list[ProjectOutcome], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    for o in outcomes:
        if len(o.ts_ns):
            # points are stamped at their interval's start: the running total belongs to its end
            hours = np.concatenate([[0.0], (o.ts_ns - o.ts_ns[0]) / 3.6e12 + 1.0])
            ax.plot(hours, np.concatenate([[0.0], o.cumulative_t_co2]), marker="o", label=f"{o.project} ({o.label})")
    ax.set_xlabel("plant time since start of demo [h]")
    ax.set_ylabel("cumulative emission reductions [tCO2]")
    ax.set_title("plantmrv demo: reductions per project (ex-post, unrounded)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(outcomes: list[ProjectOutcome], out_dir: Path, facts: dict[str, str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_cumulative(outcomes, out_dir / "reductions.png")
    lines = ["# plantmrv demo report", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts.items()]
    lines += [
        "",
        "| project | plant | site | methodology | energy saved [kWh] | reductions [tCO2] | ground truth [tCO2] | error | completeness |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.project} | {o.label} | {o.site} | {o.methodology} | {o.energy_saved_kwh:,.1f} | "
            f"{o.reduction_t_co2:,.4f} | {o.truth_reduction_t_co2:,.4f} | {o.error_pct:+.2f}% | {o.completeness:.1%} |"
        )
    lines += ["", f"![cumulative reductions]({plot.name})", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
