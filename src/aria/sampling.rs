//! Choosing the next token from the model's logits (pure: no ORT, no clock).
//!
//! Semantics follow the reference `sample_batch`: `softmax(logits / temperature)`, then either
//! min-p (keep tokens with probability >= `min_p` x the largest; top-p is then ignored) or top-p
//! (sort by probability; a token is kept while the mass *before* it is <= `top_p`), renormalise
//! and draw. Temperature 0 is greedy (first maximum, like `argmax`). Only the ids in the caller's
//! `allowed` ranges take part, which is how grammar masking is applied without touching logits.
//!
//! Speed: the reference draws over all 17727 entries with a full sort (~0.4 ms per token). Here
//! the exponentials are computed once over the allowed ids and top-p only orders the head of the
//! distribution: it selects the top 64 (`select_nth_unstable`, O(n)), sorts those, and widens
//! (x4) only when their mass is not yet past `top_p`.

use std::ops::Range;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::generator::SamplingParams;

/// First head size top-p orders; a trained model at T = 0.8 rarely needs more for p = 0.9.
const TOP_P_FIRST_K: usize = 64;

/// A seeded sampler with its scratch buffers (reused: no allocation after the first token).
#[derive(Debug)]
pub struct Sampler {
    rng: SmallRng,
    /// `(id, unnormalised probability)` of the allowed ids.
    scratch: Vec<(u32, f32)>,
}

impl Sampler {
    /// A sampler whose draws are fixed by `seed` (same seed, same logits: same tokens).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            scratch: Vec::new(),
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
        let inv_t = 1.0 / params.temperature;
        self.scratch.clear();
        let mut total = 0.0f32;
        for r in allowed {
            let hi = (r.end as usize).min(logits.len());
            for id in (r.start as usize)..hi {
                let l = logits[id];
                if l.is_finite() {
                    // exp((l - max) / T): the largest weighs exactly 1.
                    let w = ((l - max) * inv_t).exp();
                    total += w;
                    self.scratch.push((id as u32, w));
                }
            }
        }
        let kept = match params.min_p {
            Some(min_p) => {
                // p_i >= min_p * p_max  <=>  w_i >= min_p, since w_max = 1.
                self.scratch.retain(|&(_, w)| w >= min_p);
                self.scratch.len()
            }
            None => nucleus(&mut self.scratch, total, params.top_p),
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

/// The greedy choice: the first id with the largest logit among `allowed`.
pub fn argmax(logits: &[f32], allowed: &[Range<u32>]) -> Option<u32> {
    let mut best: Option<(u32, f32)> = None;
    for r in allowed {
        let hi = (r.end as usize).min(logits.len());
        for id in (r.start as usize)..hi {
            let l = logits[id];
            if l.is_nan() || l == f32::NEG_INFINITY {
                continue;
            }
            if best.is_none_or(|(bid, b)| l > b || (l == b && (id as u32) < bid)) {
                best = Some((id as u32, l));
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

/// Reorders `cands` so that its first `k` entries (the returned count) are the top-p nucleus in
/// descending probability: an entry is kept while the mass before it is <= `top_p` x `total`.
pub fn nucleus(cands: &mut [(u32, f32)], total: f32, top_p: f32) -> usize {
    let n = cands.len();
    if n == 0 {
        return 0;
    }
    let limit = top_p * total;
    // Descending weight, then ascending id so ties order like a stable sort of the vocabulary.
    let desc = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let mut k = TOP_P_FIRST_K.min(n);
    loop {
        if k < n {
            cands.select_nth_unstable_by(k - 1, desc);
        }
        cands[..k].sort_unstable_by(desc);
        let mut before = 0.0f32;
        for (i, &(_, w)) in cands[..k].iter().enumerate() {
            if before > limit {
                return i;
            }
            before += w;
        }
        if k == n {
            return n;
        }
        k = (k * 4).min(n);
    }
}

#[cfg(test)]
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
        assert_eq!(&c[..2], &[(1, 0.5), (2, 0.3)]);
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

    proptest! {
        #[test]
        fn partial_nucleus_equals_full_sort(
            ws in proptest::collection::vec(0.0f32..1.0, 1..600),
            top_p in 0.05f32..1.0,
        ) {
            let total: f32 = ws.iter().sum();
            let mut c: Vec<(u32, f32)> = ws.iter().enumerate().map(|(i, &w)| (i as u32, w)).collect();
            let k = nucleus(&mut c, total, top_p);
            let mut full: Vec<(u32, f32)> = ws.iter().enumerate().map(|(i, &w)| (i as u32, w)).collect();
            full.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut before = 0.0f32;
            let mut want = 0;
            for &(_, w) in &full {
                if before > top_p * total { break; }
                before += w;
                want += 1;
            }
            prop_assert_eq!(k, want);
            prop_assert_eq!(&c[..k], &full[..want]);
        }
    }
}
