//! `aria-bridge tokenize` prints the reference's ids and tokens as one JSON array.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aria-bridge"))
        .arg("tokenize")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/aria")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

/// Sorts the prefix (before `<S>`, random in the reference) so that sequences compare.
fn canonical(v: &Value, start: &Value) -> Vec<String> {
    let items: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.to_string())
        .collect();
    let at = v
        .as_array()
        .unwrap()
        .iter()
        .position(|x| x == start)
        .unwrap();
    let mut prefix = items[..at].to_vec();
    prefix.sort();
    prefix.extend_from_slice(&items[at..]);
    prefix
}

#[test]
fn prompt_case_ids_and_tokens_match_golden() {
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("golden/waltz.json")).unwrap())
            .unwrap();
    let case = &golden["cases"]["prompt"];
    let (ok, out, err) = run(&[&fixture("midi/waltz.mid"), "--case", "prompt", "--ids"]);
    assert!(ok, "{err}");
    let ids: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        canonical(&ids, &Value::from(0)),
        canonical(&case["ids"], &Value::from(0))
    );
    let (ok, out, err) = run(&[&fixture("midi/waltz.mid"), "--case", "prompt"]);
    assert!(ok, "{err}");
    let tokens: Value = serde_json::from_str(&out).unwrap();
    let s = Value::from("<S>");
    assert_eq!(canonical(&tokens, &s), canonical(&case["tokens"], &s));
}

#[test]
fn a_file_that_is_not_midi_fails_with_a_message_naming_it() {
    let path = fixture("golden/vocab.json");
    let (ok, _, err) = run(&[&path]);
    assert!(!ok);
    assert!(err.contains("vocab.json") && err.contains("MIDI"), "{err}");
}

#[test]
fn an_unsupported_vocabulary_size_is_refused() {
    let (ok, _, err) = run(&[&fixture("midi/basic.mid"), "--vocab-size", "1000"]);
    assert!(!ok);
    assert!(err.contains("17727"), "{err}");
}
