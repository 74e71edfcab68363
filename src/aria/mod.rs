//! The model side: Aria's tokenizer, the ONNX Runtime session and sampling.
