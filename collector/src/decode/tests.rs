//! Decoder unit tests on hand-built messages.
