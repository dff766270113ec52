//! fwsim's reference corpus: a labelled, reproducible set of camera-like firmware images built
//! from Debian's ARM/MIPS packages and generated vendor programs ([`builder`]), its ground truth
//! ([`plan`]), and the accuracy benchmark over it ([`mod@bench`], [`metrics`]).

pub mod assemble;
pub mod bench;
pub mod builder;
pub mod cgen;
pub mod inputs;
pub mod metrics;
pub mod plan;
