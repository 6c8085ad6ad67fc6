//! Set-up shared by the property tests of the convexity analysis.

use std::path::{Path, PathBuf};

use bilevel_core::oracle::LowerHvp;
use bilevel_dsl::Compiled;

/// A folder `name` under the test binary's temporary directory holding the
/// table `d.csv` with the contents `csv` (written once).
pub fn table_dir(name: &str, csv: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("d.csv");
    if !path.exists() {
        std::fs::write(&path, csv).expect("write csv");
    }
    dir
}

/// The symmetrised dense Hessian of g in all lower coordinates at (x, y)
/// on `batch`, one compiled HVP per unit vector.
pub fn dense_hessian(
    c: &mut Compiled,
    x: &[f64],
    y: &[f64],
    batch: &bilevel_dsl::Batch,
) -> nalgebra::DMatrix<f64> {
    let n = y.len();
    let mut h = nalgebra::DMatrix::<f64>::zeros(n, n);
    let mut e = vec![0.0; n];
    let mut col = vec![0.0; n];
    for j in 0..n {
        e.fill(0.0);
        e[j] = 1.0;
        c.hvp_yy(x, y, &e, batch, &mut col);
        for i in 0..n {
            h[(i, j)] = col[i];
        }
    }
    (&h + h.transpose()) * 0.5
}
