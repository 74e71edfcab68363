//! Places each result in its bar window and emits it pulse-accurately, with note hygiene and fallbacks.
