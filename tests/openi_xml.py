"""A minimal Open-i report XML (the NLMCXR layout) for the reader and label-reports tests."""
from __future__ import annotations

from pathlib import Path

OPENI_XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation>
  <meta type="rr"/>
  <uId id="CXR{n}"/>
  <MedlineCitation Owner="Indiana University" Status="supplied">
    <Article PubModel="Electronic">
      <Journal><JournalIssue><PubDate><Year>2013</Year></PubDate></JournalIssue></Journal>
      <ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle>
      <Abstract>
        <AbstractText Label="COMPARISON">None.</AbstractText>
        <AbstractText Label="INDICATION">Rule out pneumonia.</AbstractText>
        <AbstractText Label="FINDINGS">{findings}</AbstractText>
        <AbstractText Label="IMPRESSION">{impression}</AbstractText>
      </Abstract>
    </Article>
  </MedlineCitation>
  <MeSH><major>normal</major></MeSH>
  <parentImage id="CXR{n}_1_IM-0001-3001"><figureId>F1</figureId></parentImage>
</eCitation>
"""


def write_openi(folder: Path, n: int, findings: str, impression: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{n}.xml"
    path.write_text(OPENI_XML.format(n=n, findings=findings, impression=impression), encoding="utf-8")
    return path
