//! fwsim's reference corpus: a labelled, reproducible set of camera-like firmware images built
//! from Debian's ARM/MIPS packages and generated vendor programs ([`builder`]), its ground truth
//! ([`plan`]), the accuracy benchmark over it ([`mod@bench`], [`metrics`]) and the fitting of
//! fwsim's decision thresholds on its `fit` split ([`mod@fit`]).

pub mod assemble;
pub mod bench;
pub mod builder;
pub mod cgen;
pub mod fit;
pub mod inputs;
pub mod metrics;
pub mod plan;
