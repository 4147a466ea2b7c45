pub mod collect;
pub mod decode;
pub mod probe;
pub mod qoe;
pub mod replay;
pub mod run;
