//! Human notes per bar, and the prompts built from them.
