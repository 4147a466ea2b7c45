//! The kernel side of the tap (XDP/TC program in C, built with clang-19 by a build.rs).
//!
//! Not built yet: see the issue "The tap".
