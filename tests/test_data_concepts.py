"""Tests for the concept datasets in data/concepts/ and their loader, toolkit.data.load_concepts."""
from __future__ import annotations

import re
from collections import Counter

import pytest

from toolkit.data import CONCEPT_GROUPS, load_concepts

NAMES = ["toxicity", "shakespeare"]
PAIRED = [n for n in NAMES if CONCEPT_GROUPS[n] == "pair_id"]


@pytest.fixture(scope="module", params=NAMES)
def concept(request):
    return request.param, load_concepts(request.param).to_pandas()


def test_size_and_balance(concept):
    name, df = concept
    assert len(df) >= 600, f"{name}: only {len(df)} rows"
    counts = df.label.value_counts()
    assert set(counts.index) == {0, 1}
    # Paired sets are exactly balanced; generated ones may differ by a few percent.
    assert abs(counts[1] - counts[0]) <= 0.05 * len(df), f"{name}: labels {dict(counts)}"


def test_texts_unique_and_no_text_in_both_splits(concept):
    name, df = concept
    dup = df.text[df.text.duplicated()].tolist()
    assert not dup, f"{name}: duplicated texts {dup[:3]}"
    train, test = set(df.text[df.split == "train"]), set(df.text[df.split == "test"])
    assert not train & test
    assert set(df.split) == {"train", "test"}


def test_no_group_crosses_split(concept):
    name, df = concept
    splits_per_group = df.groupby(CONCEPT_GROUPS[name]).split.nunique()
    assert (splits_per_group == 1).all(), f"{name}: groups in both splits {splits_per_group[splits_per_group > 1].index[:5].tolist()}"


def test_split_is_about_70_30_and_both_splits_balanced(concept):
    name, df = concept
    frac = (df.split == "test").mean()
    assert 0.25 <= frac <= 0.35, f"{name}: test fraction {frac:.2f}"
    for split, part in df.groupby("split"):
        assert 0.4 <= part.label.mean() <= 0.6, f"{name}/{split}: label mean {part.label.mean():.2f}"


def test_split_argument_filters_rows():
    full = load_concepts("toxicity")
    train, test = load_concepts("toxicity", "train"), load_concepts("toxicity", split="test")
    assert train.num_rows + test.num_rows == full.num_rows
    assert set(train["split"]) == {"train"} and set(test["split"]) == {"test"}


@pytest.mark.parametrize("name", PAIRED)
def test_pairs_have_one_of_each_label(name):
    df = load_concepts(name).to_pandas()
    per_pair = df.groupby("pair_id").label.agg(["count", "sum"])
    assert (per_pair["count"] == 2).all() and (per_pair["sum"] == 1).all()
    assert (df.groupby("pair_id").topic.nunique() == 1).all()


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"'toxic'.*pii.*shakespeare.*toxicity"):
        load_concepts("toxic")


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="validation"):
        load_concepts("toxicity", split="validation")


# --- toxicity -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toxicity():
    return load_concepts("toxicity").to_pandas()


def test_toxicity_topics_and_styles_are_varied(toxicity):
    toxic = toxicity[toxicity.label == 1]
    styles = Counter(toxic["style"])
    assert len(styles) >= 6 and min(styles.values()) >= 20, styles
    assert set(toxicity[toxicity.label == 0]["style"]) == {"civil"}
    topics = toxicity.groupby("topic").label.agg(["count", "mean"])
    assert len(topics) >= 15
    assert (topics["mean"] == 0.5).all()  # every topic is balanced, so topic predicts nothing


def test_toxicity_lengths_match(toxicity):
    # A length-only classifier should not be a strong shortcut: the mean lengths of the two
    # sides differ by under 15%, and the lengths span short remarks to long sentences.
    length = toxicity.text.str.len()
    mean = length.groupby(toxicity.label).mean()
    assert abs(mean[1] - mean[0]) / mean[0] < 0.15, mean.to_dict()
    assert length.min() < 35 and length.max() > 85


# Words that name protected groups: the hostile side attacks individuals' behaviour, never a group.
GROUP_WORDS = r"\b(women|woman|men|girls?|boys?|gays?|lesbians?|trans|muslims?|christians?|jews?|jewish|" \
    r"hindus?|immigrants?|foreigners?|refugees?|black|asian|african|arabs?|mexicans?|disabled|autistic|" \
    r"religion|racial|elderly|pensioners?)\b"


def test_toxicity_never_names_a_protected_group(toxicity):
    toxic = toxicity[toxicity.label == 1].text
    hits = [t for t in toxic if re.search(GROUP_WORDS, t, flags=re.IGNORECASE)]
    assert not hits, hits[:5]


# --- shakespeare --------------------------------------------------------------------------------

ARCHAIC = re.compile(
    r"(?<![\w'])(?:thou|thee|thy|thine|hath|doth|dost|hast|'tis|ere|prithee|methinks|wherefore|shalt|"
    r"wilt|canst|sirrah|fie|nay|yon|yonder|o'er|e'er|ne'er|saith|whither|hie|anon|morrow|tarry|"
    r"hither|thither|forsooth|sayest|art)(?![\w'])", flags=re.IGNORECASE)


def test_shakespeare_modern_side_has_no_archaic_words_and_lengths_match():
    df = load_concepts("shakespeare").to_pandas()
    archaic = df.text.map(lambda t: ARCHAIC.search(t) is not None)
    # Modern paraphrases must be plainly modern; on the early-modern side many lines carry the
    # style through syntax alone ("speak not", "did walk"), so only a part has the marker words.
    assert not archaic[df.label == 0].any(), df.text[(df.label == 0) & archaic].tolist()[:5]
    assert archaic[df.label == 1].mean() > 0.35
    length = df.text.str.len().groupby(df.label).mean()
    assert abs(length[1] - length[0]) / length[0] < 0.10, length.to_dict()
    assert set(df.register) == {"early_modern", "modern"}
    assert set(df.source) == {"original", "quote"}
    assert df.topic.nunique() >= 15
