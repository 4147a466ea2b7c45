pub mod collect;
pub mod decode;
pub mod mediate;
pub mod probe;
pub mod qoe;
pub mod replay;
pub mod run;
pub mod to_kafka;
