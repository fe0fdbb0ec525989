//! L-BFGS in f64 on plain vectors, with a strong-Wolfe bracketing line search.

/// Stopping rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsOptions {
    /// Maximum number of iterations.
    pub max_iter: usize,
    /// Correction pairs kept.
    pub history: usize,
    /// Stop when `max |g_i| <= gtol`.
    pub gtol: f64,
    /// Stop when the relative decrease of `f` is below `ftol`.
    pub ftol: f64,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        Self {
            max_iter: 1000,
            history: 10,
            gtol: 1e-6,
            ftol: 1e-12,
        }
    }
}

/// The minimiser found.
#[derive(Debug, Clone, PartialEq)]
pub struct LbfgsResult {
    /// Final point.
    pub x: Vec<f64>,
    /// Objective there.
    pub f: f64,
    /// Iterations run.
    pub iterations: usize,
    /// Whether a stopping rule (not `max_iter`) ended the run.
    pub converged: bool,
}

/// Minimise `fg(x, grad) -> f(x)` (writing the gradient into `grad`) from `x0`.
///
/// ```
/// use diffclip_eval::probe::{LbfgsOptions, lbfgs};
/// // f(x) = (x0 - 3)^2 + 10 (x1 + 1)^2
/// let r = lbfgs(|x, g| {
///     g[0] = 2.0 * (x[0] - 3.0);
///     g[1] = 20.0 * (x[1] + 1.0);
///     (x[0] - 3.0).powi(2) + 10.0 * (x[1] + 1.0).powi(2)
/// }, vec![0.0, 0.0], &LbfgsOptions::default());
/// assert!(r.converged && (r.x[0] - 3.0).abs() < 1e-6 && (r.x[1] + 1.0).abs() < 1e-6);
/// ```
pub fn lbfgs(
    mut fg: impl FnMut(&[f64], &mut [f64]) -> f64,
    x0: Vec<f64>,
    opts: &LbfgsOptions,
) -> LbfgsResult {
    let n = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut f = fg(&x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut rho: Vec<f64> = Vec::new();
    for iter in 0..opts.max_iter {
        if max_abs(&g) <= opts.gtol || !f.is_finite() {
            return LbfgsResult {
                x,
                f,
                iterations: iter,
                converged: f.is_finite(),
            };
        }
        let mut d = direction(&g, &s_hist, &y_hist, &rho);
        if dot(&d, &g) >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho.clear();
            d = g.iter().map(|v| -v).collect();
        }
        let step0 = if s_hist.is_empty() {
            (1.0 / max_abs(&g).max(1e-300)).min(1.0)
        } else {
            1.0
        };
        let Some((_, f_new, x_new, g_new)) = line_search(&mut fg, &x, f, &g, &d, step0) else {
            // No decrease along a descent direction: numerically at the minimum.
            let converged = max_abs(&g) <= opts.gtol.max(1e-8);
            return LbfgsResult {
                x,
                f,
                iterations: iter,
                converged,
            };
        };
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() {
            if s_hist.len() == opts.history {
                s_hist.remove(0);
                y_hist.remove(0);
                rho.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho.push(1.0 / sy);
        }
        let decrease = (f - f_new) / f.abs().max(f_new.abs()).max(1.0);
        x = x_new;
        g = g_new;
        f = f_new;
        if decrease <= opts.ftol {
            return LbfgsResult {
                x,
                f,
                iterations: iter + 1,
                converged: true,
            };
        }
    }
    let converged = max_abs(&g) <= opts.gtol;
    LbfgsResult {
        x,
        f,
        iterations: opts.max_iter,
        converged,
    }
}

/// The two-loop recursion: `-H g`.
fn direction(g: &[f64], s: &[Vec<f64>], y: &[Vec<f64>], rho: &[f64]) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alpha = vec![0.0; s.len()];
    for i in (0..s.len()).rev() {
        alpha[i] = rho[i] * dot(&s[i], &q);
        axpy(-alpha[i], &y[i], &mut q);
    }
    if let (Some(sl), Some(yl)) = (s.last(), y.last()) {
        let gamma = dot(sl, yl) / dot(yl, yl);
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for i in 0..s.len() {
        let beta = rho[i] * dot(&y[i], &q);
        axpy(alpha[i] - beta, &s[i], &mut q);
    }
    q.iter_mut().for_each(|v| *v = -*v);
    q
}

type Trial = (f64, f64, Vec<f64>, Vec<f64>);

/// Strong Wolfe line search (c1 = 1e-4, c2 = 0.9; Nocedal & Wright alg. 3.5/3.6): expansion
/// by doubling, then zoom by bisection. Returns `(step, f, x, g)`, or `None` when no point with
/// sufficient decrease was found.
fn line_search(
    fg: &mut impl FnMut(&[f64], &mut [f64]) -> f64,
    x: &[f64],
    f0: f64,
    g0: &[f64],
    d: &[f64],
    step0: f64,
) -> Option<Trial> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    const MAX_EVALS: usize = 60;
    let dg0 = dot(g0, d);
    let mut eval = |a: f64| -> (Trial, f64) {
        let xn: Vec<f64> = x.iter().zip(d).map(|(xi, di)| xi + a * di).collect();
        let mut gn = vec![0.0; x.len()];
        let fnew = fg(&xn, &mut gn);
        let dg = dot(&gn, d);
        ((a, fnew, xn, gn), dg)
    };
    let armijo = |a: f64, fa: f64| fa.is_finite() && fa <= f0 + C1 * a * dg0;

    // Expansion: find a bracket [lo, hi] holding a strong-Wolfe point.
    let (mut lo, mut f_lo, mut lo_trial): (f64, f64, Option<Trial>) = (0.0, f0, None);
    let mut hi;
    let mut a = step0;
    let mut evals = 0;
    loop {
        let (trial, dg) = eval(a);
        evals += 1;
        let fa = trial.1;
        if !armijo(a, fa) || (evals > 1 && fa >= f_lo) {
            hi = a;
            break;
        }
        if dg.abs() <= -C2 * dg0 {
            return Some(trial);
        }
        if dg >= 0.0 {
            hi = lo;
            lo = a;
            f_lo = fa;
            lo_trial = Some(trial);
            break;
        }
        lo = a;
        f_lo = fa;
        lo_trial = Some(trial);
        if evals >= MAX_EVALS {
            return lo_trial;
        }
        a *= 2.0;
    }
    // Zoom: bisect the bracket, keeping `lo` the best sufficient-decrease point.
    while evals < MAX_EVALS {
        let a = 0.5 * (lo + hi);
        if (hi - lo).abs() <= 1e-14 * lo.abs().max(hi.abs()) {
            break;
        }
        let (trial, dg) = eval(a);
        evals += 1;
        let fa = trial.1;
        if !armijo(a, fa) || fa >= f_lo {
            hi = a;
        } else {
            if dg.abs() <= -C2 * dg0 {
                return Some(trial);
            }
            if dg * (hi - lo) >= 0.0 {
                hi = lo;
            }
            lo = a;
            f_lo = fa;
            lo_trial = Some(trial);
        }
    }
    lo_trial.filter(|t| t.1 < f0)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}
