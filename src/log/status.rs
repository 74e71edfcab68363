//! The live status line: bar, BPM, last generation time, p95 so far, misses, queue depth. Pure:
//! fed the same [`Record`]s as the log file, on the log thread.

use super::event::{Event, Record};

/// Builds a status line every `every_bars` bars (0 = never).
#[derive(Clone, Debug, Default)]
pub struct Status {
    every_bars: u32,
    every_ms: f64,
    last_line_ms: Option<f64>,
    bpm: Option<f64>,
    last_gen_ms: Option<f64>,
    gen_ms: Vec<f64>,
    missed: u64,
    dropped: u64,
    depth: u32,
    last_bar: Option<u64>,
}

impl Status {
    /// A status tracker that speaks every `every_bars` bars (`log.status_every_bars`).
    pub fn new(every_bars: u32) -> Self {
        Self {
            every_bars,
            ..Self::default()
        }
    }

    /// Also speaks when `secs` of session time passed since the last line (0 = never;
    /// `log.status_every_secs`).
    pub fn with_every_secs(mut self, secs: f64) -> Self {
        self.every_ms = secs.max(0.0) * 1e3;
        self
    }

    /// Takes one record; returns the status line when one is due (a bar boundary every
    /// `every_bars` bars, or `every_secs` since the last line).
    pub fn observe(&mut self, r: &Record) -> Option<String> {
        let by_bars = self.update(r);
        let by_time =
            self.every_ms > 0.0 && r.t_ms - self.last_line_ms.unwrap_or(0.0) >= self.every_ms;
        if by_bars.is_none() && !by_time {
            return None;
        }
        self.last_line_ms = Some(r.t_ms);
        Some(self.line(by_bars.or(self.last_bar)))
    }

    /// Folds one record in; returns the bar when its boundary is due for a line.
    fn update(&mut self, r: &Record) -> Option<u64> {
        match &r.event {
            Event::Session { bpm, .. } => self.bpm = Some(*bpm),
            Event::Tempo { bpm, .. } | Event::TempoJump { bpm, .. } => self.bpm = Some(*bpm),
            Event::Generated { gen_ms, .. } => {
                self.last_gen_ms = Some(*gen_ms);
                self.gen_ms.push(*gen_ms);
            }
            Event::Missed { .. } => self.missed += 1,
            Event::Dropped { .. } => self.dropped += 1,
            Event::Enqueued { queue_depth, .. } => self.depth = *queue_depth,
            Event::GenerationStarted { .. } => self.depth = self.depth.saturating_sub(1),
            Event::Boundary { bar } => {
                self.last_bar = Some(*bar);
                if self.every_bars > 0 && bar % self.every_bars as u64 == 0 {
                    return Some(*bar);
                }
            }
            _ => {}
        }
        None
    }

    /// p95 of the generation times so far (nearest rank), ms.
    pub fn p95_ms(&self) -> Option<f64> {
        crate::report::stats::quantile(&self.gen_ms, 0.95)
    }

    fn line(&self, bar: Option<u64>) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
        format!(
            "bar {} | {} BPM | last gen {} | p95 {} | missed {} | dropped {} | queue {}",
            bar.map_or("-".to_string(), |b| b.to_string()),
            self.bpm.map_or("-".to_string(), |b| format!("{b:.1}")),
            ms(self.last_gen_ms),
            ms(self.p95_ms()),
            self.missed,
            self.dropped,
            self.depth
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: Event) -> Record {
        Record::new(0.0, 0.0, None, event)
    }

    fn generated(ms: f64) -> Event {
        crate::log::convert::generated(0, 2, ms, Ok(&Default::default()))
    }

    #[test]
    fn status_speaks_every_nth_boundary_with_the_figures_so_far() {
        let mut s = Status::new(2);
        assert!(s
            .observe(&rec(Event::Tempo {
                bpm: 121.04,
                jitter_ms: 0.1
            }))
            .is_none());
        for ms in [10.0, 30.0, 20.0] {
            assert!(s.observe(&rec(generated(ms))).is_none());
        }
        s.observe(&rec(Event::Missed {
            window_bar: 3,
            fallback: "silence".into(),
        }));
        s.observe(&rec(Event::Enqueued {
            bar: 4,
            window_bar: 6,
            queue_depth: 2,
        }));
        assert_eq!(s.observe(&rec(Event::Boundary { bar: 3 })), None);
        assert_eq!(
            s.observe(&rec(Event::Boundary { bar: 4 })).as_deref(),
            Some("bar 4 | 121.0 BPM | last gen 20 ms | p95 30 ms | missed 1 | dropped 0 | queue 2")
        );
        assert_eq!(
            Status::new(0).observe(&rec(Event::Boundary { bar: 0 })),
            None
        );
    }

    #[test]
    fn status_by_time_speaks_once_per_period_without_boundaries() {
        let mut s = Status::new(0).with_every_secs(2.0);
        let at = |t_ms: f64| Record::new(t_ms, t_ms, None, Event::Transport { what: "x".into() });
        assert_eq!(s.observe(&at(1000.0)), None);
        let line = s.observe(&at(2000.0)).expect("2 s passed");
        assert!(line.starts_with("bar - |"), "{line}");
        assert_eq!(s.observe(&at(3999.0)), None);
        assert!(s.observe(&at(4000.0)).is_some());
    }
}
