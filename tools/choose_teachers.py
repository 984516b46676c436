"""Choose a distillation's teachers: every non-empty set of candidate networks scored on PublicTest as the
student would learn from it (the mean of their ten-crop probabilities, as ``tools.soft_labels`` writes them),
against the FER+ crowd's majority.

    python -m tools.choose_teachers --candidate vgg40-ferplus-run7 MODEL_JSON WEIGHTS_H5 \
        --candidate vgg44-ferplus-run10 MODEL_JSON WEIGHTS_H5 [--teacher NAME ...] [--data ../shared/fer2013] \
        [--out sets.json] [--served]

``--teacher NAME`` adds a candidate by its soft-label file alone (``docs/teachers/NAME.npz`` or a path), scored by
the PublicTest probabilities stored in it (``training.read_publictest``: files written since session 16, by
``tools.soft_labels`` or ``tools.train_jax --soft-labels``), for networks whose weights are gone, such as those
trained on a lent GPU (its views are ten crops, so it is refused with ``--served``).

Prints the best set as a JSON list of names (what the notebook's ``TEACHERS`` takes) on the last line of
stdout; with ``--out``, writes every set's figures there. Ties go to the smaller set, then to the earlier
candidates. The sets are chosen on PublicTest, as the runs' epochs are: a validation choice. ``--served`` scores
each network as the app serves it instead (flip TTA alone): what an ensemble of the sets would score as served.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

import numpy as np

from datasets import FER_DIR, ferplus_labels, ferplus_scores, load_fer2013_split
from model import FacialExpressionModel, fer2013_files
from networks import ten_crop_shift
from training import read_publictest, soft_label_keys

log = logging.getLogger("choose_teachers")


def score_sets(names: list[str], probabilities: list[np.ndarray], majority: np.ndarray) -> list[dict]:
    """Every non-empty set of the candidates, best first: ``{"teachers", "ferplus_accuracy",
    "neutral_called_sad"}``.

    Args:
        names: the candidates' names, in their order.
        probabilities: float ``(N, 7)`` per candidate, on the same N faces.
        majority: int ``(N,)``, the crowd's majority of those faces.

    Raises:
        ValueError: no candidate, or names and probabilities of different lengths.
    """
    if not names or len(names) != len(probabilities):
        raise ValueError(f"need one probability array per candidate: {len(names)} names, {len(probabilities)} arrays")
    sets = []
    for size in range(1, len(names) + 1):
        for chosen in itertools.combinations(range(len(names)), size):
            scores = ferplus_scores(np.mean([probabilities[i] for i in chosen], axis=0), majority)
            sets.append({"teachers": [names[i] for i in chosen], "ferplus_accuracy": scores["ferplus_accuracy"],
                         "neutral_called_sad": scores["neutral_called_sad"]})
    # sorted() is stable: among equal accuracies the smaller set, then the earlier candidates, stay first
    return sorted(sets, key=lambda s: (-s["ferplus_accuracy"], len(s["teachers"])))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", nargs=3, action="append", default=[],
                        metavar=("NAME", "MODEL_JSON", "WEIGHTS_H5"), help="a teacher's name and its network's files")
    parser.add_argument("--teacher", action="append", default=[], metavar="NAME",
                        help="a teacher by its soft-label file, with PublicTest probabilities stored in it")
    parser.add_argument("--data", type=Path, default=FER_DIR, help="FER2013 with test/ and ferplus.csv")
    parser.add_argument("--out", type=Path, help="write every set's figures here (JSON)")
    parser.add_argument("--served", action="store_true", help="each network with flip TTA alone, as the app serves it")
    args = parser.parse_args(argv)
    if not args.candidate and not args.teacher:
        parser.error("give at least one --candidate or --teacher")
    if args.teacher and args.served:
        parser.error("--served takes only --candidate (--teacher files hold ten-crop probabilities)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    votes = args.data / "ferplus.csv"
    if not votes.is_file():
        parser.error(f"no FER+ votes at {votes}: give --data, FER2013 with its ferplus.csv")
    files = fer2013_files(args.data / "test")
    faces, original = load_fer2013_split(args.data / "test", files)
    crowd = ferplus_labels([path for path, _ in files], votes, original)
    faces, majority = faces[crowd.included], crowd.majority[crowd.included]
    names, probabilities = [], []
    keys = [key for key, kept in zip(soft_label_keys([path for path, _ in files]), crowd.included, strict=True) if kept]
    for name in args.teacher:
        probabilities.append(read_publictest(name, keys))
        names.append(name)  # as given: a name in docs/teachers/ or a path, what TEACHERS takes either way
        log.info("%s alone: FER+ %.4f", names[-1], ferplus_scores(probabilities[-1], majority)["ferplus_accuracy"])
    for name, model_json, weights in args.candidate:
        shift = 0 if args.served else ten_crop_shift(
            FacialExpressionModel(model_json, weights, runtime="keras").keras_model)
        # tools.soft_labels' views (the same as its soft labels' for teachers written since session 15)
        model = FacialExpressionModel(model_json, weights, runtime="litert", shift_tta=shift)
        probabilities.append(model.predict_proba(faces))
        names.append(name)
        log.info("%s alone: FER+ %.4f", name, ferplus_scores(probabilities[-1], majority)["ferplus_accuracy"])
    sets = score_sets(names, probabilities, majority)
    for s in sets:
        log.info("%.4f (neutral called sad %.3f): %s", s["ferplus_accuracy"], s["neutral_called_sad"],
                 " + ".join(s["teachers"]))
    if args.out:
        views = "flip TTA (as served)" if args.served else "ten crops (networks.ten_crop_shift), each mirrored"
        args.out.write_text(json.dumps({"images": int(len(majority)), "views": views, "sets": sets}, indent=1) + "\n")
    print(json.dumps(sets[0]["teachers"]))


if __name__ == "__main__":
    main()
