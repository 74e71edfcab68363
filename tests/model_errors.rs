//! Bad input at startup gives a clear error that says what to install or pass: a missing or
//! corrupt model file, a model with other inputs, a vocabulary the tokenizer does not know, a
//! missing ONNX Runtime library, and CUDA asked for where it cannot be registered.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aria_bridge::aria::generator::{AriaGenerator, AriaSetupError};
use aria_bridge::aria::model::{AriaModel, ModelError, ModelOptions};
use aria_bridge::aria::runtime::{locate_library, Runtime};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load(path: &Path) -> Result<AriaModel, ModelError> {
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    AriaModel::load(rt, path, &ModelOptions::default())
}

fn python(args: &[&str]) {
    let status = Command::new("python3")
        .args(args)
        .status()
        .expect("python3 is needed (scripts/setup.sh installs numpy and onnx)");
    assert!(status.success(), "python3 {args:?} failed");
}

#[test]
fn missing_model_file_says_how_to_export_one() {
    let err = load(Path::new("/nonexistent/aria.onnx")).unwrap_err();
    assert!(matches!(err, ModelError::NotFound { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/aria.onnx") && msg.contains("export_onnx.py"),
        "{msg}"
    );
}

#[test]
fn corrupt_model_file_is_a_load_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.onnx");
    std::fs::write(&path, b"\x08\x07this is not a protobuf model\xff\xfe").unwrap();
    let err = load(&path).unwrap_err();
    assert!(matches!(err, ModelError::Load { .. }), "{err}");
    assert!(err.to_string().contains("broken.onnx"));
}

#[test]
fn truncated_model_file_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.onnx");
    let bytes = std::fs::read(root().join("models/aria-tiny-dev.onnx")).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(load(&path).unwrap_err(), ModelError::Load { .. }));
}

#[test]
fn model_with_other_inputs_is_an_interface_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.onnx");
    let script = format!(
        "import onnx\nfrom onnx import helper, TensorProto as T\n\
         g = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'g',\n\
             [helper.make_tensor_value_info('x', T.FLOAT, [1, 4])],\n\
             [helper.make_tensor_value_info('y', T.FLOAT, [1, 4])])\n\
         m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])\n\
         m.ir_version = 8\nonnx.save(m, {:?})\n",
        path.display().to_string()
    );
    python(&["-c", &script]);
    let err = load(&path).unwrap_err();
    assert!(matches!(err, ModelError::Interface { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("input_ids") && msg.contains("export_onnx.py"),
        "{msg}"
    );
}

#[test]
fn vocabulary_size_the_tokenizer_does_not_know_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-vocab.onnx");
    let exporter = root().join("models/export_onnx.py");
    python(&[
        exporter.to_str().unwrap(),
        "--random",
        "tiny",
        "--vocab-size",
        "1000",
        "--out",
        path.to_str().unwrap(),
    ]);
    let model = load(&path).unwrap();
    assert_eq!(model.info().vocab_size, 1000);
    let err = AriaGenerator::new(model, Duration::ZERO).unwrap_err();
    assert!(matches!(
        err,
        AriaSetupError::VocabMismatch { size: 1000, .. }
    ));
    assert!(err.to_string().contains("17727"));
}

#[test]
fn configured_runtime_path_that_does_not_exist_is_named_in_the_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_aria-bridge"))
        .current_dir(root())
        .env_remove("ORT_DYLIB_PATH")
        .args(["bench", "--device", "cpu", "--runs", "1"])
        .args(["--runtime", "/nonexistent/libonnxruntime.so"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/libonnxruntime.so"), "{err}");
    assert!(err.contains("scripts/setup.sh"), "{err}");
}

#[test]
fn a_file_that_is_not_a_library_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not an ELF file").unwrap();
    let (ok, err) = run_cli(
        &["bench", "--device", "cpu", "--runs", "1"],
        &[("ORT_DYLIB_PATH", fake.to_str().unwrap())],
    );
    assert!(!ok);
    assert!(err.contains("cannot load ONNX Runtime from"), "{err}");
    assert!(err.contains("1.31.1"), "{err}");
}

fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aria-bridge"));
    cmd.current_dir(root()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_without_runtime_library_fails_with_install_hint() {
    let (ok, err) = run_cli(
        &["bench", "--device", "cpu", "--runs", "1"],
        &[("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")],
    );
    assert!(!ok);
    assert!(err.contains("ONNX Runtime library not found"), "{err}");
    assert!(err.contains("scripts/setup.sh"), "{err}");
}

#[test]
fn cli_cuda_without_cuda_fails_and_never_falls_back_to_cpu() {
    let lib: PathBuf = locate_library(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let (ok, err) = run_cli(
        &["bench", "--device", "cuda", "--runs", "1"],
        &[("ORT_DYLIB_PATH", lib.to_str().unwrap())],
    );
    // This CPU-only build of ONNX Runtime cannot register CUDA; a GPU build on a GPU machine would.
    if !ok {
        assert!(
            err.contains("CUDA execution provider could not be registered"),
            "{err}"
        );
        assert!(
            err.contains("onnxruntime-gpu") && err.contains("CUDA 13"),
            "{err}"
        );
    } else {
        assert!(!err.contains("\"provider\":\"cpu\""));
    }
}

#[test]
fn cuda_graph_on_the_cpu_provider_is_refused_naming_the_device_flag() {
    let lib: PathBuf = locate_library(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let (ok, err) = run_cli(
        &["bench", "--device", "cpu", "--cuda-graph", "--runs", "1"],
        &[("ORT_DYLIB_PATH", lib.to_str().unwrap())],
    );
    assert!(!ok, "a CUDA graph cannot run on the CPU provider");
    assert!(
        err.contains("cannot capture the decode step in a CUDA graph")
            && err.contains("--device cuda"),
        "{err}"
    );
}
