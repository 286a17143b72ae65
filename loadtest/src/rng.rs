//! A tiny seeded generator (SplitMix64): the run's choices must repeat for a
//! given `--seed`, and that needs nothing cryptographic nor another crate.

/// SplitMix64 (Steele, Lea, Flood 2014): one u64 of state, full period.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one client: the run seed and the client index give
    /// independent streams.
    pub fn for_client(seed: u64, client: usize) -> Self {
        let mut r = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
        let offset = r.next_u64().wrapping_add(client as u64);
        Rng(offset.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is below 2^-40 for the
    /// small `n` used here.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_clients_differ() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_client(7, 0).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut c0 = Rng::for_client(7, 0);
        let mut c1 = Rng::for_client(7, 1);
        let s0: Vec<u64> = (0..8).map(|_| c0.next_u64()).collect();
        let s1: Vec<u64> = (0..8).map(|_| c1.next_u64()).collect();
        assert_ne!(s0, s1);
        let mut other = Rng::for_client(8, 0);
        assert_ne!(s0[0], other.next_u64());
    }

    #[test]
    fn below_stays_in_range_and_hits_every_value() {
        let mut r = Rng::for_client(1, 0);
        let mut seen = [0u32; 5];
        for _ in 0..1000 {
            let v = r.below(5);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 100), "{seen:?}");
    }
}
