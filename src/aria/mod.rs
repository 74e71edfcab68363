//! The model side: Aria's tokenizer, the ONNX Runtime session and sampling.

pub mod model;
pub mod runtime;
pub mod sampling;
