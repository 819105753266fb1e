"""benchmarks.certainty: labels by construction, split hygiene, determinism, scoring."""
from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks import certainty as cert
from radedge.labels import BLANK, NEGATIVE, POSITIVE, UNCERTAIN


def _word_re(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(phrase)}(?![A-Za-z0-9])", re.IGNORECASE)


@pytest.fixture(scope="module")
def sets() -> dict[str, list[cert.Case]]:
    return {split: cert.build(split, 1500, seed=3) for split in cert.SPLITS}


def test_dev_and_test_phrasings_are_disjoint() -> None:
    for table in (cert.SYNONYMS, cert.TEMPLATES, cert.BORDERLINE, cert.HEADERS):
        for key, items in table.items():
            dev, test = cert.split_half(items, "dev"), cert.split_half(items, "test")
            assert dev and test and set(dev) | set(test) == set(items), key
            if key not in ("Pneumothorax", "Fracture"):  # header lists repeat the finding's own name
                assert not set(dev) & set(test), key


def test_no_synonym_contains_another_finding_s() -> None:
    """Labels by construction: a phrase of one finding never mentions another one."""
    for f, syns in cert.SYNONYMS.items():
        for g, others in cert.SYNONYMS.items():
            if f != g:
                for s in syns:
                    assert not any(_word_re(o).search(s) for o in others), (f, s, g)
    every = [s for syns in cert.SYNONYMS.values() for s in syns]
    for filler in cert.FILLERS:
        assert not any(_word_re(s).search(filler) for s in every), filler


def test_every_finding_in_every_class_in_each_split(sets) -> None:
    for split, cases in sets.items():
        gold = cert.gold_matrix(cases)
        for j, f in enumerate(cert.SCORED):
            for cls in (POSITIVE, NEGATIVE, UNCERTAIN, BLANK):
                assert (gold[:, j] == cls).any(), (split, f, cls)
        kinds = {k for c in cases for k in c.kinds.values()}
        assert {"long", "mixed", "pseudo", "hedge", "borderline", "header", "widening", "indication",
                "abbreviation"} <= kinds, split


def test_labels_by_construction(sets) -> None:
    """A finding is mentioned in the read part of a report exactly when its label is not blank;
    an indication-only finding is blank; each split uses only its own synonyms."""
    from radedge.reports.sections import findings_text

    for split, cases in sets.items():
        other = "test" if split == "dev" else "dev"
        foreign = {f: set(cert.split_half(s, other)) - set(cert.split_half(s, split))
                   for f, s in cert.SYNONYMS.items()}
        for c in cases:
            read = findings_text(c.text)
            for f in cert.SCORED:
                mentioned = any(_word_re(s).search(read) for s in cert.SYNONYMS[f])
                # a "None." header body and a borderline sentence name the finding without a synonym
                unnamed = c.kinds.get(f) == "borderline" or (c.kinds.get(f) == "header" and c.labels[f] == NEGATIVE)
                assert mentioned == (c.labels[f] != BLANK) or unnamed, (c.text, f)
                if c.kinds.get(f) == "indication":
                    assert c.labels[f] == BLANK
                assert not any(_word_re(s).search(c.text) for s in foreign[f]
                               if not any(_word_re(s).search(t) or _word_re(t).search(s)
                                          for t in cert.split_half(cert.SYNONYMS[f], split))), (c.text, f)


def test_mixed_mentions_take_chexpert_precedence() -> None:
    b = cert.Builder("dev", seed=1)
    for _ in range(200):
        case = b.mixed()
        [(f, _)] = case.kinds.items()
        n_mentions = sum(len(_word_re(s).findall(case.text)) for s in cert.SYNONYMS[f])
        assert n_mentions >= 2
        assert case.labels[f] in (POSITIVE, UNCERTAIN)  # two different classes: never negative alone


def test_deterministic_for_a_seed() -> None:
    a, b = cert.build("test", 300, seed=5), cert.build("test", 300, seed=5)
    assert [c.text for c in a] == [c.text for c in b] and [c.labels for c in a] == [c.labels for c in b]
    assert [c.text for c in a] != [c.text for c in cert.build("test", 300, seed=6)]


def test_scores_perfect_and_degenerate(sets) -> None:
    cases = sets["dev"]
    gold = cert.gold_matrix(cases)
    perfect = cert.scores(gold, gold.copy(), cases)
    assert perfect["macro_f1"] == 1.0 and perfect["uncertain_f1"] == 1.0 and perfect["accuracy"] == 1.0
    all_positive = np.where(gold != BLANK, POSITIVE, BLANK).astype(np.int8)  # no negation, no hedging
    s = cert.scores(gold, all_positive, cases)
    assert s["uncertain_f1"] == 0.0 and s["per_class"]["negative"]["f1"] == 0.0 and s["macro_f1"] < 0.3


def test_command_prints_the_scores_for_rules(capsys) -> None:
    assert cert.main(["--model", "rules", "--split", "dev", "--n", "120"]) == 0
    out = capsys.readouterr().out
    assert "rules on the certainty set, dev half (120 reports" in out
    assert re.search(r"macro F1 \(positive / negative / uncertain\): [01]\.\d{3}   uncertain F1: [01]\.\d{3}", out)
