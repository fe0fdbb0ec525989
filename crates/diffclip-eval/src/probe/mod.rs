//! Linear probe and few-shot evaluation on frozen features: multinomial logistic regression
//! (L2, L-BFGS in f64 on the CPU), nearest class mean, seeded sampling.

mod fewshot;
mod lbfgs;
mod linear_probe;
mod logreg;
mod sampling;

pub use fewshot::{FewShotClassifier, FewShotConfig, FewShotPoint, few_shot, nearest_class_mean};
pub use lbfgs::{LbfgsOptions, LbfgsResult, lbfgs};
pub use linear_probe::{
    LinearProbeConfig, LinearProbeResult, Split, SweepPoint, accuracy, linear_probe, sweep_c,
};
pub use logreg::{LogRegOptions, LogisticRegression};
pub use sampling::{indices_by_class, sample_shots, stratified_split};
