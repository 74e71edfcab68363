//! The model side: Aria's tokenizer, the ONNX Runtime session and sampling.

pub mod generator;
pub mod grammar;
mod graph_step;
pub mod midi_dict;
pub mod model;
pub mod runtime;
pub mod sampling;
pub mod tokenizer;
