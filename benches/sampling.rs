//! Cost of choosing one token from 17727 logits: the reference spends ~0.4 ms per token here.
//!
//! Run: `cargo bench --bench sampling`. "peaked" logits look like a trained model's (a few
//! plausible tokens, a long tail far below); "flat" ones like a random model's (every token
//! within a few nats), the worst case for min-p and top-p.

// `[0..VOCAB]` is a list of allowed ranges that happens to hold one.
#![allow(clippy::single_range_in_vec_init)]

use std::hint::black_box;

use aria_bridge::aria::sampling::{argmax, Sampler};
use aria_bridge::engine::generator::SamplingParams;
use criterion::{criterion_group, criterion_main, Criterion};

const VOCAB: u32 = 17727;

fn logits(peaked: bool) -> Vec<f32> {
    (0..VOCAB)
        .map(|i| {
            let h = (i.wrapping_mul(2_654_435_761) >> 8) as f32 / (1u32 << 24) as f32;
            if peaked {
                // ~20 tokens near the top, the rest 10..30 nats below.
                if i % 887 == 0 {
                    5.0 + 3.0 * h
                } else {
                    -10.0 - 20.0 * h
                }
            } else {
                4.0 * h
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let all = [0..VOCAB];
    for (name, peaked) in [("peaked", true), ("flat", false)] {
        let l = logits(peaked);
        let top_p = SamplingParams {
            temperature: 0.8,
            top_p: 0.9,
            min_p: None,
            seed: 1,
            max_new_tokens: 1,
        };
        let min_p = SamplingParams {
            temperature: 0.98,
            min_p: Some(0.035),
            ..top_p
        };
        let mut s = Sampler::new(1);
        c.bench_function(&format!("top_p 0.9 T 0.8, {name}"), |b| {
            b.iter(|| s.sample(black_box(&l), &all, &top_p))
        });
        c.bench_function(&format!("min_p 0.035 T 0.98, {name}"), |b| {
            b.iter(|| s.sample(black_box(&l), &all, &min_p))
        });
        c.bench_function(&format!("greedy, {name}"), |b| {
            b.iter(|| argmax(black_box(&l), &all))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
