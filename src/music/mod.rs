//! What the notes mean, independent of clocks and ports: notes and prompts in the model's
//! milliseconds ([`note`]).

pub mod note;
