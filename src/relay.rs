//! What a lossy link does to one datagram: the pure decision behind
//! `acorn-cli relay`.
//!
//! An [`Impairer`] draws, from a seeded [`StdRng`], whether a datagram is
//! dropped, duplicated or held back (reordered), and how long each copy
//! is delayed. It holds no sockets and reads no clock: the relay carries
//! out the [`Fate`] it returns, and tests check the draws directly. The
//! same seed and the same sequence of calls give the same fates.
//!
//! The draws for one datagram, in order: loss; then duplication; then
//! reordering; then, for each copy, its jitter. A reordered datagram (both
//! copies, if duplicated) is held an extra delay drawn uniformly from
//! `(0, reorder_delay]`, so datagrams sent after it overtake it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Rates and delays of a simulated bad link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairments {
    /// Probability a datagram is dropped.
    pub loss: f64,
    /// Probability a datagram (not dropped) is sent twice.
    pub duplicate: f64,
    /// Probability a datagram (not dropped) is held back by up to
    /// `reorder_delay` extra, so later ones overtake it.
    pub reorder: f64,
    /// Delay of every datagram.
    pub delay: Duration,
    /// Extra delay of each copy, uniform in `[0, jitter]` (a jitter larger
    /// than the gap between datagrams reorders them too).
    pub jitter: Duration,
    /// The most a reordered datagram is held back.
    pub reorder_delay: Duration,
}

impl Default for Impairments {
    /// A perfect link: nothing dropped, duplicated, reordered or delayed;
    /// a reordered datagram would be held up to 20 ms.
    fn default() -> Self {
        Impairments {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder_delay: Duration::from_millis(20),
        }
    }
}

/// A rate outside `[0, 1]`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} must be a probability between 0 and 1, not {value}")]
pub struct BadRate {
    /// Which rate (`loss`, `duplicate`, `reorder`).
    pub name: &'static str,
    /// The value given.
    pub value: f64,
}

impl Impairments {
    /// Check that every rate is a probability.
    pub fn validate(&self) -> Result<(), BadRate> {
        for (name, value) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(BadRate { name, value });
            }
        }
        Ok(())
    }
}

/// What happens to one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Dropped.
    Drop,
    /// Sent after `delay`; when duplicated, a second copy after
    /// `duplicate`.
    Forward {
        /// How long after arrival the datagram goes out.
        delay: Duration,
        /// When duplicated, how long after arrival the copy goes out.
        duplicate: Option<Duration>,
        /// Whether it was held back so that later datagrams overtake it.
        reordered: bool,
    },
}

impl Fate {
    /// The copies to send, as delays from now (none when dropped).
    pub fn copies(&self) -> impl Iterator<Item = Duration> {
        let (a, b) = match *self {
            Fate::Drop => (None, None),
            Fate::Forward {
                delay, duplicate, ..
            } => (Some(delay), duplicate),
        };
        a.into_iter().chain(b)
    }
}

/// Draws the fate of each datagram from a seeded generator.
#[derive(Debug, Clone)]
pub struct Impairer {
    cfg: Impairments,
    rng: StdRng,
}

impl Impairer {
    /// An impairer for `cfg` whose draws come from `seed`. The rates are
    /// clamped to `[0, 1]`, NaN counting as 0 (see
    /// [`Impairments::validate`]).
    pub fn new(cfg: Impairments, seed: u64) -> Impairer {
        Impairer {
            cfg,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The impairments in force.
    pub fn config(&self) -> &Impairments {
        &self.cfg
    }

    /// The fate of the next datagram.
    pub fn fate(&mut self) -> Fate {
        let c = self.cfg;
        if self.rng.gen_bool(probability(c.loss)) {
            return Fate::Drop;
        }
        let duplicated = self.rng.gen_bool(probability(c.duplicate));
        let reordered = self.rng.gen_bool(probability(c.reorder));
        let held = if reordered && !c.reorder_delay.is_zero() {
            Duration::from_nanos(self.rng.gen_range(1..=nanos(c.reorder_delay)))
        } else {
            Duration::ZERO
        };
        let delay = c.delay + held + self.jitter();
        let duplicate = duplicated.then(|| c.delay + held + self.jitter());
        Fate::Forward {
            delay,
            duplicate,
            reordered,
        }
    }

    fn jitter(&mut self) -> Duration {
        if self.cfg.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.gen_range(0..=nanos(self.cfg.jitter)))
        }
    }
}

fn probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(cfg: Impairments, seed: u64, n: u32) -> (u32, u32, u32) {
        let mut imp = Impairer::new(cfg, seed);
        let (mut dropped, mut duplicated, mut reordered) = (0, 0, 0);
        for _ in 0..n {
            match imp.fate() {
                Fate::Drop => dropped += 1,
                Fate::Forward {
                    duplicate,
                    reordered: r,
                    ..
                } => {
                    duplicated += u32::from(duplicate.is_some());
                    reordered += u32::from(r);
                }
            }
        }
        (dropped, duplicated, reordered)
    }

    #[test]
    fn a_perfect_link_forwards_everything_at_once() {
        let mut imp = Impairer::new(Impairments::default(), 1);
        for _ in 0..1000 {
            assert_eq!(
                imp.fate(),
                Fate::Forward {
                    delay: Duration::ZERO,
                    duplicate: None,
                    reordered: false
                }
            );
        }
    }

    #[test]
    fn rates_are_close_to_what_was_asked() {
        let cfg = Impairments {
            loss: 0.05,
            duplicate: 0.02,
            reorder: 0.05,
            ..Impairments::default()
        };
        let n = 100_000;
        let (dropped, duplicated, reordered) = tally(cfg, 7, n);
        let near = |got: u32, p: f64, of: u32| {
            let want = p * f64::from(of);
            (f64::from(got) - want).abs() < 5.0 * (want * (1.0 - p)).sqrt()
        };
        assert!(near(dropped, 0.05, n), "dropped {dropped}");
        // Duplication and reordering apply to what was not dropped.
        assert!(
            near(duplicated, 0.02, n - dropped),
            "duplicated {duplicated}"
        );
        assert!(near(reordered, 0.05, n - dropped), "reordered {reordered}");
    }

    #[test]
    fn the_same_seed_gives_the_same_fates() {
        let cfg = Impairments {
            loss: 0.1,
            duplicate: 0.1,
            reorder: 0.1,
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(10),
            reorder_delay: Duration::from_millis(20),
        };
        let draw = |seed| {
            let mut imp = Impairer::new(cfg, seed);
            (0..500).map(|_| imp.fate()).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn delays_stay_within_their_bounds() {
        let cfg = Impairments {
            loss: 0.0,
            duplicate: 0.5,
            reorder: 0.5,
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(10),
            reorder_delay: Duration::from_millis(20),
        };
        let mut imp = Impairer::new(cfg, 3);
        let (mut held, mut on_time) = (0, 0);
        for _ in 0..10_000 {
            let f = imp.fate();
            let Fate::Forward { reordered, .. } = f else {
                panic!("nothing is lost at loss 0");
            };
            for d in f.copies() {
                assert!(d >= cfg.delay);
                let max = cfg.delay
                    + cfg.jitter
                    + if reordered {
                        cfg.reorder_delay
                    } else {
                        Duration::ZERO
                    };
                assert!(d <= max, "{d:?} over {max:?}");
                if d > cfg.delay + cfg.jitter {
                    assert!(reordered);
                    held += 1;
                } else {
                    on_time += 1;
                }
            }
        }
        assert!(held > 0 && on_time > 0);
    }

    #[test]
    fn certain_loss_drops_everything_and_copies_are_counted() {
        let all = Impairments {
            loss: 1.0,
            ..Impairments::default()
        };
        assert_eq!(tally(all, 9, 1000), (1000, 0, 0));
        assert_eq!(Fate::Drop.copies().count(), 0);
        let twice = Impairments {
            duplicate: 1.0,
            ..Impairments::default()
        };
        let mut imp = Impairer::new(twice, 9);
        assert_eq!(imp.fate().copies().count(), 2);
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        let bad = Impairments {
            loss: 1.5,
            ..Impairments::default()
        };
        assert_eq!(
            bad.validate(),
            Err(BadRate {
                name: "loss",
                value: 1.5
            })
        );
        let nan = Impairments {
            reorder: f64::NAN,
            ..Impairments::default()
        };
        assert!(nan.validate().is_err());
        assert!(Impairments::default().validate().is_ok());
    }
}
