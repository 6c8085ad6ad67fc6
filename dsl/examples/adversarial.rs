//! Writes the adversarial inputs of issue 14 §4 (`tests/adversarial`) to a
//! folder, one `NAME.bilevel` each, for `/usr/bin/time -v bilevel check`:
//!
//! ```text
//! cargo run -p bilevel-dsl --example adversarial -- /tmp/adversarial
//! ```

#[path = "../tests/adversarial/inputs.rs"]
mod inputs;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: adversarial OUT_DIR");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    for (name, src) in inputs::all() {
        let path = dir.join(format!("{name}.bilevel"));
        std::fs::write(&path, &src)?;
        println!("{} ({} bytes)", path.display(), src.len());
    }
    Ok(())
}
