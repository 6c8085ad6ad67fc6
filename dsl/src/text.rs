//! Text for model backends: a GloVe-style tokenizer, the vocabulary that
//! maps words to token ids, and vocabulary files.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;

/// Splits text into lowercase tokens the way GloVe 6B's corpus was
/// tokenized (close enough for lookups): runs of letters and digits are
/// words, every other visible character is a token of its own, and the
/// clitics `n't`, `'s`, `'re`, `'ve`, `'ll`, `'d`, `'m` are split off
/// ("don't" → "do", "n't").
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() {
            let start = i;
            // A word: alphanumerics, with inner apostrophes kept for the
            // clitic split below.
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || (is_apostrophe(chars[i])
                        && i + 1 < chars.len()
                        && chars[i + 1].is_alphanumeric()))
            {
                i += 1;
            }
            let word: String = chars[start..i]
                .iter()
                .map(|&c| if is_apostrophe(c) { '\'' } else { c })
                .collect();
            split_clitics(&word, &mut out);
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(if is_apostrophe(c) {
                '\''.to_string()
            } else {
                c.to_string()
            });
            i += 1;
        }
    }
    out
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

fn split_clitics(word: &str, out: &mut Vec<String>) {
    if let Some(stem) = word.strip_suffix("n't") {
        if !stem.is_empty() && !stem.contains('\'') {
            out.push(stem.to_string());
            out.push("n't".to_string());
            return;
        }
    }
    if let Some(pos) = word.find('\'') {
        let (stem, clitic) = word.split_at(pos);
        if ["'s", "'re", "'ve", "'ll", "'d", "'m"].contains(&clitic) {
            out.push(stem.to_string());
            out.push(clitic.to_string());
            return;
        }
        // Any other apostrophe: keep the pieces as separate words.
        for (k, piece) in word.split('\'').enumerate() {
            if k > 0 {
                out.push("'".to_string());
            }
            if !piece.is_empty() {
                out.push(piece.to_string());
            }
        }
        return;
    }
    out.push(word.to_string());
}

/// Words and their token ids. Id 0 is the unknown word `<unk>`; the other
/// ids follow the order in which the words were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, u32>,
}

/// The unknown word's spelling (token id 0).
pub const UNK: &str = "<unk>";

impl Vocab {
    /// A vocabulary of `<unk>` followed by `words` (duplicates and `<unk>`
    /// itself are skipped, first occurrence wins).
    pub fn new<I, S>(words: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut v = Vocab {
            words: vec![UNK.to_string()],
            index: HashMap::from([(UNK.to_string(), 0)]),
        };
        for w in words {
            let w = w.into();
            if !v.index.contains_key(&w) {
                v.index.insert(w.clone(), v.words.len() as u32);
                v.words.push(w);
            }
        }
        v
    }

    /// The words of `texts` seen at least `min_count` times, most frequent
    /// first (ties in order of first appearance).
    pub fn from_texts<S: AsRef<str>>(texts: &[S], min_count: usize) -> Self {
        let mut counts: HashMap<String, (usize, usize)> = HashMap::new();
        let mut next = 0;
        for t in texts {
            for w in tokenize(t.as_ref()) {
                let e = counts.entry(w).or_insert_with(|| {
                    next += 1;
                    (0, next)
                });
                e.0 += 1;
            }
        }
        let mut words: Vec<(String, usize, usize)> = counts
            .into_iter()
            .filter(|(_, (c, _))| *c >= min_count)
            .map(|(w, (c, first))| (w, c, first))
            .collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        Vocab::new(words.into_iter().map(|(w, _, _)| w))
    }

    /// Number of token ids (words plus `<unk>`).
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Always `false`: `<unk>` is always present.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The id of `word`, if it is in the vocabulary.
    pub fn id(&self, word: &str) -> Option<u32> {
        self.index.get(word).copied()
    }

    /// The word of token id `id`.
    pub fn word(&self, id: u32) -> Option<&str> {
        self.words.get(id as usize).map(String::as_str)
    }

    /// The words, in id order (`<unk>` first).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Token ids of `text`. Unknown words become `<unk>` (id 0), or are
    /// dropped when `drop_unknown` is set (the official code keeps only
    /// words that have a word vector).
    pub fn encode(&self, text: &str, drop_unknown: bool) -> Vec<u32> {
        tokenize(text)
            .iter()
            .filter_map(|w| match self.id(w) {
                Some(id) => Some(id),
                None if drop_unknown => None,
                None => Some(0),
            })
            .collect()
    }
}

/// Reads a file, gunzipping it when its name ends in `.gz`.
///
/// # Errors
/// The file cannot be read, or is not valid gzip.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The 1-based line of byte offset `at`.
fn text_line(bytes: &[u8], at: usize) -> usize {
    bytes[..at].split(|&b| b == b'\n').count()
}

/// The words of a vocabulary file: the first whitespace-separated field of
/// every non-empty line, in order (a word list, or a GloVe text file).
///
/// # Errors
/// `(line, message)` for invalid UTF-8 or a repeated word (1-based line).
pub fn parse_words(bytes: &[u8]) -> Result<Vec<String>, (usize, String)> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = text_line(bytes, e.valid_up_to());
        (line, "not valid UTF-8".to_string())
    })?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut words = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let Some(w) = line.split_whitespace().next() else {
            continue;
        };
        if let Some(first) = seen.insert(w, k + 1) {
            return Err((k + 1, format!("`{w}` is repeated (first on line {first})")));
        }
        words.push(w.to_string());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_glove_conventions() {
        assert_eq!(
            tokenize("I don't LOVE it's fit... 10/10!"),
            ["i", "do", "n't", "love", "it", "'s", "fit", ".", ".", ".", "10", "/", "10", "!"]
        );
        assert_eq!(
            tokenize("rock'n'roll  café"),
            ["rock", "'", "n", "'", "roll", "café"]
        );
        assert_eq!(tokenize("can\u{2019}t"), ["ca", "n't"]);
        assert!(tokenize("  \t ").is_empty());
    }

    #[test]
    fn vocabulary_ids_and_encoding() {
        let v = Vocab::from_texts(&["b a b", "c b a"], 2);
        assert_eq!(v.words(), ["<unk>", "b", "a"]);
        assert_eq!(v.encode("a c b", false), [2, 0, 1]);
        assert_eq!(v.encode("a c b", true), [2, 1]);
        assert_eq!(v.word(1), Some("b"));
        assert_eq!(v.id("zzz"), None);
        assert_eq!(Vocab::new(["x", "x", "<unk>", "y"]).len(), 3);
    }
}
