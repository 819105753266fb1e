"""Certainty test set: generated reports whose labels are known by construction, and the four-class
scores of any report labeler on them.

    python -m benchmarks.certainty --model rules|default|MODEL-FOLDER [--split dev|test|both]
                                   [--n 2000] [--seed 0] [--failures 20] [--write OUT.jsonl] [--json OUT]

Why: Open-i's gold says only "present"; it cannot tell a labeler that reads "cannot be excluded" as
positive from one that reads it as uncertain. Here every report is assembled from sentence templates
whose class is fixed (positive / negative / uncertain / not mentioned), for all 13 findings, with the
cases that break labelers in practice: hedges ("cannot be excluded", "not excluded", "likely",
"borderline", "may represent"), pseudo-negations ("no interval improvement of the edema" is edema
present, NegEx's pseudo-triggers), abbreviations (PTX, ETT, NGT, fx), widening of the mediastinum
(Enlarged Cardiomediastinum), sub-headers that name a finding ("Support devices: none."), the
indication naming a finding the findings do not (not read), findings deep inside long reports, and
one finding mentioned twice with different certainty.

Aggregation rule (CheXpert's): a finding mentioned more than once takes the highest of
positive > uncertain > negative > not mentioned over its mentions.

Honesty: every template list and every synonym list below is split in two, alternately: the *dev*
half (phrasings whose failures may be looked at while writing rules) and the *test* half (phrasings
only ever scored). A report uses only its split's phrasings; the report frame (fillers, headers) is
shared. Generation is deterministic for a seed.

Scores, over every (report, finding) cell of the 13 findings (No Finding is derived, not scored):
per class precision / recall / F1 pooled over findings, macro F1 over positive / negative /
uncertain, uncertain-only F1, four-class accuracy, and the share of target cells right per case kind.
"""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from radedge.labels import BLANK, FINDINGS, NEGATIVE, POSITIVE, UNCERTAIN
from export.cli import command_parser, run_command

SCORED = tuple(f for f in FINDINGS if f != "No Finding")  # the 13 findings
CLASS_NAMES = {POSITIVE: "positive", NEGATIVE: "negative", UNCERTAIN: "uncertain", BLANK: "not mentioned"}
PRECEDENCE = {BLANK: 0, NEGATIVE: 1, UNCERTAIN: 2, POSITIVE: 3}  # CheXpert: positive > uncertain > negative
SPLITS = ("dev", "test")

# ---- phrasings ----------------------------------------------------------------------------------
# Synonyms per finding (noun phrases that fit "No {m}.", "Possible {m}.", "{M} is seen."). No
# synonym of one finding contains a synonym of another (a test checks it), so a report's labels are
# exactly the sentences put in it. Abbreviations are marked by the ABBREVIATIONS set.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (
        "widening of the mediastinum", "widened mediastinum", "mediastinal widening",
        "enlarged cardiomediastinal silhouette", "enlargement of the cardiomediastinal silhouette",
        "widened superior mediastinum", "mediastinal enlargement", "widening of the superior mediastinum"),
    "Cardiomegaly": (
        "cardiomegaly", "enlarged heart", "cardiac enlargement", "enlargement of the cardiac silhouette",
        "enlarged cardiac silhouette", "mild cardiomegaly", "enlarged heart size", "moderate cardiomegaly"),
    "Lung Lesion": (
        "pulmonary nodule", "lung mass", "spiculated mass", "pulmonary mass", "nodular density",
        "lung nodule", "cavitary lesion", "mass in the right upper lobe"),
    "Lung Opacity": (
        "airspace opacity", "hazy opacity", "infiltrate", "airspace disease", "patchy opacities",
        "increased interstitial markings", "opacification of the left lung base", "ill-defined opacity"),
    "Edema": (
        "pulmonary edema", "interstitial edema", "alveolar edema", "mild pulmonary edema",
        "interstitial pulmonary edema", "perihilar edema", "edema", "pulmonary interstitial edema"),
    "Consolidation": (
        "consolidation", "lobar consolidation", "focal consolidation", "airspace consolidation",
        "right lower lobe consolidation", "dense consolidation", "consolidative change", "left basilar consolidation"),
    "Pneumonia": (
        "pneumonia", "bronchopneumonia", "PNA", "infectious process", "multifocal pneumonia",
        "right lower lobe pneumonia", "aspiration pneumonia", "lobar pneumonia"),
    "Atelectasis": (
        "atelectasis", "subsegmental atelectasis", "plate-like atelectasis", "collapse of the left lower lobe",
        "bibasilar atelectasis", "discoid atelectasis", "atelectatic change", "lobar collapse"),
    "Pneumothorax": (
        "PTX", "pneumothorax", "apical pneumothorax", "left PTX", "hydropneumothorax", "right pneumothorax",
        "small left apical pneumothorax", "tension pneumothorax"),
    "Pleural Effusion": (
        "pleural effusion", "effusion", "bilateral pleural effusions", "pleural fluid",
        "small left pleural effusion", "layering effusion", "right effusion", "subpulmonic effusion"),
    "Pleural Other": (
        "pleural thickening", "pleural scarring", "apical pleural thickening", "fibrothorax",
        "thickening of the pleura", "calcified pleural plaque", "pleural scar", "diffuse pleural thickening"),
    "Fracture": (
        "rib fracture", "fracture", "rib fx", "clavicle fx", "compression fracture",
        "displaced fracture of the right sixth rib", "healing rib fractures", "vertebral fracture"),
    "Support Devices": (
        "ETT", "endotracheal tube", "nasogastric tube", "NGT", "PICC line", "ET tube", "NG tube",
        "chest tube", "pacemaker", "OG tube", "tracheostomy tube", "right internal jugular central venous catheter"),
}
ABBREVIATIONS = frozenset({"PNA", "PTX", "left PTX", "rib fx", "clavicle fx", "ETT", "NGT", "ET tube", "NG tube",
                           "OG tube"})

# Sentence templates per class. {m} is the synonym, {M} the same capitalised.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "positive": (
        "There is {m}.", "{M} is seen.", "{M} is present.", "Findings consistent with {m}.",
        "Interval development of {m}.", "{M} again noted.", "New {m}.", "Redemonstrated {m}.",
        "{M} is again demonstrated.", "There has been interval increase in {m}.", "{M}.",
        "Stable {m}.", "Persistent {m}.", "{M} is noted.", "Evidence of {m}.", "{M} has increased."),
    "negative": (
        "No {m}.", "There is no {m}.", "No evidence of {m}.", "{M} is not seen.", "Negative for {m}.",
        "No radiographic evidence of {m}.", "{M} has resolved.", "Interval resolution of {m}.",
        "Without {m}.", "{M} is no longer seen.", "No findings to suggest {m}.", "{M} is absent.",
        "Previously seen {m} has cleared.", "No new or residual {m}.", "{M} is not identified.",
        "Resolution of the previously noted {m}."),
    "uncertain": (
        "Possible {m}.", "{M} cannot be excluded.", "Cannot exclude {m}.", "{M} is not excluded.",
        "Likely {m}.", "Probable {m}.", "Findings may represent {m}.", "Questionable {m}.",
        "Cannot rule out {m}.", "{M} is suspected.", "Could represent {m}.", "Suggestive of {m}.",
        "Concerning for {m}.", "{M} not excluded.", "Differential includes {m}.", "Possibly {m}.",
        "Question of {m}.", "{M} is likely.", "Findings likely represent {m}.", "Equivocal {m}.",
        "Subtle findings which may reflect {m}.", "{M} is not entirely excluded.",
        "Early {m} is a consideration.", "Suspicious for {m}."),
    # NegEx pseudo-triggers: a negation word that negates a change, not the finding.
    "pseudo": (
        "No interval improvement of the {m}.", "No change in the {m}.", "No significant change in the {m}.",
        "No interval change in the {m}.", "There has been no improvement in the {m}.",
        "{M} without interval change.", "No further increase in the {m}.", "No worsening of the {m}.",
        "{M}, not significantly changed.", "The {m} is not improved."),
}
# "borderline" is a hedge for size findings only.
BORDERLINE = {
    "Cardiomegaly": ("Borderline cardiomegaly.", "Heart size is borderline enlarged.",
                     "Borderline enlargement of the cardiac silhouette.", "The heart is borderline in size."),
    "Enlarged Cardiomediastinum": ("Borderline widening of the mediastinum.", "Mediastinum is borderline widened.",
                                   "Borderline mediastinal widening.", "Borderline enlarged cardiomediastinal silhouette."),
}
# Sub-headers that name a finding: the header is no mention; the body decides.
HEADERS: dict[str, tuple[str, ...]] = {
    "Support Devices": ("Support devices", "Lines/tubes", "Tubes and lines", "Devices"),
    "Pneumothorax": ("Pneumothorax", "Pneumothorax", "Pneumothorax", "Pneumothorax"),
    "Pleural Effusion": ("Pleural effusion", "Effusion", "Pleural effusions", "Effusions"),
    "Fracture": ("Fractures", "Fracture", "Fractures", "Fracture"),
}
HEADER_NONE = ("None.", "None", "Negative.", "Absent.", "None seen.", "None identified.")
# Sentences that mention none of the 13 findings (shared by both splits: the frame, not the phrasing).
FILLERS = (
    "The trachea is midline.", "The visualized upper abdomen is unremarkable.", "Osseous structures are intact.",
    "Soft tissues are unremarkable.", "Comparison is made to the prior study.", "The lungs are well expanded.",
    "The hemidiaphragms are well defined.", "Degenerative changes of the thoracic spine.",
    "The pulmonary vasculature is normal.", "Both lungs are clear.", "Surgical clips in the right upper quadrant.",
    "The aorta is tortuous.", "Calcified granuloma in the left upper lobe.", "Mild thoracic scoliosis.",
    "The costophrenic angles are sharp.", "There is no acute bony abnormality.", "The hila are normal.",
    "Frontal and lateral views of the chest were obtained.", "Patient is rotated.", "Exam is limited by motion.",
    "Lungs are hyperinflated.", "Old healed granulomatous disease.", "The bones are osteopenic.",
    "Stable appearance of the chest.", "Cholecystectomy clips are noted.", "Overall appearance is unchanged.",
)
INDICATIONS = ("Indication: {M}?", "INDICATION: Evaluate for {m}.", "History: rule out {m}.",
               "CLINICAL HISTORY: Concern for {m}.")


def split_half(items: Sequence[str], split: str) -> tuple[str, ...]:
    """Dev: items 0, 2, 4, ...; test: items 1, 3, 5, ... (alternating, so both halves mix kinds)."""
    return tuple(items[0 if split == "dev" else 1::2])


def _cap(s: str) -> str:
    return s[0].upper() + s[1:] if s and not s[:3].isupper() else s


@dataclass
class Case:
    """One generated report: its text, the label of each of the 13 findings, and what it probes."""

    text: str
    labels: dict[str, int]  # finding -> class (BLANK when not mentioned)
    kinds: dict[str, str] = field(default_factory=dict)  # finding -> case kind of its target sentence(s)
    id: str = ""


class Builder:
    """Makes the reports of one split from its half of the phrasings."""

    def __init__(self, split: str, seed: int = 0) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        self.rng = random.Random(f"{seed}-{split}")
        self.synonyms = {f: split_half(s, split) for f, s in SYNONYMS.items()}
        self.templates = {k: split_half(t, split) for k, t in TEMPLATES.items()}
        self.borderline = {f: split_half(t, split) for f, t in BORDERLINE.items()}
        self.headers = {f: split_half(h, split) for f, h in HEADERS.items()}
        self.header_none = split_half(HEADER_NONE, split)

    # -- sentences ---------------------------------------------------------------------------------
    def sentence(self, finding: str, cls: int, kind: str = "plain", synonym: str | None = None) -> str:
        """One sentence that mentions `finding` with class `cls` (kind: plain, pseudo, borderline, abbreviation)."""
        r = self.rng
        if kind == "borderline":
            return r.choice(self.borderline[finding])
        if synonym is None:
            pool = self.synonyms[finding]
            if kind == "abbreviation":
                pool = tuple(s for s in pool if s in ABBREVIATIONS) or pool
            synonym = r.choice(pool)
        group = "pseudo" if kind == "pseudo" else CLASS_NAMES[cls]
        template = r.choice(self.templates[group])
        return template.format(m=synonym, M=_cap(synonym))

    def fillers(self, n: int) -> list[str]:
        return [self.rng.choice(FILLERS) for _ in range(n)]

    # -- report kinds ------------------------------------------------------------------------------
    def single(self) -> Case:
        """One finding, any class, a few fillers around it."""
        finding = self.rng.choice(SCORED)
        cls = self.rng.choice((POSITIVE, NEGATIVE, UNCERTAIN))
        has_abbrev = any(s in ABBREVIATIONS for s in self.synonyms[finding])
        kind = "abbreviation" if has_abbrev and self.rng.random() < 0.3 else "plain"
        return self._frame([(finding, cls, self.sentence(finding, cls, kind))], {finding: kind},
                           n_fillers=self.rng.randint(0, 3))

    def multi(self) -> Case:
        """Two to four findings with independent classes (a typical report)."""
        findings = self.rng.sample(SCORED, self.rng.randint(2, 4))
        parts = []
        for f in findings:
            cls = self.rng.choice((POSITIVE, NEGATIVE, UNCERTAIN))
            parts.append((f, cls, self.sentence(f, cls)))
        return self._frame(parts, {f: "multi" for f in findings}, n_fillers=self.rng.randint(0, 3))

    def long(self) -> Case:
        """The target finding deep inside 15-30 sentences of fillers and other, negated findings."""
        target = self.rng.choice(SCORED)
        cls = self.rng.choice((POSITIVE, NEGATIVE, UNCERTAIN))
        others = self.rng.sample([f for f in SCORED if f != target], 2)
        parts = [(f, NEGATIVE, self.sentence(f, NEGATIVE)) for f in others]
        n = self.rng.randint(15, 30)
        body = self.fillers(n)
        body.insert(n // 2, self.sentence(target, cls))
        return self._frame(parts, {target: "long"}, lead=body, labels={target: cls})

    def mixed(self) -> Case:
        """One finding twice, different certainty, different synonyms; CheXpert's precedence decides."""
        finding = self.rng.choice(SCORED)
        a, b = self.rng.sample((POSITIVE, NEGATIVE, UNCERTAIN), 2)
        syn = self.rng.sample(self.synonyms[finding], 2)
        first, second = self.sentence(finding, a, synonym=syn[0]), self.sentence(finding, b, synonym=syn[1])
        label = max(a, b, key=PRECEDENCE.__getitem__)
        lead = [first] + self.fillers(self.rng.randint(1, 4))
        return self._frame([(finding, label, second)], {finding: "mixed"}, lead=lead)

    def pseudo(self) -> Case:
        """A negation word that negates a change: the finding is present."""
        finding = self.rng.choice(SCORED)
        return self._frame([(finding, POSITIVE, self.sentence(finding, POSITIVE, "pseudo"))], {finding: "pseudo"},
                           n_fillers=self.rng.randint(0, 2))

    def hedge(self) -> Case:
        """Uncertain by a hedge (including "borderline" for the two size findings)."""
        finding = self.rng.choice(SCORED)
        kind = "borderline" if finding in BORDERLINE and self.rng.random() < 0.5 else "hedge"
        sent = self.sentence(finding, UNCERTAIN, "borderline" if kind == "borderline" else "plain")
        return self._frame([(finding, UNCERTAIN, sent)], {finding: kind}, n_fillers=self.rng.randint(0, 2))

    def widening(self) -> Case:
        """Mediastinal widening in its several wordings: Enlarged Cardiomediastinum."""
        f = "Enlarged Cardiomediastinum"
        cls = self.rng.choice((POSITIVE, NEGATIVE, UNCERTAIN))
        return self._frame([(f, cls, self.sentence(f, cls))], {f: "widening"}, n_fillers=self.rng.randint(0, 2))

    def header(self) -> Case:
        """A sub-header naming a finding: 'Support devices: None.' is negative, a body naming a
        device is positive; the header alone is never the mention."""
        finding = self.rng.choice(sorted(self.headers))
        head = self.rng.choice(self.headers[finding])
        if self.rng.random() < 0.5:
            cls, body = NEGATIVE, self.rng.choice(self.header_none)
        else:
            cls, body = POSITIVE, self.sentence(finding, POSITIVE)
        other = self.rng.choice([f for f in SCORED if f != finding])
        other_cls = self.rng.choice((POSITIVE, NEGATIVE, UNCERTAIN))
        lungs = "Lungs"
        if self.rng.random() < 0.5:  # structured reports write sub-headers in capitals
            head, lungs = head.upper(), lungs.upper()
        lines = [f"{head}: {body}", f"{lungs}: {self.sentence(other, other_cls)}"]
        self.rng.shuffle(lines)
        text = "FINDINGS:\n" + "\n".join(lines) + "\n" + " ".join(self.fillers(1))
        labels = {finding: cls, other: other_cls}
        return self._case(text, labels, {finding: "header"})

    def indication(self) -> Case:
        """The indication names a finding the findings never mention: not mentioned (not read)."""
        asked = self.rng.choice(SCORED)
        syn = self.rng.choice(self.synonyms[asked])
        head = self.rng.choice(INDICATIONS).format(m=syn, M=_cap(syn))
        other = self.rng.choice([f for f in SCORED if f != asked])
        cls = self.rng.choice((POSITIVE, NEGATIVE, UNCERTAIN))
        text = (f"{head}\n\nFINDINGS: {self.sentence(other, cls)} {' '.join(self.fillers(2))}\n\n"
                f"IMPRESSION: {' '.join(self.fillers(1))}")
        return self._case(text, {other: cls}, {asked: "indication", other: "plain"})

    # -- assembly ----------------------------------------------------------------------------------
    def _frame(self, parts: list[tuple[str, int, str]], kinds: dict[str, str], n_fillers: int = 0,
               lead: list[str] | None = None, labels: dict[str, int] | None = None) -> Case:
        """Sentences (parts after `lead`, fillers shuffled in) in one of three report layouts."""
        sentences = list(lead or [])
        rest = [s for _, _, s in parts] + self.fillers(n_fillers)
        self.rng.shuffle(rest)
        sentences += rest
        out = dict(labels or {})
        for f, cls, _ in parts:
            out[f] = max(out.get(f, BLANK), cls, key=PRECEDENCE.__getitem__)
        layout = self.rng.random()
        if layout < 0.4 or len(sentences) < 2:
            text = " ".join(sentences)
        elif layout < 0.8:
            cut = max(1, len(sentences) - self.rng.randint(1, 2))
            text = f"FINDINGS: {' '.join(sentences[:cut])}\n\nIMPRESSION: {' '.join(sentences[cut:])}"
        else:  # one sentence a line, CRLF, as some systems export them
            text = "FINDINGS:\r\n" + "\r\n".join(sentences)
        return self._case(text, out, kinds)

    def _case(self, text: str, labels: dict[str, int], kinds: dict[str, str]) -> Case:
        full = {f: BLANK for f in SCORED}
        full.update(labels)
        return Case(text, full, kinds)

    def build(self, n: int) -> list[Case]:
        """`n` reports, kinds in fixed proportions, in a seeded order."""
        makers: list[tuple[Callable[[], Case], float]] = [
            (self.single, 0.30), (self.multi, 0.15), (self.long, 0.08), (self.mixed, 0.12),
            (self.pseudo, 0.08), (self.hedge, 0.12), (self.widening, 0.05), (self.header, 0.05),
            (self.indication, 0.05)]
        cases = []
        for maker, share in makers:
            cases += [maker() for _ in range(max(1, round(n * share)))]
        self.rng.shuffle(cases)
        cases = cases[:n]
        for i, c in enumerate(cases):
            c.id = f"{self.split}-{i:05d}"
        return cases


def build(split: str, n: int = 2000, seed: int = 0) -> list[Case]:
    """The certainty set of one split (deterministic for `seed`)."""
    return Builder(split, seed).build(n)


# ---- scoring ------------------------------------------------------------------------------------
def gold_matrix(cases: Sequence[Case]) -> np.ndarray:
    """int8 [n, 13] class per scored finding."""
    return np.array([[c.labels[f] for f in SCORED] for c in cases], dtype=np.int8)


def scores(gold: np.ndarray, pred: np.ndarray, cases: Sequence[Case]) -> dict:
    """Four-class scores of `pred` [n, 13] against `gold` [n, 13] (see the module docstring)."""
    out: dict = {"n_reports": len(cases), "per_class": {}, "per_finding": {}, "kinds": {}}
    f1s = {}
    for cls in (POSITIVE, NEGATIVE, UNCERTAIN):
        tp = int(((pred == cls) & (gold == cls)).sum())
        fp = int(((pred == cls) & (gold != cls)).sum())
        fn = int(((pred != cls) & (gold == cls)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f1s[cls] = 2 * p * r / (p + r) if p + r else 0.0
        out["per_class"][CLASS_NAMES[cls]] = {"precision": p, "recall": r, "f1": f1s[cls], "support": tp + fn}
    out["macro_f1"] = float(np.mean(list(f1s.values())))
    out["uncertain_f1"] = f1s[UNCERTAIN]
    out["accuracy"] = float((pred == gold).mean())
    for j, f in enumerate(SCORED):
        per = []
        for cls in (POSITIVE, NEGATIVE, UNCERTAIN):
            tp = ((pred[:, j] == cls) & (gold[:, j] == cls)).sum()
            denom = (pred[:, j] == cls).sum() + (gold[:, j] == cls).sum()
            per.append(2 * tp / denom if denom else 0.0)
        out["per_finding"][f] = float(np.mean(per))
    right, total = Counter(), Counter()
    index = {f: j for j, f in enumerate(SCORED)}
    for i, c in enumerate(cases):
        for f, kind in c.kinds.items():
            total[kind] += 1
            right[kind] += int(pred[i, index[f]] == gold[i, index[f]])
    out["kinds"] = {k: {"right": right[k], "total": total[k]} for k in sorted(total)}
    confusion: dict[str, dict[str, int]] = defaultdict(dict)
    for g in CLASS_NAMES:
        for p in CLASS_NAMES:
            confusion[CLASS_NAMES[g]][CLASS_NAMES[p]] = int(((gold == g) & (pred == p)).sum())
    out["confusion"] = dict(confusion)
    return out


def print_scores(name: str, split: str, s: dict) -> None:
    print(f"== {name} on the certainty set, {split} half ({s['n_reports']} reports, {len(SCORED)} findings each)")
    print(f"macro F1 (positive / negative / uncertain): {s['macro_f1']:.3f}   uncertain F1: {s['uncertain_f1']:.3f}"
          f"   four-class accuracy: {s['accuracy']:.3f}")
    for cls, v in s["per_class"].items():
        print(f"  {cls:<10} P {v['precision']:.3f}  R {v['recall']:.3f}  F1 {v['f1']:.3f}  (support {v['support']})")
    print("  gold \\ predicted  " + "  ".join(f"{c[:8]:>8}" for c in s["confusion"]))
    for g, row in s["confusion"].items():
        print(f"  {g:<16} " + "  ".join(f"{v:>8}" for v in row.values()))
    print("  per finding (macro F1 over the three classes): " +
          ", ".join(f"{f} {v:.2f}" for f, v in s["per_finding"].items()))
    print("  target cells right, per case kind: " +
          ", ".join(f"{k} {v['right']}/{v['total']}" for k, v in s["kinds"].items()))


def label_with(model: str, texts: list[str]) -> np.ndarray:
    """int8 [n, 13] classes of the 13 scored findings from `radedge.ReportLabeler.load(model)`."""
    from radedge import ReportLabeler

    labeler = ReportLabeler.load(model)
    results = labeler(texts)
    cols = [FINDINGS.index(f) for f in SCORED]
    return np.stack([r.classes[cols] for r in results]).astype(np.int8)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks.certainty", __doc__.split("\n\n")[0])
    parser.add_argument("--model", default="rules", help="rules, default, a model name or folder")
    parser.add_argument("--split", choices=(*SPLITS, "both"), default="both", help="Open-i split(s) scored")
    parser.add_argument("--n", type=int, default=2000, help="reports per split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument("--failures", type=int, default=0,
                        help="print this many wrong reports of the DEV split (the test split is never shown)")
    parser.add_argument("--write", type=Path, default=None, help="write the reports and labels as JSONL here")
    parser.add_argument("--json", type=Path, default=None, help="write the scores as JSON here")
    args = parser.parse_args(argv)

    splits = SPLITS if args.split == "both" else (args.split,)
    payload = {}
    for split in splits:
        cases = build(split, args.n, args.seed)
        gold = gold_matrix(cases)
        pred = label_with(args.model, [c.text for c in cases])
        s = scores(gold, pred, cases)
        payload[split] = s
        print_scores(args.model, split, s)
        if split == "dev" and args.failures:
            shown = 0
            for i, c in enumerate(cases):
                wrong = [(f, CLASS_NAMES[int(gold[i, j])], CLASS_NAMES[int(pred[i, j])])
                         for j, f in enumerate(SCORED) if gold[i, j] != pred[i, j]]
                if wrong and shown < args.failures:
                    shown += 1
                    print(f"  [{c.id}] {c.text!r}\n      " + "; ".join(f"{f}: gold {g}, got {p}" for f, g, p in wrong))
        if args.write:
            path = args.write.with_name(f"{args.write.stem}-{split}{args.write.suffix}")
            with path.open("w", encoding="utf-8") as f:
                for c in cases:
                    f.write(json.dumps({"id": c.id, "text": c.text, "kinds": c.kinds,
                                        "labels": {k: CLASS_NAMES[v] for k, v in c.labels.items()}}) + "\n")
        print()
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "n": args.n, "seed": args.seed, **payload}, indent=2),
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    run_command(main, "benchmarks.certainty")
