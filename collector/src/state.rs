//! Template and sampling persistence (filled in below).
