"""The FER+ votes: the loader (targets, the protocol's exclusions, ties, its errors) and the scores made of them."""

import numpy as np
import pytest
from helpers import FER_DIR, requires_fer

from datasets import (
    FERPLUS_COLUMNS,
    fer2013_files,
    ferplus_labels,
    ferplus_scores,
    read_ferplus_votes,
)
from faces import EMOTIONS_LIST

HEADER = "file," + ",".join(FERPLUS_COLUMNS)


def write_votes(path, rows):
    """``rows``: (file, ten counts in FERPLUS_COLUMNS order)."""
    path.write_text("\n".join([HEADER] + [f"{file}," + ",".join(map(str, counts)) for file, counts in rows]) + "\n")
    return path


ROWS = [  # neutral happiness surprise sadness anger disgust fear contempt unknown NF
    ("test/angry/a.jpg", [3, 0, 0, 1, 6, 0, 0, 0, 0, 0]),  # angry, with some neutral and sad
    ("test/sad/b.jpg", [6, 0, 0, 4, 0, 0, 0, 0, 0, 0]),  # the crowd says neutral
    ("test/happy/c.jpg", [0, 2, 0, 0, 0, 0, 0, 0, 8, 0]),  # unknown wins: left out
    ("test/fear/d.jpg", [0, 0, 1, 0, 0, 0, 0, 0, 0, 9]),  # not a face: left out
    ("test/angry/e.jpg", [0, 0, 0, 0, 0, 0, 0, 10, 0, 0]),  # contempt only: no vote for the seven, left out
    ("test/sad/f.jpg", [4, 0, 0, 4, 0, 0, 0, 2, 0, 0]),  # a tie of neutral and sad: the original label, sad
    ("test/happy/g.jpg", [4, 0, 4, 0, 0, 0, 0, 0, 2, 0]),  # a tie without the original: the first in order
    ("test/disgust/h.jpg", [1, 0, 0, 0, 2, 3, 0, 4, 0, 0]),  # contempt wins but is not a class here: kept
]


def paths(root, rows=ROWS):
    return [root / "fer2013" / file for file, _ in rows]


def test_vote_distributions_sum_to_one_and_drop_contempt(tmp_path):
    labels = ferplus_labels(paths(tmp_path), write_votes(tmp_path / "ferplus.csv", ROWS))
    d = labels.distributions
    assert d.dtype == np.float32 and d.shape == (len(ROWS), 7)
    kept = labels.included
    np.testing.assert_allclose(d[kept].sum(axis=1), 1, atol=1e-6)
    i = EMOTIONS_LIST.index
    np.testing.assert_allclose(d[0, [i("angry"), i("neutral"), i("sad")]], [0.6, 0.3, 0.1], atol=1e-6)
    np.testing.assert_allclose(d[7, [i("neutral"), i("angry"), i("disgust")]], [1 / 6, 2 / 6, 3 / 6], atol=1e-6)
    assert d[4].sum() == 0  # nothing but contempt


def test_unknown_or_not_a_face_winners_are_left_out(tmp_path):
    labels = ferplus_labels(paths(tmp_path), write_votes(tmp_path / "ferplus.csv", ROWS))
    assert labels.included.tolist() == [True, True, False, False, False, True, True, True]


def test_majority_ties_go_to_the_original_label_then_to_the_first_class(tmp_path):
    labels = ferplus_labels(paths(tmp_path), write_votes(tmp_path / "ferplus.csv", ROWS))
    names = [EMOTIONS_LIST[k] for k in labels.majority]
    assert names[0] == "angry" and names[1] == "neutral" and names[7] == "disgust"
    assert names[5] == "sad"  # tied with neutral; sad is its FER2013 label
    assert names[6] == "neutral"  # neutral and surprise tied, the original (happy) neither: neutral comes first
    # the original labels may also be given explicitly
    explicit = ferplus_labels(paths(tmp_path), tmp_path / "ferplus.csv",
                              original=[EMOTIONS_LIST.index("neutral")] * len(ROWS))
    assert EMOTIONS_LIST[explicit.majority[5]] == "neutral"


def test_a_missing_csv_names_the_file_the_source_and_the_way_around(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv") as error:
        ferplus_labels(paths(tmp_path), tmp_path / "nowhere.csv")
    assert "microsoft/FERPlus" in str(error.value) and "LABELS='fer2013'" in str(error.value)


def test_a_csv_of_another_copy_of_fer2013_is_refused(tmp_path):
    csv = write_votes(tmp_path / "ferplus.csv", ROWS[:3])
    with pytest.raises(ValueError, match=r"no votes for 5 of the 8 images \(first: test/fear/d.jpg\)"):
        ferplus_labels(paths(tmp_path), csv)


@pytest.mark.parametrize("text, message", [
    ("file,neutral,happiness\ntest/a/b.jpg,1,2\n", "no column surprise"),
    (HEADER + "\ntest/angry/a.jpg,1,2,x,0,0,0,0,0,0,0\n", "line 2"),
    (HEADER + "\ntest/angry/a.jpg,1,2,-1,0,0,0,0,0,0,0\n", ">= 0"),
])
def test_a_malformed_csv_is_refused_with_its_line(tmp_path, text, message):
    (tmp_path / "ferplus.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_ferplus_votes(tmp_path / "ferplus.csv")


def test_scores_against_the_crowd():
    i = EMOTIONS_LIST.index
    majority = np.array([i("neutral")] * 4 + [i("happy")] * 2)
    predicted = np.array([i("neutral"), i("sad"), i("neutral"), i("neutral"), i("happy"), i("angry")])
    probabilities = np.eye(7, dtype=np.float32)[predicted]
    original = np.array([i("sad")] * 4 + [i("happy")] * 2)
    scores = ferplus_scores(probabilities, majority, original)
    assert scores["images"] == 6 and scores["ferplus_accuracy"] == round(4 / 6, 4)
    assert scores["neutral_called_sad"] == 0.25
    assert scores["per_class_recall"]["neutral"] == 0.75 and scores["per_class_recall"]["happy"] == 0.5
    assert scores["fer2013_accuracy"] == round(2 / 6, 4)
    assert np.array(scores["confusion_matrix"]).sum() == 6
    assert scores["confusion_matrix"][i("neutral")][i("sad")] == 1
    with pytest.raises(ValueError, match="probabilities must be"):
        ferplus_scores(probabilities[:5], majority)


@requires_fer
def test_the_shared_votes_cover_both_splits():
    for split, n in (("train", 28_709), ("test", 3_589)):
        files = [path for path, _ in fer2013_files(FER_DIR / split)]
        labels = ferplus_labels(files, FER_DIR / "ferplus.csv")
        assert len(files) == n
        assert 0.95 < labels.included.mean() < 1  # a few hundred unknown or not-a-face winners
        np.testing.assert_allclose(labels.distributions[labels.included].sum(axis=1), 1, atol=1e-5)
