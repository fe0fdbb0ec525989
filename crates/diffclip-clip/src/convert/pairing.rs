//! Which standard heads become a differential pair: the head order that makes the pairs' maps
//! most alike on a calibration batch, and reordering a layer's heads to it.

use burn::module::Param;
use burn::tensor::Tensor;
use diffclip_attention::StandardAttention;

/// `s` with its heads reordered: head `i` of the result is head `order[i]` of `s` (query, key
/// and value columns, and the matching rows of `out_proj`). Standard attention does not depend
/// on the order of its heads, so the output is the same.
pub fn permute_heads(s: &StandardAttention, order: &[usize]) -> StandardAttention {
    let d = s.head_dim;
    let columns = |lin: &burn::nn::Linear| {
        let w = lin.weight.val();
        let weight = Param::from_tensor(Tensor::cat(order.iter().map(|&j| w.clone().narrow(1, j * d, d)).collect(), 1));
        let bias = lin.bias.as_ref().map(|b| {
            let b = b.val();
            Param::from_tensor(Tensor::cat(order.iter().map(|&j| b.clone().narrow(0, j * d, d)).collect(), 0))
        });
        burn::nn::Linear { weight, bias }
    };
    let w = s.out_proj.weight.val();
    let out_proj = burn::nn::Linear {
        weight: Param::from_tensor(Tensor::cat(order.iter().map(|&j| w.clone().narrow(0, j * d, d)).collect(), 0)),
        ..s.out_proj.clone()
    };
    StandardAttention { q_proj: columns(&s.q_proj), k_proj: columns(&s.k_proj), v_proj: columns(&s.v_proj), out_proj, ..s.clone() }
}

/// The head order of [`Pairing::Matched`](super::Pairing::Matched) for input `x`: pairs `(order[2i], order[2i+1])`.
pub(super) fn matched_order(s: &StandardAttention, x: Tensor<3>) -> Vec<usize> {
    let [b, n, _] = x.dims();
    let (h, d) = (s.num_heads, s.head_dim);
    let (_, maps) = s.forward_with_maps(x.clone(), None);
    let a = maps.first; // [b, h, n, n]
    let v = s.v_proj.forward(x).reshape([b, n, h, d]).swap_dims(1, 2); // [b, h, n, d]
    // cost[a][b] = ‖(A_a − A_b) V_b‖²: every head's map applied to head b's values at once.
    let mut cost = vec![vec![0.0f64; h]; h];
    #[allow(clippy::needless_range_loop)] // one column of `cost` per pass
    for second in 0..h {
        let vb = v.clone().narrow(1, second, 1).expand([b, h, n, d]);
        let ab = a.clone().narrow(1, second, 1).expand([b, h, n, n]);
        let err = (a.clone() - ab).matmul(vb).square().sum_dim(3).sum_dim(2).sum_dim(0).reshape([h]);
        let err = err.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        for (first, e) in err.into_iter().enumerate() {
            cost[first][second] = e as f64;
        }
    }
    // Best orientation of a pair, then the matching with the lowest total (interleaved on ties).
    let pair = |i: usize, j: usize| if cost[j][i] < cost[i][j] { (cost[j][i], [j, i]) } else { (cost[i][j], [i, j]) };
    fn search(left: &mut Vec<usize>, chosen: &mut Vec<[usize; 2]>, total: f64, best: &mut (f64, Vec<[usize; 2]>), pair: &dyn Fn(usize, usize) -> (f64, [usize; 2])) {
        if total >= best.0 {
            return;
        }
        let Some(&i) = left.first() else {
            *best = (total, chosen.clone());
            return;
        };
        for k in 1..left.len() {
            let j = left[k];
            let (c, p) = pair(i, j);
            let rest: Vec<usize> = left.iter().copied().filter(|&m| m != i && m != j).collect();
            let saved = std::mem::replace(left, rest);
            chosen.push(p);
            search(left, chosen, total + c, best, pair);
            chosen.pop();
            *left = saved;
        }
    }
    let interleaved: Vec<[usize; 2]> = (0..h / 2).map(|i| pair(2 * i, 2 * i + 1).1).collect();
    let base: f64 = (0..h / 2).map(|i| pair(2 * i, 2 * i + 1).0).sum();
    // Strictly better than interleaved by a relative margin, so float noise keeps the stored order.
    let mut best = (base * (1.0 - 1e-6), Vec::new());
    if h <= 12 {
        search(&mut (0..h).collect(), &mut Vec::new(), 0.0, &mut best, &pair);
    } else {
        let (mut left, mut chosen): (Vec<usize>, Vec<[usize; 2]>) = ((0..h).collect(), Vec::new());
        while let Some(&i) = left.first() {
            let (_, p) = left[1..].iter().map(|&j| pair(i, j)).min_by(|x, y| x.0.total_cmp(&y.0)).expect("even head count");
            left.retain(|&m| m != p[0] && m != p[1]);
            chosen.push(p);
        }
        let total: f64 = chosen.iter().map(|p| cost[p[0]][p[1]]).sum();
        if total < best.0 {
            best = (total, chosen);
        }
    }
    let pairs = if best.1.is_empty() { interleaved } else { best.1 };
    pairs.into_iter().flatten().collect()
}
