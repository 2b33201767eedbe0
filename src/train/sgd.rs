//! Stochastic gradient descent with momentum (PyTorch `torch.optim.SGD`
//! semantics, dampening 0) and the learning-rate schedule.
//!
//! # Update rule
//! For every trainable tensor w with gradient g, learning rate lr, momentum
//! mu and weight decay wd (applied to every tensor, biases and batch-norm
//! parameters included, as `SGD(model.parameters(), weight_decay=wd)` does):
//!
//! g' = g + wd w,
//! v  = mu v + g'            (v = g' at the first step),
//! w  = w - lr (g' + mu v)   (Nesterov), or w = w - lr v (classical).
//!
//! # Schedule
//! With S steps per epoch, E epochs, W warm-up epochs, T = E S steps in all
//! and the 0-based step t, the learning rate of step t is
//! * warm-up (t < W S): lr (t + 1) / (W S), linear from lr / (W S) to lr;
//! * cosine: lr (1 + cos(pi (t - W S) / (T - W S))) / 2;
//! * step: lr 0.1^m, where m counts the milestones at epochs floor(E / 2)
//!   and floor(3 E / 4) that the current epoch floor(t / S) has reached
//!   (e.g. E = 100: x0.1 from epoch 50 and x0.01 from epoch 75).

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Momentum of every run (PyTorch's usual 0.9).
pub const MOMENTUM: f64 = 0.9;

/// How the learning rate decays after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Cosine,
    Step,
}

/// The `--schedule` value (the inverse of `from_str`).
impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Schedule::Cosine => "cosine",
            Schedule::Step => "step",
        })
    }
}

impl std::str::FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cosine" => Ok(Schedule::Cosine),
            "step" => Ok(Schedule::Step),
            _ => Err(Error::Usage(format!(
                "--schedule {s}: expected cosine or step"
            ))),
        }
    }
}

/// The learning rate as a function of the step (module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub base: f64,
    pub schedule: Schedule,
    pub epochs: usize,
    pub warmup_epochs: usize,
    pub steps_per_epoch: usize,
}

impl LrSchedule {
    /// Learning rate of 0-based step `t`.
    pub fn lr(&self, t: usize) -> f64 {
        let warmup = self.warmup_epochs * self.steps_per_epoch;
        let total = self.epochs * self.steps_per_epoch;
        if t < warmup {
            return self.base * (t + 1) as f64 / warmup as f64;
        }
        match self.schedule {
            Schedule::Cosine => {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((t - warmup) as f64 / span).min(1.0);
                self.base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::Step => {
                let epoch = t / self.steps_per_epoch.max(1);
                let passed = [self.epochs / 2, self.epochs * 3 / 4]
                    .iter()
                    .filter(|&&m| epoch >= m)
                    .count();
                self.base * 0.1f64.powi(passed as i32)
            }
        }
    }
}

/// SGD with momentum buffers keyed by tensor name.
#[derive(Debug, Clone)]
pub struct Sgd {
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// Momentum buffer v of each tensor (absent before its first step).
    pub buffers: BTreeMap<String, Vec<f32>>,
}

impl Sgd {
    pub fn new(momentum: f64, nesterov: bool, weight_decay: f64) -> Self {
        Self {
            momentum,
            nesterov,
            weight_decay,
            buffers: BTreeMap::new(),
        }
    }

    /// One update of every tensor in `params` that has a gradient in `grads`.
    pub fn step(&mut self, params: &[(String, Var)], grads: &GradStore, lr: f64) -> Result<()> {
        for (name, var) in params {
            let Some(grad) = grads.get(var) else { continue };
            let g = grad.flatten_all()?.to_vec1::<f32>()?;
            let mut w = var.flatten_all()?.to_vec1::<f32>()?;
            let first = !self.buffers.contains_key(name);
            let v = self
                .buffers
                .entry(name.clone())
                .or_insert_with(|| vec![0.0; w.len()]);
            if v.len() != w.len() {
                return Err(Error::Usage(format!(
                    "momentum buffer of {name} has {} values but the tensor has {}; \
                     the optimizer state does not belong to this model",
                    v.len(),
                    w.len()
                )));
            }
            let rule = Rule {
                lr: lr as f32,
                mu: self.momentum as f32,
                wd: self.weight_decay as f32,
                nesterov: self.nesterov,
                first,
            };
            w.par_iter_mut()
                .zip(v.par_iter_mut())
                .zip(g.par_iter())
                .for_each(|((w, v), &g)| rule.apply(w, v, g));
            var.set(&Tensor::from_vec(w, var.shape(), var.device())?)?;
        }
        Ok(())
    }
}

/// The per-element update in f32, as PyTorch computes it.
#[derive(Debug, Clone, Copy)]
struct Rule {
    lr: f32,
    mu: f32,
    wd: f32,
    nesterov: bool,
    first: bool,
}

impl Rule {
    fn apply(&self, w: &mut f32, v: &mut f32, g: f32) {
        let g = g + self.wd * *w;
        *v = if self.first { g } else { self.mu * *v + g };
        let d = if self.nesterov { g + self.mu * *v } else { *v };
        *w -= self.lr * d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = LrSchedule {
            base: 0.1,
            schedule: Schedule::Cosine,
            epochs: 4,
            warmup_epochs: 1,
            steps_per_epoch: 10,
        };
        assert!((s.lr(0) - 0.01).abs() < 1e-12);
        assert!((s.lr(9) - 0.1).abs() < 1e-12);
        assert!((s.lr(10) - 0.1).abs() < 1e-12);
        assert!((s.lr(25) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn step_milestones() {
        let s = LrSchedule {
            base: 1.0,
            schedule: Schedule::Step,
            epochs: 100,
            warmup_epochs: 0,
            steps_per_epoch: 2,
        };
        assert_eq!(s.lr(99), 1.0);
        assert!((s.lr(100) - 0.1).abs() < 1e-12);
        assert!((s.lr(150) - 0.01).abs() < 1e-12);
    }
}
