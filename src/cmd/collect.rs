//! `supernetflow collect`: listeners in, JSON lines out (sinks arrive with the next issue).
pub struct Args;
