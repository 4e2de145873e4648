//! Embeds every committed `ptx/*.ptx` as a `PtxModule` constant (named after the file, upper
//! case) plus `ALL`, so adding a kernel family needs no edit here.
use std::fmt::Write;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ptx");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.ends_with(".ptx")).collect())
        .unwrap_or_default();
    names.sort();
    let mut out = String::new();
    for n in &names {
        let stem = n.trim_end_matches(".ptx");
        println!("cargo:rerun-if-changed={}", dir.join(n).display());
        writeln!(out, "pub const {}: PtxModule = PtxModule {{ name: {:?}, src: include_str!({:?}) }};", stem.to_uppercase(), stem, dir.join(n).display().to_string()).unwrap();
    }
    let all: Vec<String> = names.iter().map(|n| format!("&{}", n.trim_end_matches(".ptx").to_uppercase())).collect();
    writeln!(out, "pub const ALL: &[&PtxModule] = &[{}];", all.join(", ")).unwrap();
    std::fs::write(Path::new(&std::env::var("OUT_DIR").unwrap()).join("ptx_modules.rs"), out).unwrap();
}
