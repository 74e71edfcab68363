//! Choosing the next token from the model's logits (pure: no ORT, no clock).
//!
//! Semantics follow the reference `sample_batch`: `softmax(logits / temperature)`, then either
//! min-p (keep tokens with probability >= `min_p` x the largest; top-p is then ignored) or top-p
//! (sort by probability; a token is kept while the mass *before* it is <= `top_p`), renormalise
//! and draw. Temperature 0 is greedy (first maximum, like `argmax`). Only the ids in the caller's
//! `allowed` ranges take part, which is how grammar masking is applied without touching logits.
//!
//! Speed: the reference draws over all 17727 entries with a full sort (~0.4 ms per token). Here
//! the exponentials are computed branch-free (vectorised) over the allowed ids, and top-p finds
//! its boundary with a weighted quickselect (O(n) expected) instead of sorting.

use std::ops::Range;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::engine::generator::SamplingParams;

/// A seeded sampler with its scratch buffers (reused: no allocation after the first token).
#[derive(Debug)]
pub struct Sampler {
    rng: SmallRng,
    /// `(id, unnormalised probability)` of the kept ids.
    scratch: Vec<(u32, f32)>,
    /// `exp((l - max) / T)` per vocabulary id.
    weights: Vec<f32>,
}

impl Sampler {
    /// A sampler whose draws are fixed by `seed` (same seed, same logits: same tokens).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            scratch: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Restarts the random stream at `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = SmallRng::seed_from_u64(seed);
    }

    /// The next token among the ids in `allowed`, or `None` when no allowed id has a finite logit.
    pub fn sample(
        &mut self,
        logits: &[f32],
        allowed: &[Range<u32>],
        params: &SamplingParams,
    ) -> Option<u32> {
        if params.temperature <= 0.0 {
            return argmax(logits, allowed);
        }
        let max = allowed_max(logits, allowed)?;
        let t = params.temperature;
        let inv_t = 1.0 / t;
        let kept = match params.min_p {
            Some(min_p) => {
                // p_i >= min_p * p_max  <=>  w_i >= min_p, since w_max = 1. Drawn straight from
                // the dense weights: no list is built (a flat distribution keeps ~all 17727).
                // Non-finite logits weigh ~1e-38 < min_p and drop out here.
                self.fill_weights(logits, allowed, max, inv_t);
                let mut mass = 0.0f32;
                for r in allowed {
                    let ws = &self.weights[span(r, logits.len())];
                    mass += sum_at_least(ws, min_p);
                }
                let mut x = self.rng.random::<f32>() * mass;
                let mut last = None;
                for r in allowed {
                    let sp = span(r, logits.len());
                    let lo = sp.start;
                    for (off, &w) in self.weights[sp].iter().enumerate() {
                        if w >= min_p {
                            if x < w {
                                return Some((lo + off) as u32);
                            }
                            x -= w;
                            last = Some((lo + off) as u32);
                        }
                    }
                }
                // Rounding left x just above the last weight.
                return last;
            }
            None => {
                // Candidates at >= 1e-4 of the max; if they hold more than top_p of the mass, the
                // nucleus (a prefix of the sorted list) lies entirely among them.
                let total = self.collect(logits, allowed, max, inv_t, 1e-4);
                let cand: f32 = self.scratch.iter().map(|&(_, w)| w).sum();
                if cand <= params.top_p * total {
                    self.collect(logits, allowed, max, inv_t, 0.0);
                }
                nucleus(&mut self.scratch, total, params.top_p)
            }
        };
        let head = &self.scratch[..kept];
        let mass: f32 = head.iter().map(|&(_, w)| w).sum();
        let mut r = self.rng.random::<f32>() * mass;
        for &(id, w) in head {
            if r < w {
                return Some(id);
            }
            r -= w;
        }
        // Rounding left r just above the last weight.
        head.last().map(|&(id, _)| id)
    }
}

impl Sampler {
    /// Sets `weights[id] = exp((l - max) / T)` for the allowed ids; returns their sum.
    fn fill_weights(
        &mut self,
        logits: &[f32],
        allowed: &[Range<u32>],
        max: f32,
        inv_t: f32,
    ) -> f32 {
        self.weights.resize(logits.len(), 0.0);
        let mut total = 0.0f32;
        for r in allowed {
            let sp = span(r, logits.len());
            let ws = &mut self.weights[sp.clone()];
            // Branch-free so that it vectorises: 17727 libm expf calls cost ~0.1 ms per token.
            for (w, &l) in ws.iter_mut().zip(&logits[sp]) {
                *w = exp_neg((l - max) * inv_t);
            }
            total += sum(ws);
        }
        total
    }

    /// Fills the scratch list with `(id, w)` for allowed ids with a finite logit and
    /// `w >= keep`; returns the sum of `w` over the allowed ids.
    fn collect(
        &mut self,
        logits: &[f32],
        allowed: &[Range<u32>],
        max: f32,
        inv_t: f32,
        keep: f32,
    ) -> f32 {
        let total = self.fill_weights(logits, allowed, max, inv_t);
        self.scratch.clear();
        for r in allowed {
            let sp = span(r, logits.len());
            let lo = sp.start;
            for (off, (&w, &l)) in self.weights[sp.clone()].iter().zip(&logits[sp]).enumerate() {
                if w >= keep && l.is_finite() {
                    self.scratch.push(((lo + off) as u32, w));
                }
            }
        }
        total
    }
}

/// The part of `r` inside a vocabulary of `n` ids.
fn span(r: &Range<u32>, n: usize) -> Range<usize> {
    let hi = (r.end as usize).min(n);
    (r.start as usize).min(hi)..hi
}

/// Sum of the entries >= `min` (select, not branch: vectorisable).
fn sum_at_least(xs: &[f32], min: f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += if x >= min { x } else { 0.0 };
        }
    }
    acc.iter().sum::<f32>()
        + chunks
            .remainder()
            .iter()
            .filter(|&&x| x >= min)
            .sum::<f32>()
}

/// Sum with 8 independent accumulators (vectorisable; a single f32 chain is latency-bound).
fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// `e^x` for `x <= 0` within ~2 ulp (non-finite or very negative `x` gives ~1e-38, never 0
/// and never NaN): round `x / ln 2` to `n`, evaluate a degree-6 Taylor polynomial on the
/// remainder (|r| <= 0.347, error < 1.2e-7 relative) and scale by `2^n` through the exponent bits.
#[inline]
pub fn exp_neg(x: f32) -> f32 {
    // 1.5 x 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    // Not clamp(): max() maps NaN to -87 where clamp would keep it.
    #[allow(clippy::manual_clamp)]
    let x = x.max(-87.0).min(0.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let ni = t.to_bits() as i32 - MAGIC.to_bits() as i32;
    // ln 2 split in a high part exact in f32 and a low correction.
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    f32::from_bits(((ni + 127) << 23) as u32) * p
}

/// The greedy choice: the first id with the largest logit among `allowed`.
pub fn argmax(logits: &[f32], allowed: &[Range<u32>]) -> Option<u32> {
    let mut best: Option<(u32, f32)> = None;
    for r in allowed {
        let sp = span(r, logits.len());
        let lo = sp.start;
        for (off, &l) in logits[sp].iter().enumerate() {
            if l.is_nan() || l == f32::NEG_INFINITY {
                continue;
            }
            let id = (lo + off) as u32;
            if best.is_none_or(|(bid, b)| l > b || (l == b && id < bid)) {
                best = Some((id, l));
            }
        }
    }
    best.map(|(id, _)| id)
}

fn allowed_max(logits: &[f32], allowed: &[Range<u32>]) -> Option<f32> {
    let mut max: Option<f32> = None;
    for r in allowed {
        let hi = (r.end as usize).min(logits.len());
        for &l in &logits[(r.start as usize).min(hi)..hi] {
            if l.is_finite() && max.is_none_or(|m| l > m) {
                max = Some(l);
            }
        }
    }
    max
}

/// Reorders `cands` so that its first `k` entries (the returned count) are the top-p nucleus:
/// in descending weight (ties by ascending id), an entry is kept while the mass before it is
/// <= `top_p` x `total`. The kept entries come in no particular (but deterministic) order.
///
/// A weighted quickselect, O(n) expected: partition around a pivot weight; if the heavier side
/// alone passes the limit the boundary is inside it, else keep it (and the pivot's ties, in id
/// order, while they fit) and continue with the lighter side.
pub fn nucleus(cands: &mut [(u32, f32)], total: f32, top_p: f32) -> usize {
    let limit = f64::from(top_p) * f64::from(total);
    let (mut lo, mut hi) = (0usize, cands.len());
    let mut before = 0.0f64;
    while lo < hi {
        if before > limit {
            return lo;
        }
        let seg = &mut cands[lo..hi];
        let pivot = median3(seg[0].1, seg[seg.len() / 2].1, seg[seg.len() - 1].1);
        let (gt, eq) = partition3(seg, pivot);
        let m_gt: f64 = seg[..gt].iter().map(|&(_, w)| f64::from(w)).sum();
        if before + m_gt > limit {
            // The boundary lies among the heavier ones; everything from the pivot on is out.
            hi = lo + gt;
            continue;
        }
        before += m_gt;
        lo += gt;
        cands[lo..lo + eq].sort_unstable_by_key(|&(id, _)| id);
        for _ in 0..eq {
            if before > limit {
                return lo;
            }
            before += f64::from(cands[lo].1);
            lo += 1;
        }
    }
    lo
}

fn median3(a: f32, b: f32, c: f32) -> f32 {
    a.max(b).min(a.min(b).max(c))
}

/// Three-way partition into `[> pivot | == pivot | < pivot]`; returns the sizes of the first two.
fn partition3(seg: &mut [(u32, f32)], pivot: f32) -> (usize, usize) {
    // Dutch national flag: [0, gt) heavier, [gt, i) equal, (lt, end) lighter.
    let (mut gt, mut i, mut lt) = (0usize, 0usize, seg.len());
    while i < lt {
        let w = seg[i].1;
        if w > pivot {
            seg.swap(gt, i);
            gt += 1;
            i += 1;
        } else if w < pivot {
            lt -= 1;
            seg.swap(i, lt);
        } else {
            i += 1;
        }
    }
    (gt, lt - gt)
}

#[cfg(test)]
// `&[0..n]` is a list of allowed ranges that happens to hold one.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(t: f32, top_p: f32, min_p: Option<f32>) -> SamplingParams {
        SamplingParams {
            temperature: t,
            top_p,
            min_p,
            seed: 0,
            max_new_tokens: 1,
        }
    }

    fn logp(ps: &[f32]) -> Vec<f32> {
        ps.iter().map(|p| p.ln()).collect()
    }

    #[test]
    fn greedy_takes_first_maximum_within_allowed() {
        let l = [0.0, 3.0, 5.0, 5.0, 9.0];
        assert_eq!(argmax(&l, &[0..4]), Some(2));
        assert_eq!(argmax(&l, &[0..2, 3..4]), Some(3));
        let mut s = Sampler::new(1);
        assert_eq!(s.sample(&l, &[0..5], &params(0.0, 0.9, None)), Some(4));
    }

    #[test]
    fn no_finite_allowed_logit_gives_none() {
        let l = [f32::NEG_INFINITY, f32::NAN, 1.0];
        let mut s = Sampler::new(1);
        assert_eq!(s.sample(&l, &[0..2], &params(1.0, 0.9, None)), None);
        assert_eq!(argmax(&l, &[0..2]), None);
    }

    #[test]
    fn top_p_keeps_token_whose_mass_before_equals_p() {
        // Sorted probs 0.5, 0.3, 0.2: mass before them 0, 0.5, 0.8 -> p = 0.5 keeps two.
        let mut c = vec![(0, 0.2), (1, 0.5), (2, 0.3)];
        let k = nucleus(&mut c, 1.0, 0.5);
        assert_eq!(k, 2);
        let mut kept = c[..2].to_vec();
        kept.sort_by_key(|&(id, _)| id);
        assert_eq!(kept, vec![(1, 0.5), (2, 0.3)]);
        let mut c = vec![(0, 0.2), (1, 0.5), (2, 0.3)];
        assert_eq!(nucleus(&mut c, 1.0, 0.49), 1);
    }

    #[test]
    fn top_p_never_draws_outside_the_nucleus() {
        let l = logp(&[0.6, 0.3, 0.05, 0.05]);
        let mut s = Sampler::new(7);
        for _ in 0..500 {
            let t = s.sample(&l, &[0..4], &params(1.0, 0.5, None)).unwrap();
            assert!(t <= 1, "drew {t}");
        }
    }

    #[test]
    fn min_p_keeps_only_tokens_near_the_top_and_ignores_top_p() {
        // p = 0.5, 0.3, 0.2 (max 0.5): min_p 0.5 keeps >= 0.25 -> ids 0 and 1, even with top_p tiny.
        let l = logp(&[0.5, 0.3, 0.2]);
        let mut s = Sampler::new(3);
        let mut seen = [0u32; 3];
        for _ in 0..2000 {
            seen[s
                .sample(&l, &[0..3], &params(1.0, 0.01, Some(0.5)))
                .unwrap() as usize] += 1;
        }
        assert_eq!(seen[2], 0);
        assert!(seen[1] > 0, "top_p must be ignored when min_p is set");
    }

    #[test]
    fn masked_ids_are_never_drawn() {
        let l = vec![0.0f32; 100];
        let mut s = Sampler::new(5);
        for _ in 0..500 {
            let t = s
                .sample(&l, &[10..20, 50..51], &params(1.0, 1.0, None))
                .unwrap();
            assert!((10..20).contains(&t) || t == 50);
        }
    }

    #[test]
    fn same_seed_gives_same_tokens() {
        let l: Vec<f32> = (0..500).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let p = params(0.9, 0.95, None);
        let draw = |seed| {
            let mut s = Sampler::new(seed);
            (0..50)
                .map(|_| s.sample(&l, &[0..500], &p).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(11), draw(11));
        assert_ne!(draw(11), draw(12));
    }

    #[test]
    fn top_p_reaches_into_a_flat_tail_when_the_head_is_not_enough() {
        // One token at weight 1 and 1000 at 1e-5: p = 0.995 of 1.01 keeps the head and the first
        // 500 tail tokens (ties in id order), which only the full pass can find.
        let mut l = vec![(1e-5f32).ln(); 1001];
        l[0] = 0.0;
        let mut s = Sampler::new(9);
        let mut tail = 0;
        for _ in 0..20_000 {
            let t = s.sample(&l, &[0..1001], &params(1.0, 0.995, None)).unwrap();
            assert!(t <= 500, "drew {t}, outside the nucleus");
            tail += usize::from(t > 0);
        }
        assert!(tail > 0, "the tail part of the nucleus was never drawn");
    }

    #[test]
    fn exp_neg_is_within_a_few_ulp_of_libm() {
        for i in 0..20_000 {
            let x = -(i as f32) * 0.004;
            let (a, b) = (exp_neg(x), x.exp());
            assert!((a - b).abs() <= 4e-7 * b, "x {x}: {a} vs {b}");
        }
        assert!(exp_neg(f32::NEG_INFINITY) > 0.0);
        assert!(exp_neg(f32::NAN).is_finite());
    }

    proptest! {
        #[test]
        fn partial_nucleus_equals_full_sort(
            ws in proptest::collection::vec(prop_oneof![0.0f32..1.0, Just(0.25f32)], 1..600),
            top_p in 0.05f32..1.0,
        ) {
            let total: f32 = ws.iter().sum();
            let mut c: Vec<(u32, f32)> = ws.iter().enumerate().map(|(i, &w)| (i as u32, w)).collect();
            let k = nucleus(&mut c, total, top_p);
            let mut full: Vec<(u32, f32)> = ws.iter().enumerate().map(|(i, &w)| (i as u32, w)).collect();
            full.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut before = 0.0f64;
            let mut want = 0;
            for &(_, w) in &full {
                if before > f64::from(top_p) * f64::from(total) { break; }
                before += f64::from(w);
                want += 1;
            }
            prop_assert_eq!(k, want);
            let mut kept = c[..k].to_vec();
            kept.sort_by_key(|&(id, _)| id);
            let mut expect = full[..want].to_vec();
            expect.sort_by_key(|&(id, _)| id);
            prop_assert_eq!(kept, expect);
        }
    }
}
