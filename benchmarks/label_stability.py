"""How often the shown label of a face changes per second, with and without smoothing.

    python -m benchmarks.label_stability [VIDEO ...] [--half-lives 0,0.3,0.6]

Runs the stream's per-frame chain (``analysis.FaceAnalyzer``) over every frame of each video, unpaced,
and counts, for every tracked face, the frames whose label differs from the face's label in the frame
before; the rate is changes per second of tracked face time (changes / (face-frames / fps)).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import FaceAnalyzer
from camera import VideoCamera
from detection import make_face_detector
from model import default_model

ROOT = Path(__file__).resolve().parents[1]


def label_changes(video: Path, half_life: float, model) -> dict:
    camera = VideoCamera(video, paced=False, loop=False)
    fps = camera.fps
    analyzer = FaceAnalyzer(model, make_face_detector(), half_life)
    last_label: dict[int, str] = {}
    changes = face_frames = frames = 0
    for captured in camera.frames():
        frames += 1
        for face in analyzer(captured.frame, 1.0 / fps):
            face_frames += 1
            previous = last_label.get(face.id)
            changes += previous is not None and previous != face.emotion
            last_label[face.id] = face.emotion
    face_seconds = face_frames / fps
    return {"video": video.name, "half_life_s": half_life, "frames": frames, "faces_tracked": len(last_label),
            "face_seconds": round(face_seconds, 1), "label_changes": changes,
            "changes_per_face_second": round(changes / face_seconds, 3) if face_seconds else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--half-lives", default="0,0.3,0.6")
    args = parser.parse_args()
    shared = ROOT.parent / "shared" / "media" / "videos"
    videos = args.videos or sorted(shared.glob("*.mp4")) or sorted((ROOT / "videos").glob("*.mp4"))
    model = default_model()
    print("| video | half-life (s) | frames | faces tracked | face-seconds | label changes | changes per face-second |")
    print("|---|---|---|---|---|---|---|")
    for video in videos:
        for half_life in (float(h) for h in args.half_lives.split(",")):
            r = label_changes(video, half_life, model)
            print(f"| {r['video']} | {r['half_life_s']:g} | {r['frames']} | {r['faces_tracked']} | "
                  f"{r['face_seconds']} | {r['label_changes']} | {r['changes_per_face_second']} |")


if __name__ == "__main__":
    main()
