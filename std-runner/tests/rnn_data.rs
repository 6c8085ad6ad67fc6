//! The vendored data sets under `data/` load, have the documented sizes and
//! labels, and the GloVe subset covers the corpora through the Rust
//! tokenizer; a real batch runs through the model.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bilevel_dsl::ModelBackend;
use bilevel_runner::rnn::data::{
    load_clothing, load_uci_sentences, load_vader_tweets, TextExample, WordVectors,
};
use bilevel_runner::rnn::{OwnedBatch, RnnConfig, RnnModel};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(name)
}

fn label_counts(ex: &[TextExample]) -> [usize; 2] {
    let mut c = [0, 0];
    for e in ex {
        c[e.label as usize] += 1;
    }
    c
}

#[test]
fn vendored_sets_have_the_documented_shape() {
    let clothing = load_clothing(&data("clothing_reviews.tsv.gz")).unwrap();
    assert_eq!(clothing.len(), 22_626);
    let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &clothing {
        *per_class.entry(&e.group).or_default() += 1;
    }
    assert_eq!(per_class.len(), 18);
    assert!(per_class.values().all(|&n| n >= 100));
    assert_eq!(per_class["Dresses"], 6145);
    assert_eq!(label_counts(&clothing), [4101, 18_525]);

    let vader = load_vader_tweets(&data("vader_tweets.tsv.gz")).unwrap();
    assert_eq!(label_counts(&vader), [1299, 2897]);

    let uci = load_uci_sentences(&data("uci_sentences.tsv.gz")).unwrap();
    assert_eq!(uci.len(), 3000);
    assert_eq!(label_counts(&uci), [1500, 1500]);
    for d in ["amazon", "imdb", "yelp"] {
        assert_eq!(uci.iter().filter(|e| e.group == d).count(), 1000);
    }

    let glove = WordVectors::load(&data("glove.6B.50d.subset.txt.gz")).unwrap();
    assert_eq!(glove.dim, 50);
    assert_eq!(glove.words.len(), 17_827);
    // GloVe 6B 50d, first row: "the 0.418 0.24968 -0.41242 …".
    assert_eq!(glove.words[0], "the");
    assert_eq!(&glove.vector(0)[..3], &[0.418, 0.249_68, -0.412_42]);

    // Coverage through the Rust tokenizer.
    let vocab = glove.vocab();
    let (mut known, mut total) = (0usize, 0usize);
    for e in clothing.iter().chain(&vader).chain(&uci) {
        let ids = vocab.encode(&e.text, false);
        total += ids.len();
        known += ids.iter().filter(|&&i| i != 0).count();
    }
    assert!(known as f64 > 0.99 * total as f64, "{known} of {total}");

    // A real batch through the model with fixed GloVe vectors.
    let (table, found) = glove.table_for(&vocab, 1);
    assert_eq!(found, 17_827);
    let cfg = RnnConfig {
        hidden: 16,
        ..RnnConfig::new(vocab.len(), 2)
    };
    let model = RnnModel::<f32>::new(cfg, Some(&table), 1).unwrap();
    let seqs: Vec<Vec<u32>> = vader[..8]
        .iter()
        .map(|e| vocab.encode(&e.text, true))
        .collect();
    let batch = OwnedBatch::from_sequences(&seqs, 64);
    model.check_batch(&batch.view()).unwrap();
    let mut theta = vec![0.0; model.num_params()];
    model.init_params(3, &mut theta);
    let mut z = vec![0.0; 16];
    model.forward(&theta, &batch.view(), &mut z);
    assert!(z.iter().all(|x| x.is_finite()));
}
