"""Throughput and p99 latency against concurrency (runs in bench/.peers/tools with matplotlib).

``python _plots.py RESULTS_JSON OUT_DIR`` writes ``<rest|grpc>-<model>.png`` (small PNGs).
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

results = json.loads(Path(sys.argv[1]).read_text())
out_dir = Path(sys.argv[2])
out_dir.mkdir(parents=True, exist_ok=True)
for proto in ("rest", "grpc"):
    for model, sweep in (results.get(proto) or {}).items():
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3), dpi=72)
        for label, by_c in sweep.items():
            cs = sorted(int(c) for c in by_c)
            rps = [by_c[str(c)]["req_s"]["median"] for c in cs]
            p99 = [by_c[str(c)]["p99_ms"]["median"] for c in cs]
            style = "o-" if len(cs) > 1 else "o"
            ax1.plot(cs, rps, style, label=label, markersize=4)
            ax2.plot(cs, p99, style, label=label, markersize=4)
        all_cs = sorted({int(c) for by_c in sweep.values() for c in by_c})
        for ax, ylabel in ((ax1, "req/s (median)"), (ax2, "p99 ms (median)")):
            ax.set_xscale("log", base=2)
            ax.set_xticks(all_cs, [str(c) for c in all_cs])
            ax.minorticks_off()
            ax.set_xlabel("concurrency")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        ax2.set_yscale("log")
        ax1.legend(fontsize=7)
        fig.suptitle(f"{proto.upper()} {model}, batch 1 ({results.get('mode')} run)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / f"{proto}-{model}.png", pil_kwargs={"optimize": True})
        plt.close(fig)
