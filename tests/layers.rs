//! The layers stay apart: only `src/midi/ports/` talks to midir, only `src/aria/` to ONNX Runtime,
//! and the pure core (clock, engine, music, the MIDI bytes and files) never reaches into the
//! model or the port adapters. A change that breaks this fails here, naming the file and line.

use std::path::{Path, PathBuf};

/// A rule: files under none of `allowed` must not mention `what` in code (comments are skipped).
struct Rule {
    what: &'static str,
    allowed: &'static [&'static str],
    matches: fn(&str) -> bool,
}

fn uses_crate(line: &str, name: &str) -> bool {
    // `use midir...`, `midir::X`, `::midir::X`, `extern crate midir`.
    let code = line.trim_start();
    code.starts_with(&format!("use {name}::"))
        || code.starts_with(&format!("use {name};"))
        || code.starts_with(&format!("use {name} as"))
        || code.starts_with(&format!("pub use {name}::"))
        || code.starts_with(&format!("extern crate {name}"))
        || word_path(code, name)
}

/// `name::` at the start of a path: `midir::X` or the global `::midir::X`, but not a segment
/// inside another path (`crate::aria::sort::`) nor the tail of a longer name (`abort::`).
fn word_path(code: &str, name: &str) -> bool {
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let needle = format!("{name}::");
    let b = code.as_bytes();
    code.match_indices(&needle).any(|(at, _)| match at {
        0 => true,
        1 => !ident(b[0]) && b[0] != b':',
        _ if &code[at - 2..at] == "::" => at == 2 || !ident(b[at - 3]),
        _ => !ident(b[at - 1]) && b[at - 1] != b':',
    })
}

const RULES: &[Rule] = &[
    Rule {
        what: "the midir crate",
        allowed: &["src/midi/ports/"],
        matches: |l| uses_crate(l, "midir"),
    },
    Rule {
        what: "the ort crate (ONNX Runtime)",
        allowed: &["src/aria/"],
        matches: |l| uses_crate(l, "ort"),
    },
    Rule {
        what: "the model (crate::aria)",
        allowed: &["src/aria/", "src/cli/", "src/main.rs"],
        matches: |l| l.contains("crate::aria"),
    },
    Rule {
        what: "the port adapters (crate::midi::ports)",
        allowed: &["src/midi/ports/", "src/cli/", "src/main.rs"],
        matches: |l| l.contains("crate::midi::ports"),
    },
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `(file:line, rule)` breaking a rule in the tree under `root`.
fn violations(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(
        files.len() > 20,
        "expected the crate's sources under {root:?}"
    );
    let mut found = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for rule in RULES {
                let allowed = rule.allowed.iter().any(|a| rel.starts_with(a));
                if !allowed && (rule.matches)(code) {
                    found.push(format!("{rel}:{}: uses {}", n + 1, rule.what));
                }
            }
        }
    }
    found
}

#[test]
fn only_the_port_adapters_import_midir_and_only_the_model_imports_ort() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = violations(root);
    assert!(
        found.is_empty(),
        "layer boundaries broken (see README, \"How it works\"):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_each_kind_of_import() {
    for line in [
        "use midir::MidiInput;",
        "let x = midir::MidiOutput::new(\"a\");",
        "fn f(_: ::midir::Ignore) {}",
        "extern crate midir;",
    ] {
        assert!(uses_crate(line, "midir"), "missed: {line}");
    }
    for line in [
        "use ort::session::Session;",
        "let v = ort::value::Tensor::from_array(a);",
    ] {
        assert!(uses_crate(line, "ort"), "missed: {line}");
    }
    for line in [
        "use crate::report::stats;",
        "let n = abort::x();",
        "v.sort::<u8>();",
        "crate::aria::sort::f();",
    ] {
        assert!(!uses_crate(line, "ort"), "false alarm: {line}");
    }
}

#[test]
fn a_core_file_importing_the_model_is_reported_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    for sub in ["engine", "aria", "midi/ports", "cli"] {
        std::fs::create_dir_all(src.join(sub)).expect("mkdir");
    }
    for i in 0..24 {
        std::fs::write(src.join(format!("cli/f{i}.rs")), "use crate::aria::x;\n").expect("write");
    }
    std::fs::write(
        src.join("engine/worker.rs"),
        "// use ort::x; (a comment)\nuse ort::session::Session;\nuse crate::aria::model::AriaModel;\n",
    )
    .expect("write");
    std::fs::write(src.join("aria/model.rs"), "use ort::value::Tensor;\n").expect("write");
    std::fs::write(src.join("midi/ports/backend.rs"), "use midir::MidiInput;\n").expect("write");
    let found = violations(dir.path());
    assert_eq!(
        found,
        vec![
            "src/engine/worker.rs:2: uses the ort crate (ONNX Runtime)".to_string(),
            "src/engine/worker.rs:3: uses the model (crate::aria)".to_string(),
        ]
    );
}
