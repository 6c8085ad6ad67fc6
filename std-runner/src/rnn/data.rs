//! Loaders for the vendored text data sets and word vectors under `data/`
//! (see `data/README.md` for their sources and licences). Every malformed
//! file is reported by name and 1-based line.
//!
//! Files are UTF-8, optionally gzip-compressed (by the `.gz` suffix). The
//! labelled sets are tab-separated with a header row; the word vectors are
//! in GloVe's text format (`word v₁ … v_d` per line).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use rand_core::SeedableRng;

use super::tokenizer::Vocab;
use super::RnnError;

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextExample {
    /// The group it belongs to (product class, domain; empty when none).
    pub group: String,
    /// The class (0 or 1 for the binary sets).
    pub label: u32,
    /// The raw text.
    pub text: String,
}

/// Reads a text file (gunzipped when its name ends in `.gz`) into lines.
pub fn read_lines(path: &Path) -> Result<Vec<String>, RnnError> {
    let file = path.display().to_string();
    let io = |source| RnnError::Io {
        file: file.clone(),
        source,
    };
    let f = File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut lines = Vec::new();
    for (k, line) in BufReader::new(reader).lines().enumerate() {
        match line {
            Ok(l) => lines.push(l),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(RnnError::Data {
                    file,
                    line: k + 1,
                    message: "not valid UTF-8 (or not valid gzip)".into(),
                })
            }
            Err(e) => return Err(io(e)),
        }
    }
    Ok(lines)
}

/// Reads a labelled tab-separated file with a header row. `text`, `label`
/// and (optionally) `group` name its columns; labels must be integers
/// below `classes`.
pub fn load_labelled_tsv(
    path: &Path,
    text: &str,
    label: &str,
    group: Option<&str>,
    classes: u32,
) -> Result<Vec<TextExample>, RnnError> {
    let file = path.display().to_string();
    let err = |line: usize, message: String| RnnError::Data {
        file: file.clone(),
        line,
        message,
    };
    let lines = read_lines(path)?;
    let Some(header) = lines.first() else {
        return Err(err(1, "empty file: expected a header row".into()));
    };
    let cols: Vec<&str> = header.split('\t').collect();
    let find = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or_else(|| err(1, format!("no column `{name}` in the header")))
    };
    let (ti, li) = (find(text)?, find(label)?);
    let gi = group.map(find).transpose()?;
    let mut out = Vec::with_capacity(lines.len() - 1);
    for (k, line) in lines.iter().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != cols.len() {
            return Err(err(
                k + 1,
                format!("{} fields, the header has {}", fields.len(), cols.len()),
            ));
        }
        let lab: u32 = fields[li]
            .parse()
            .ok()
            .filter(|&l| l < classes)
            .ok_or_else(|| {
                err(
                    k + 1,
                    format!("label `{}` is not in 0..{classes}", fields[li]),
                )
            })?;
        out.push(TextExample {
            group: gi.map_or_else(String::new, |g| fields[g].to_string()),
            label: lab,
            text: fields[ti].to_string(),
        });
    }
    Ok(out)
}

/// The Women's E-Commerce Clothing Reviews (`data/clothing_reviews.tsv.gz`):
/// group = product class, label = recommended (1) or not (0), text = title
/// and review.
pub fn load_clothing(path: &Path) -> Result<Vec<TextExample>, RnnError> {
    load_labelled_tsv(path, "text", "recommended", Some("class"), 2)
}

/// The VADER ground-truth tweets (`data/vader_tweets.tsv.gz`): label =
/// sign of the mean human rating (1 positive, 0 negative).
pub fn load_vader_tweets(path: &Path) -> Result<Vec<TextExample>, RnnError> {
    load_labelled_tsv(path, "text", "label", None, 2)
}

/// The UCI sentiment-labelled sentences (`data/uci_sentences.tsv.gz`):
/// group = domain (amazon, imdb, yelp), label 1 positive, 0 negative.
pub fn load_uci_sentences(path: &Path) -> Result<Vec<TextExample>, RnnError> {
    load_labelled_tsv(path, "text", "label", Some("domain"), 2)
}

/// Word vectors: `words[i]` has the vector `values[i·dim..(i+1)·dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WordVectors {
    /// The words, in file order.
    pub words: Vec<String>,
    /// Vector dimension.
    pub dim: usize,
    /// Row-major `words.len() × dim` values.
    pub values: Vec<f32>,
}

impl WordVectors {
    /// Reads GloVe's text format: one word and `dim` numbers per line,
    /// separated by single spaces; every line must have the same `dim` and
    /// no word may repeat.
    pub fn load(path: &Path) -> Result<Self, RnnError> {
        let file = path.display().to_string();
        let err = |line: usize, message: String| RnnError::Data {
            file: file.clone(),
            line,
            message,
        };
        let lines = read_lines(path)?;
        let mut wv = WordVectors {
            words: Vec::with_capacity(lines.len()),
            dim: 0,
            values: Vec::new(),
        };
        let mut seen = HashMap::new();
        for (k, line) in lines.iter().enumerate() {
            let mut parts = line.split(' ');
            let word = parts.next().unwrap_or_default();
            if word.is_empty() {
                return Err(err(k + 1, "empty word".into()));
            }
            let before = wv.values.len();
            for p in parts {
                let x: f32 = p
                    .parse()
                    .map_err(|_| err(k + 1, format!("`{p}` is not a number")))?;
                if !x.is_finite() {
                    return Err(err(k + 1, format!("`{p}` is not finite")));
                }
                wv.values.push(x);
            }
            let d = wv.values.len() - before;
            if k == 0 {
                if d == 0 {
                    return Err(err(1, "a word without a vector".into()));
                }
                wv.dim = d;
            } else if d != wv.dim {
                return Err(err(
                    k + 1,
                    format!("{d} numbers, the first line has {}", wv.dim),
                ));
            }
            if seen.insert(word.to_string(), k + 1).is_some() {
                return Err(err(k + 1, format!("`{word}` appears twice")));
            }
            wv.words.push(word.to_string());
        }
        if wv.words.is_empty() {
            return Err(err(0, "no word vectors".into()));
        }
        Ok(wv)
    }

    /// The vector of word `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// The vocabulary `<unk>` + these words, in file order.
    pub fn vocab(&self) -> Vocab {
        Vocab::new(self.words.iter().cloned())
    }

    /// A `vocab.len() × dim` table for `vocab`: each word's vector when it
    /// has one, otherwise (and for `<unk>`) a uniform draw in ±0.1 from
    /// `seed`. Returns the table and how many words had a vector.
    pub fn table_for(&self, vocab: &Vocab, seed: u64) -> (Vec<f32>, usize) {
        let index: HashMap<&str, usize> = self
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), i))
            .collect();
        let mut rng = bilevel_core::DefaultRng::seed_from_u64(seed);
        let mut table = Vec::with_capacity(vocab.len() * self.dim);
        let mut found = 0;
        for w in vocab.words() {
            // Draw for every row so a row's value does not depend on which
            // other words have vectors.
            let random: Vec<f32> = (0..self.dim)
                .map(|_| (0.2 * bilevel_core::random::uniform(&mut rng) - 0.1) as f32)
                .collect();
            if let Some(&i) = index.get(w.as_str()) {
                table.extend_from_slice(self.vector(i));
                found += 1;
            } else {
                table.extend_from_slice(&random);
            }
        }
        (table, found)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn write(name: &str, body: &[u8], gz: bool) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bilevel-rnn-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut f = File::create(&path).unwrap();
        if gz {
            let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap();
        } else {
            f.write_all(body).unwrap();
        }
        path
    }

    #[test]
    fn labelled_files_load_and_errors_name_the_line() {
        let p = write(
            "ok.tsv.gz",
            b"class\trecommended\trating\ttext\nDresses\t1\t5\tlove it\nKnits\t0\t2\tno\n",
            true,
        );
        let ex = load_clothing(&p).unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(
            ex[1],
            TextExample {
                group: "Knits".into(),
                label: 0,
                text: "no".into()
            }
        );

        let p = write(
            "bad.tsv",
            b"domain\tlabel\ttext\nyelp\t1\tgood\nyelp\t7\tbad\n",
            false,
        );
        let e = load_uci_sentences(&p).unwrap_err().to_string();
        assert!(e.ends_with("bad.tsv:3: label `7` is not in 0..2"), "{e}");
        let p = write("short.tsv", b"domain\tlabel\ttext\nyelp\t1\n", false);
        let e = load_uci_sentences(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("short.tsv:2: 2 fields, the header has 3"),
            "{e}"
        );
        let p = write("nolabel.tsv", b"id\ttext\n1\thi\n", false);
        let e = load_vader_tweets(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("nolabel.tsv:1: no column `label` in the header"),
            "{e}"
        );
        let e = load_vader_tweets(Path::new("/nonexistent/x.tsv"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/x.tsv: "), "{e}");
        let p = write("notgz.tsv.gz", b"plain text", false);
        assert!(load_vader_tweets(&p).is_err());
    }

    #[test]
    fn word_vectors_load_and_errors_name_the_line() {
        let p = write("v.txt.gz", b"the 0.5 -1\ncat 2 3e-1\n", true);
        let wv = WordVectors::load(&p).unwrap();
        assert_eq!(wv.dim, 2);
        assert_eq!(wv.vector(1), &[2.0, 0.3]);
        let vocab = Vocab::new(["cat", "dog"]);
        let (table, found) = wv.table_for(&vocab, 3);
        assert_eq!(found, 1);
        assert_eq!(&table[2..4], &[2.0, 0.3]);
        assert!(table[4..6].iter().all(|x| x.abs() <= 0.1));
        assert_eq!(wv.vocab().words(), ["<unk>", "the", "cat"]);

        for (body, want) in [
            (
                &b"a 1 2\nb 1\n"[..],
                "v2.txt:2: 1 numbers, the first line has 2",
            ),
            (&b"a 1 2\nb 1 x\n"[..], "v2.txt:2: `x` is not a number"),
            (&b"a 1 2\na 1 2\n"[..], "v2.txt:2: `a` appears twice"),
            (&b"a\n"[..], "v2.txt:1: a word without a vector"),
        ] {
            let p = write("v2.txt", body, false);
            let e = WordVectors::load(&p).unwrap_err().to_string();
            assert!(e.ends_with(want), "{e} vs {want}");
        }
    }
}
