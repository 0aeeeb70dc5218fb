//! DANM's allocation bit array: MSB-first bits, stored as standard base64 with padding (behaviour §5.1).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::IpamError;

/// The largest bitmap DANM supports: 2^23 bits ("DANM does not support networks with more than 2^23 IP addresses").
pub const MAX_BITS: u64 = 1 << 23;

/// A fixed-length bit array. Bit `i` lives in byte `i / 8` under the mask `0x80 >> (i % 8)`.
///
/// A new bitmap of `n` bits has `ceil(n / 8)` bytes. A decoded one takes its length from the bytes (`bytes * 8`),
/// exactly as DANM does, so a /30 map (4 bits) reads back as 8 bits; callers bound their searches by the CIDR size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bitmap {
    bytes: Vec<u8>,
    bits: usize,
}

impl Bitmap {
    /// An all-clear bitmap of `bits` bits. Fails above [`MAX_BITS`].
    pub fn new(bits: u64) -> Result<Self, IpamError> {
        if bits > MAX_BITS {
            return Err(IpamError::TooManyAddresses { bits });
        }
        let bits = bits as usize;
        Ok(Bitmap {
            bytes: vec![0; bits.div_ceil(8)],
            bits,
        })
    }

    /// Reads DANM's base64 text. The length is `bytes * 8`.
    pub fn decode(text: &str) -> Result<Self, IpamError> {
        let bytes = STANDARD.decode(text).map_err(|e| IpamError::CorruptBitmap {
            reason: format!("not valid base64: {e}"),
        })?;
        if bytes.len() as u64 * 8 > MAX_BITS {
            return Err(IpamError::TooManyAddresses {
                bits: bytes.len() as u64 * 8,
            });
        }
        let bits = bytes.len() * 8;
        Ok(Bitmap { bytes, bits })
    }

    /// DANM's base64 text (standard alphabet, padded).
    pub fn encode(&self) -> String {
        STANDARD.encode(&self.bytes)
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.bits
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The raw bytes, MSB first.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether bit `i` is set; bits beyond the end read as clear.
    pub fn get(&self, i: usize) -> bool {
        i < self.bits && self.bytes[i / 8] & mask(i) != 0
    }

    /// Sets bit `i`. Returns whether it was clear before; out-of-range indices are ignored (returns `false`).
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.bits {
            return false;
        }
        let was_clear = self.bytes[i / 8] & mask(i) == 0;
        self.bytes[i / 8] |= mask(i);
        was_clear
    }

    /// Clears bit `i`. Returns whether it was set before; out-of-range indices are ignored (returns `false`).
    pub fn clear(&mut self, i: usize) -> bool {
        if i >= self.bits {
            return false;
        }
        let was_set = self.bytes[i / 8] & mask(i) != 0;
        self.bytes[i / 8] &= !mask(i);
        was_set
    }

    /// The lowest clear bit in `first..=last` (clamped to the bitmap), skipping full bytes.
    pub fn first_clear_in(&self, first: usize, last: usize) -> Option<usize> {
        if self.bits == 0 || first >= self.bits {
            return None;
        }
        let last = last.min(self.bits - 1);
        let mut i = first;
        while i <= last {
            if i.is_multiple_of(8) && self.bytes[i / 8] == 0xff {
                i += 8;
                continue;
            }
            if !self.get(i) {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Number of set bits in `first..=last` (clamped to the bitmap).
    pub fn count_set_in(&self, first: usize, last: usize) -> usize {
        if self.bits == 0 || first >= self.bits {
            return 0;
        }
        let last = last.min(self.bits - 1);
        let mut n = 0;
        let mut i = first;
        while i <= last {
            if i.is_multiple_of(8) && i + 7 <= last {
                n += self.bytes[i / 8].count_ones() as usize;
                i += 8;
                continue;
            }
            n += usize::from(self.get(i));
            i += 1;
        }
        n
    }

    /// Indices of the set bits in `first..=last`, ascending.
    pub fn iter_set_in(&self, first: usize, last: usize) -> impl Iterator<Item = usize> + '_ {
        let last = if self.bits == 0 {
            0
        } else {
            last.min(self.bits - 1)
        };
        let empty = self.bits == 0 || first > last;
        (first..=last).filter(move |&i| !empty && self.get(i))
    }
}

fn mask(i: usize) -> u8 {
    0x80 >> (i % 8)
}
