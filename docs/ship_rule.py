"""A ship rule applied to two ``benchmarks.evaluate`` outputs measured in one run (``docs/evaluate_pair.sh``).

    python docs/ship_rule.py OUT SHIPPED NAME --gain G [--max-ms M]

The candidate ``OUT/evaluate-NAME.json`` qualifies when its FER+ majority accuracy is at least the shipped model's
(``OUT/evaluate-SHIPPED.json``) plus ``G`` (a negative ``G`` allows a loss) and, with ``--max-ms``, its ms per face
(batch of 1) is at most ``M``. Prints both figures and the verdict; writes ``OUT/decision.txt`` ("yes"/"no").
"""

import argparse
import json
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("out", type=Path)
parser.add_argument("shipped")
parser.add_argument("name")
parser.add_argument("--gain", type=float, required=True)
parser.add_argument("--max-ms", type=float)
args = parser.parse_args()
shipped, candidate = (json.loads((args.out / f"evaluate-{name}.json").read_text())
                      for name in (args.shipped, args.name))
qualifies = candidate["ferplus_accuracy"] >= shipped["ferplus_accuracy"] + args.gain and (
    args.max_ms is None or candidate["ms_per_face_batch_1"] <= args.max_ms)
for name, figures in ((args.shipped, shipped), (args.name, candidate)):
    print(f"{name}: FER+ {figures['ferplus_accuracy']:.4f}, {figures['ms_per_face_batch_1']} ms per face "
          f"({figures.get('ms_per_face_batch_1_one_thread')} on one thread), {figures.get('gflop_per_face')} GFLOP")
print(f"fer's classifier: {candidate.get('fer_ms_per_face_one_thread')} ms on one thread")
print(f"{args.name} qualifies: {'yes' if qualifies else 'no'}")
(args.out / "decision.txt").write_text("yes\n" if qualifies else "no\n")
