"""A video archive's reports with one and with two Ray workers: wall time, and identical face rows.

    python -m benchmarks.archive [--copies 4] [--every 1] [--model MODEL_JSON WEIGHTS_H5]

Makes a folder of ``--copies`` copies of each shared clip (``../shared/media/videos``: 2 clips, so 8 videos
by default), runs ``main.py annotate FOLDER --workers 1`` and ``--workers 2`` (each in a process of its
own, local Ray started and stopped by the command, into fresh output folders), and prints each one's wall
time, their ratio, the frames analysed per second, and whether every ``*_faces.csv`` is the same.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.pipeline import machine
from benchmarks.serving import add_model_argument, model_options

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--every", type=int, default=1)
    add_model_argument(parser)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    clips = sorted((ROOT.parent / "shared" / "media" / "videos").glob("*.mp4"))
    folder = work / "archive"
    folder.mkdir()
    for clip in clips:
        for i in range(args.copies):
            shutil.copy(clip, folder / f"{clip.stem}-{i}{clip.suffix}")
    results = {}
    try:
        for workers in (1, 2):
            output = work / f"reports-{workers}"
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "main.py", "annotate", str(folder), "--output", str(output),
                                   "--workers", str(workers), "--every", str(args.every), *model_options(args)],
                                  cwd=ROOT,
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - start
            with (output / "summary.csv").open() as f:
                frames = sum(int(row["frames"]) for row in csv.DictReader(f))
            results[workers] = {"exit_status": done.returncode, "wall_s": round(seconds, 1), "frames": frames,
                                "frames_per_s": round(frames / seconds, 1)}
        same = all((work / "reports-1" / p.name).read_text() == p.read_text()
                   for p in (work / "reports-2").glob("*_faces.csv"))
        print(json.dumps({"machine": machine(), "videos": len(clips) * args.copies,
                          "clips": [clip.name for clip in clips], "every": args.every, "workers": results,
                          "wall_time_ratio_2_to_1": round(results[2]["wall_s"] / results[1]["wall_s"], 3),
                          "identical_face_rows": same}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
