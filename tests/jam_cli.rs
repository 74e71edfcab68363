//! `aria-bridge jam` driven as a user runs it: the bundled model on the bundled human part.

use std::path::Path;
use std::process::Command;

fn jam(dir: &Path, name: &str, seed: &str) -> (std::process::Output, Vec<u8>) {
    let out = dir.join(format!("{name}.mid"));
    let output = Command::new(env!("CARGO_BIN_EXE_aria-bridge"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "jam",
            "--input",
            "examples/human.mid",
            "--bpm",
            "120",
            "--assume-latency-ms",
            "300",
            "--seed",
            seed,
        ])
        .arg("--out")
        .arg(&out)
        .arg("--plot")
        .arg(dir.join(format!("{name}.png")))
        .output()
        .expect("run aria-bridge jam");
    let bytes = std::fs::read(&out).unwrap_or_default();
    (output, bytes)
}

#[test]
fn the_demo_jam_writes_a_session_and_its_piano_roll_and_repeats_itself_with_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_bytes) = jam(dir.path(), "a", "7");
    let stdout = String::from_utf8_lossy(&a.stdout);
    assert!(
        a.status.success(),
        "jam failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert!(
        stdout.contains("windows: 16 | on time: 16 | missed: 0 | dropped: 0"),
        "{stdout}"
    );
    assert!(std::fs::metadata(dir.path().join("a.png")).unwrap().len() > 10_000);
    let smf = midly::Smf::parse(&a_bytes).unwrap();
    assert_eq!(smf.tracks.len(), 3);

    // Virtual time with an assumed latency and one seed: the same session, byte for byte.
    let (_, b_bytes) = jam(dir.path(), "b", "7");
    assert_eq!(a_bytes, b_bytes);
    let (_, c_bytes) = jam(dir.path(), "c", "8");
    assert_ne!(a_bytes, c_bytes, "another seed should play something else");
}

#[test]
fn a_missing_input_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aria-bridge"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["jam", "--input", "no/such/part.mid", "--out"])
        .arg(dir.path().join("x.mid"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("no/such/part.mid"), "{stderr}");
}
