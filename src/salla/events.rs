//! Placeholder: the tolerant Salla event model is being written.
