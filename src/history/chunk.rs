//! A Gorilla-style compressed chunk of samples (Pelkonen et al., VLDB 2015), as Prometheus' TSDB
//! uses: timestamps as delta-of-delta, values as XOR against the previous value, plus a decimal
//! mode for values that are integers or short decimals.
//!
//! Regular collection intervals make most delta-of-deltas zero (one bit). Unchanged values cost
//! one bit. Host metrics are mostly counters of bytes or of 1/100 s ticks: as doubles their XOR
//! spans 20 to 45 bits, but as scaled integers (value x 10^k) their delta-of-delta is small, so
//! such values are encoded as an integer delta-of-delta when that is exact (the idea behind
//! VictoriaMetrics' decimal encoding), and as Gorilla XOR otherwise.
//!
//! Value control bits: `0` same value; `10` decimal delta-of-delta at the chunk's current scale;
//! `11` XOR (then `0` reuse the previous bit window, `1` a new window).

/// Samples per chunk before it is sealed; Prometheus uses 120, we use more to halve per-chunk
/// overhead, since chunks are only ever decoded whole.
pub const MAX_SAMPLES_PER_CHUNK: u16 = 240;

/// An append-only compressed run of `(timestamp_ms, value)` samples with increasing timestamps.
#[derive(Clone, Debug)]
pub struct Chunk {
    bits: BitWriter,
    count: u16,
    first_ts: i64,
    last_ts: i64,
    last_delta: i64,
    last_value_bits: u64,
    /// Leading and trailing zero counts of the previous XOR block, or `None` before the first.
    last_window: Option<(u8, u8)>,
    /// The previous value as a scaled integer, when it is one.
    decimal: Option<Decimal>,
}

/// A value written as `int / 10^scale`, with the previous integer delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decimal {
    scale: u8,
    int: i64,
    delta: i64,
}

/// Exact powers of ten for the decimal scales.
const POWERS_OF_TEN: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// `value * 10^scale` as an integer, if dividing it back gives exactly `value`.
fn to_scaled(value: f64, scale: u8) -> Option<i64> {
    let power = POWERS_OF_TEN[usize::from(scale)];
    let scaled = (value * power).round();
    // Beyond 2^53 integers are no longer exact in a double.
    if !value.is_finite() || scaled.abs() >= 9_007_199_254_740_992.0 {
        return None;
    }
    let int = scaled as i64;
    // Compare bits, so -0.0 (which the integer cannot carry) falls back to XOR.
    (from_scaled(int, scale).to_bits() == value.to_bits()).then_some(int)
}

fn from_scaled(int: i64, scale: u8) -> f64 {
    int as f64 / POWERS_OF_TEN[usize::from(scale)]
}

/// The smallest scale that represents `value` exactly, as the starting decimal state.
fn decimal_of(value: f64) -> Option<Decimal> {
    (0..POWERS_OF_TEN.len() as u8).find_map(|scale| {
        to_scaled(value, scale).map(|int| Decimal {
            scale,
            int,
            delta: 0,
        })
    })
}

impl Chunk {
    pub fn new() -> Chunk {
        Chunk {
            bits: BitWriter::default(),
            count: 0,
            first_ts: 0,
            last_ts: 0,
            last_delta: 0,
            last_value_bits: 0,
            last_window: None,
            decimal: None,
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn is_full(&self) -> bool {
        self.count >= MAX_SAMPLES_PER_CHUNK
    }

    pub fn first_timestamp(&self) -> i64 {
        self.first_ts
    }

    pub fn last_timestamp(&self) -> i64 {
        self.last_ts
    }

    /// Heap bytes held by the encoded stream.
    pub fn heap_bytes(&self) -> usize {
        self.bits.bytes.capacity()
    }

    /// Freezes the chunk into its compact read-only form, dropping the encoder's state.
    pub fn seal(self) -> SealedChunk {
        SealedChunk {
            bytes: self.bits.bytes.into_boxed_slice(),
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            count: self.count,
        }
    }

    /// Appends a sample. The caller guarantees `ts` is greater than the last timestamp.
    pub fn append(&mut self, ts: i64, value: f64) {
        let value_bits = value.to_bits();
        if self.count == 0 {
            self.first_ts = ts;
            self.bits.write(value_bits, 64);
            self.decimal = decimal_of(value);
        } else {
            let delta = ts - self.last_ts;
            self.write_delta_of_delta(delta - self.last_delta);
            self.last_delta = delta;
            self.write_value(value);
        }
        self.last_ts = ts;
        self.last_value_bits = value_bits;
        self.count += 1;
    }

    /// Decodes every sample in order.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.bits.bytes, self.count, self.first_ts)
    }

    fn write_delta_of_delta(&mut self, dod: i64) {
        // The bucket widths are Prometheus' (millisecond timestamps), widest last.
        if dod == 0 {
            self.bits.write(0b0, 1);
        } else if fits_in_bits(dod, 14) {
            self.bits.write(0b10, 2);
            self.bits.write(dod as u64, 14);
        } else if fits_in_bits(dod, 17) {
            self.bits.write(0b110, 3);
            self.bits.write(dod as u64, 17);
        } else if fits_in_bits(dod, 20) {
            self.bits.write(0b1110, 4);
            self.bits.write(dod as u64, 20);
        } else {
            self.bits.write(0b1111, 4);
            self.bits.write(dod as u64, 64);
        }
    }

    fn write_value(&mut self, value: f64) {
        let value_bits = value.to_bits();
        if value_bits == self.last_value_bits {
            self.bits.write(0b0, 1);
            return;
        }
        if let Some(decimal) = self.decimal
            && let Some(int) = to_scaled(value, decimal.scale)
        {
            let delta = int - decimal.int;
            self.bits.write(0b10, 2);
            write_signed(&mut self.bits, delta - decimal.delta);
            self.decimal = Some(Decimal {
                int,
                delta,
                ..decimal
            });
            return;
        }
        self.bits.write(0b11, 2);
        let xor = value_bits ^ self.last_value_bits;
        // Leading zeros are stored in 5 bits, so at most 31.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        match self.last_window {
            Some((last_leading, last_trailing))
                if leading >= last_leading && trailing >= last_trailing =>
            {
                let significant = 64 - last_leading - last_trailing;
                self.bits.write(0b0, 1);
                self.bits.write(xor >> last_trailing, significant);
            }
            _ => {
                let significant = 64 - leading - trailing;
                self.bits.write(0b1, 1);
                self.bits.write(u64::from(leading), 5);
                // 64 significant bits do not fit in 6 bits; 0 stands for 64 (it cannot occur
                // otherwise because xor != 0).
                self.bits.write(u64::from(significant & 0x3f), 6);
                self.bits.write(xor >> trailing, significant);
                self.last_window = Some((leading, trailing));
            }
        }
        self.decimal = decimal_of(value);
    }
}

/// Writes a signed integer delta-of-delta in the smallest of six buckets.
fn write_signed(bits: &mut BitWriter, value: i64) {
    if value == 0 {
        bits.write(0b0, 1);
    } else if fits_in_bits(value, 7) {
        bits.write(0b10, 2);
        bits.write(value as u64, 7);
    } else if fits_in_bits(value, 13) {
        bits.write(0b110, 3);
        bits.write(value as u64, 13);
    } else if fits_in_bits(value, 20) {
        bits.write(0b1110, 4);
        bits.write(value as u64, 20);
    } else if fits_in_bits(value, 32) {
        bits.write(0b11110, 5);
        bits.write(value as u64, 32);
    } else {
        bits.write(0b11111, 5);
        bits.write(value as u64, 64);
    }
}

fn read_signed(reader: &mut BitReader<'_>) -> i64 {
    let mut prefix = 0;
    while prefix < 5 && reader.read(1) == 1 {
        prefix += 1;
    }
    match prefix {
        0 => 0,
        1 => sign_extend(reader.read(7), 7),
        2 => sign_extend(reader.read(13), 13),
        3 => sign_extend(reader.read(20), 20),
        4 => sign_extend(reader.read(32), 32),
        _ => reader.read(64) as i64,
    }
}

impl Default for Chunk {
    fn default() -> Chunk {
        Chunk::new()
    }
}

/// A full chunk: the encoded bytes and the few facts needed to decode and trim it.
#[derive(Clone, Debug)]
pub struct SealedChunk {
    bytes: Box<[u8]>,
    first_ts: i64,
    last_ts: i64,
    count: u16,
}

impl SealedChunk {
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn first_timestamp(&self) -> i64 {
        self.first_ts
    }

    pub fn last_timestamp(&self) -> i64 {
        self.last_ts
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.bytes, self.count, self.first_ts)
    }
}

/// Decoding iterator over a chunk's samples.
pub struct ChunkIter<'a> {
    reader: BitReader<'a>,
    remaining: u16,
    decoded: u16,
    ts: i64,
    delta: i64,
    value_bits: u64,
    window: Option<(u8, u8)>,
    decimal: Option<Decimal>,
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<(i64, f64)> {
        if self.remaining == 0 {
            return None;
        }
        if self.decoded == 0 {
            self.value_bits = self.reader.read(64);
            self.decimal = decimal_of(f64::from_bits(self.value_bits));
        } else {
            self.delta = self.delta.wrapping_add(self.read_delta_of_delta());
            self.ts = self.ts.wrapping_add(self.delta);
            self.read_value();
        }
        self.decoded += 1;
        self.remaining -= 1;
        Some((self.ts, f64::from_bits(self.value_bits)))
    }
}

impl ChunkIter<'_> {
    fn new(bytes: &[u8], count: u16, first_ts: i64) -> ChunkIter<'_> {
        ChunkIter {
            reader: BitReader { bytes, position: 0 },
            remaining: count,
            decoded: 0,
            ts: first_ts,
            delta: 0,
            value_bits: 0,
            window: None,
            decimal: None,
        }
    }

    fn read_delta_of_delta(&mut self) -> i64 {
        let mut prefix = 0;
        while prefix < 4 && self.reader.read(1) == 1 {
            prefix += 1;
        }
        match prefix {
            0 => 0,
            1 => sign_extend(self.reader.read(14), 14),
            2 => sign_extend(self.reader.read(17), 17),
            3 => sign_extend(self.reader.read(20), 20),
            _ => self.reader.read(64) as i64,
        }
    }

    fn read_value(&mut self) {
        if self.reader.read(1) == 0 {
            return;
        }
        if self.reader.read(1) == 0 {
            // Decimal: the encoder only writes this while a decimal state exists.
            let Some(decimal) = self.decimal else { return };
            let delta = decimal.delta.wrapping_add(read_signed(&mut self.reader));
            let int = decimal.int.wrapping_add(delta);
            self.value_bits = from_scaled(int, decimal.scale).to_bits();
            self.decimal = Some(Decimal {
                int,
                delta,
                ..decimal
            });
            return;
        }
        let (leading, trailing) = if self.reader.read(1) == 0 {
            self.window.unwrap_or((0, 0))
        } else {
            let leading = self.reader.read(5) as u8;
            let mut significant = self.reader.read(6) as u8;
            if significant == 0 {
                significant = 64;
            }
            let window = (leading, 64 - leading - significant);
            self.window = Some(window);
            window
        };
        let significant = 64 - leading - trailing;
        let xor = self.reader.read(significant) << trailing;
        self.value_bits ^= xor;
        self.decimal = decimal_of(f64::from_bits(self.value_bits));
    }
}

/// True when `value` fits the signed range Prometheus allots to an `n`-bit bucket.
fn fits_in_bits(value: i64, n: u32) -> bool {
    let limit = 1i64 << (n - 1);
    -limit < value && value <= limit
}

fn sign_extend(bits: u64, n: u32) -> i64 {
    let value = bits as i64;
    if value > (1i64 << (n - 1)) {
        value - (1i64 << n)
    } else {
        value
    }
}

#[derive(Clone, Debug, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bit_len: usize,
}

impl BitWriter {
    /// Writes the low `n` bits of `value`, most significant first.
    fn write(&mut self, value: u64, n: u8) {
        let mut remaining = u32::from(n);
        while remaining > 0 {
            let used = (self.bit_len % 8) as u32;
            if used == 0 {
                self.bytes.push(0);
            }
            let free = 8 - used;
            let take = free.min(remaining);
            let shift = remaining - take;
            let chunk = ((value >> shift) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= chunk << (free - take);
            self.bit_len += take as usize;
            remaining -= take;
        }
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl BitReader<'_> {
    /// Reads `n` bits, most significant first. Reading past the end yields zeros; the writer
    /// and the sample count keep that from happening on a well-formed chunk.
    fn read(&mut self, n: u8) -> u64 {
        let mut value = 0u64;
        let mut remaining = u32::from(n);
        while remaining > 0 {
            let byte = self.bytes.get(self.position / 8).copied().unwrap_or(0);
            let used = (self.position % 8) as u32;
            let free = 8 - used;
            let take = free.min(remaining);
            let bits = (u64::from(byte) >> (free - take)) & ((1u64 << take) - 1);
            value = if take == 64 {
                bits
            } else {
                (value << take) | bits
            };
            self.position += take as usize;
            remaining -= take;
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(samples: &[(i64, f64)]) -> Chunk {
        let mut chunk = Chunk::new();
        for &(ts, v) in samples {
            chunk.append(ts, v);
        }
        let decoded: Vec<(i64, u64)> = chunk.iter().map(|(t, v)| (t, v.to_bits())).collect();
        let expected: Vec<(i64, u64)> = samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
        assert_eq!(decoded, expected);
        let sealed: Vec<(i64, u64)> = chunk
            .clone()
            .seal()
            .iter()
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        assert_eq!(sealed, expected);
        chunk
    }

    #[test]
    fn regular_constant_series_costs_about_two_bits_per_sample() {
        let samples: Vec<(i64, f64)> = (0..240).map(|i| (1_000 + i * 15_000, 42.0)).collect();
        let chunk = roundtrip(&samples);
        // 8 bytes for the first value, then 2 bits per sample (dod 0, xor 0) after the second.
        assert!(
            chunk.bits.bytes.len() <= 8 + 240 * 2 / 8 + 8,
            "{}",
            chunk.bits.bytes.len()
        );
    }

    #[test]
    fn irregular_timestamps_and_special_values_roundtrip() {
        let mut samples = vec![
            (0, 0.0),
            (1, -0.0),
            (5_000, f64::NAN),
            (5_001, f64::INFINITY),
            (900_000, f64::NEG_INFINITY),
            (900_003, crate::model::stale_marker()),
            (i64::MAX / 4, 1e300),
            (i64::MAX / 4 + 1, f64::MIN_POSITIVE),
            (i64::MAX / 4 + 2, 123_456_789.125),
        ];
        let mut ts = i64::MAX / 4 + 2;
        for i in 0..200 {
            ts += 1_000 + (i * 7919) % 300_000;
            samples.push((ts, (i as f64) * 1.000_001));
        }
        roundtrip(&samples);
    }

    #[test]
    fn counters_with_varied_increments_roundtrip() {
        let mut value = 1.0e9;
        let samples: Vec<(i64, f64)> = (0..240)
            .map(|i| {
                value += ((i * 37) % 1013) as f64 + 0.01 * (i % 7) as f64;
                (1_700_000_000_000 + i * 1_000 + (i % 3), value)
            })
            .collect();
        roundtrip(&samples);
    }

    #[test]
    fn decimal_values_cost_a_few_bits() {
        // CPU seconds in 1/100 s ticks, growing by about one second per second.
        let mut ticks = 123_456_789i64;
        let samples: Vec<(i64, f64)> = (0..240)
            .map(|i| {
                ticks += 95 + (i * 7) % 11;
                (i * 1_000, ticks as f64 / 100.0)
            })
            .collect();
        let chunk = roundtrip(&samples);
        let bits_per_sample = chunk.bits.bytes.len() as f64 * 8.0 / 240.0;
        assert!(bits_per_sample < 14.0, "{bits_per_sample}");
    }

    #[test]
    fn scale_changes_and_non_decimal_values_roundtrip() {
        let samples: Vec<(i64, f64)> = [
            1.0,
            2.5,
            2.75,
            3.0,
            1e-7,
            0.1 + 0.2,
            1.0 / 3.0,
            4e15,
            9.1e15,
            -2.5,
            -0.0,
            0.0,
            f64::NAN,
            7.0,
            crate::model::stale_marker(),
            8.0,
            1.234_567_891,
            1.234_567_892,
        ]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64 * 1_000, *v))
        .collect();
        roundtrip(&samples);
    }

    #[test]
    fn random_mixes_of_value_shapes_roundtrip() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200 {
            let mut ts = (next() % 1_000_000_000) as i64;
            let mut value = 0.0f64;
            let samples: Vec<(i64, f64)> = (0..MAX_SAMPLES_PER_CHUNK)
                .map(|_| {
                    ts += 1 + (next() % 3 == 0) as i64 * (next() % 100_000) as i64 + 1_000;
                    value = match next() % 8 {
                        0 => value,
                        1 => value + (next() % 1_000) as f64,
                        2 => value + (next() % 1_000) as f64 / 100.0,
                        3 => f64::from_bits(next()),
                        4 => (next() % 10) as f64 * 0.1,
                        5 => -value,
                        6 => value * 1.000_000_1,
                        _ => (next() as i64 >> (next() % 64)) as f64,
                    };
                    (ts, value)
                })
                .collect();
            roundtrip(&samples);
        }
    }

    #[test]
    fn bit_buckets_match_prometheus_ranges() {
        assert!(fits_in_bits(8192, 14));
        assert!(!fits_in_bits(8193, 14));
        assert!(fits_in_bits(-8191, 14));
        assert!(!fits_in_bits(-8192, 14));
        assert_eq!(sign_extend(8192, 14), 8192);
        assert_eq!(sign_extend((-8191i64 as u64) & 0x3fff, 14), -8191);
    }
}
