pub mod collect;
pub mod decode;
pub mod replay;
