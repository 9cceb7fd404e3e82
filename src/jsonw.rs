//! Hand-written JSON output for the per-request writers (the access line,
//! `proxy::access_line`, and the assertion's claims, [`crate::identity`]): strings escaped
//! exactly as `serde_json` escapes them, unsigned integers, object keys. No `fmt`, no
//! serializer state; clean runs of a string are found eight bytes at a time and copied
//! whole.

/// `"s"`, escaped as `serde_json` escapes it: `"`, `\`, and control characters below
/// U+0020 (`\b \f \n \r \t` short, the rest `\u00XX`); everything else as is.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    escaped(out, s);
    out.push(b'"');
}

/// The inside of [`string`]: `s` escaped, without the quotes (a string written in
/// pieces). Most text needs no escaping: one scan, one copy.
pub fn escaped(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let clean = clean_len(b);
    out.extend_from_slice(&b[..clean]);
    if clean < b.len() {
        escape_from(out, b, clean);
    }
}

/// [`escaped`] from the first byte that needs escaping (`b[from]`) on.
#[cold]
#[inline(never)]
fn escape_from(out: &mut Vec<u8>, b: &[u8], mut from: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    while let Some(&c) = b.get(from) {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]]),
        }
        from += 1;
        let at = from + clean_len(&b[from..]);
        out.extend_from_slice(&b[from..at]);
        from = at;
    }
}

/// Bytes a JSON string escapes.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Length of the prefix of `b` that needs no escaping: eight bytes at a time (the last
/// word overlapping the one before it, so a clean string of eight bytes or more is
/// never read byte by byte), then byte by byte from the word that has one.
fn clean_len(b: &[u8]) -> usize {
    let n = b.len();
    if n < 8 {
        return scan(b, 0);
    }
    let mut i = 0;
    while i + 8 <= n {
        if needs_escape(word(b, i)) {
            return scan(b, i);
        }
        i += 8;
    }
    if i == n || !needs_escape(word(b, n - 8)) {
        return n;
    }
    scan(b, i)
}

/// The eight bytes of `b` at `at` (`at + 8 <= b.len()`), little-endian.
fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Index of the first byte at or after `from` that needs escaping (`b.len()`: none).
fn scan(b: &[u8], from: usize) -> usize {
    b[from..].iter().position(|&c| ESCAPED[usize::from(c)]).map_or(b.len(), |i| from + i)
}

/// Whether any of the eight bytes of `w` is `"`, `\` or below 0x20 (exact: the
/// "has a byte less than n" test is exact for n ≤ 128).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0;
    below_space || has_zero(w ^ (ONES * u64::from(b'"'))) || has_zero(w ^ (ONES * u64::from(b'\\')))
}

/// `,"name":` (a key after an earlier member).
pub fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// `,"name":"value"`.
pub fn str_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.reserve(name.len() + value.len() + 6);
    key(out, name);
    out.push(b'"');
    escaped(out, value);
    out.push(b'"');
}

/// An unsigned integer in decimal (two digits per division).
pub fn uint(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(decimal(v, &mut [0u8; 20]));
}

/// `v` in decimal, written into the tail of `digits` (the one decimal writer of the
/// crate: the access line, the assertion, the upstream request head, presigned URLs).
pub fn decimal(mut v: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    while v >= 100 {
        let pair = usize::from((v % 100) as u8) * 2;
        v /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = usize::from(v as u8) * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + v as u8;
    }
    &digits[at..]
}

/// `00`, `01`, … `99`.
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json() {
        let mut samples: Vec<String> =
            ["plain", "", "q\"uote", "back\\slash", "ctl\u{0}\u{1f}\u{7f}", "nl\n\r\t\u{8}\u{c}", "ünïcødé ✓"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        // Every byte that needs escaping at every offset of a long clean run (the
        // eight-byte skip must never step over one), and every ASCII byte alone.
        // Every length around the word size, so the overlapping last word is exercised.
        for c in (0u8..0x20).chain([b'"', b'\\', b'a', 0x7f]) {
            for len in 1..=25 {
                for at in 0..len {
                    let mut s = "abcdefghijklmnopqrstuvwxy".as_bytes()[..len].to_vec();
                    s[at] = c;
                    samples.push(String::from_utf8(s).unwrap());
                }
            }
        }
        samples.extend((0u8..0x80).map(|c| char::from(c).to_string()));
        samples.push("é".repeat(40) + "\"" + &"x".repeat(17) + "\n");
        for s in &samples {
            let mut ours = Vec::new();
            string(&mut ours, s);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn escape_word_test_is_exact() {
        for c in 0u8..=255 {
            for at in 0..8 {
                let mut w = *b"abcdefgh";
                w[at] = c;
                let expected = c < 0x20 || c == b'"' || c == b'\\';
                assert_eq!(needs_escape(u64::from_le_bytes(w)), expected, "{c:#x} at {at}");
            }
        }
    }

    #[test]
    fn integers() {
        let mut n = Vec::new();
        for v in [0u64, 7, 9, 10, 99, 100, 101, 404, 1000, 1_764_473_030, u64::from(u16::MAX), u64::MAX, u64::MAX / 10]
        {
            n.clear();
            uint(&mut n, v);
            assert_eq!(n, v.to_string().into_bytes());
        }
    }
}
