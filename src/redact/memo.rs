//! Short texts the engine found clean, remembered per thread: the access line's `user`,
//! `rule` and `path` repeat from request to request (one caller, one rule, a polled
//! endpoint), and each costs an anchor scan (the caller's e-mail, with its `@`, a second
//! scan and a `memmem`) that gives the same answer every time.
//!
//! A slot holds the engine's id ([`super::Redactor`] values are numbered as built, so a
//! reload's new operator patterns never meet an old verdict) and the text itself, compared
//! byte for byte: a text is written unscanned only if exactly it was scanned clean by
//! exactly this engine. Only "nothing to redact" is remembered; a text with a secret is
//! redacted every time.

use std::cell::RefCell;

/// Slots per thread (direct-mapped by a hash of the text).
const SLOTS: usize = 64;
/// Longer texts are not remembered (the slot would cost more than it saves).
pub const MAX_LEN: usize = 96;

struct Slot {
    /// The engine's id; 0: empty (ids start at 1).
    engine: u64,
    text: Vec<u8>,
}

thread_local! {
    static CLEAN: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// Whether `engine` scanned exactly `text` clean on this thread (and the slot still holds it).
pub fn is_clean(engine: u64, text: &[u8]) -> bool {
    CLEAN.with(|c| {
        let Ok(slots) = c.try_borrow() else { return false };
        slots.get(slot_of(text)).is_some_and(|s| s.engine == engine && s.text == text)
    })
}

/// Remembers that `engine` found nothing in `text` (`text.len() <= MAX_LEN`).
pub fn remember_clean(engine: u64, text: &[u8]) {
    if text.len() > MAX_LEN {
        return;
    }
    CLEAN.with(|c| {
        let Ok(mut slots) = c.try_borrow_mut() else { return };
        if slots.is_empty() {
            slots.resize_with(SLOTS, || Slot { engine: 0, text: Vec::new() });
        }
        if let Some(s) = slots.get_mut(slot_of(text)) {
            s.engine = engine;
            s.text.clear();
            s.text.extend_from_slice(text);
        }
    });
}

/// A multiply-mix of the length and the first and last eight bytes (a slot index only;
/// the text is compared whole).
fn slot_of(text: &[u8]) -> usize {
    let n = text.len();
    let word = |b: &[u8]| b.iter().fold(0u64, |w, &c| w << 8 | u64::from(c));
    let (head, tail) = if n >= 8 { (word(&text[..8]), word(&text[n - 8..])) } else { (word(text), 0) };
    let h = (head ^ tail.rotate_left(29) ^ n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 58) as usize % SLOTS
}

/// A clean text whose slot ([`slot_of`]) is that of [`SECRET_TWIN`].
#[cfg(test)]
pub const CLEAN_TWIN: &str = "ftp://abXsecretpw@host";
/// `scheme://user:password@host`: the password is a secret (`userinfo`).
#[cfg(test)]
pub const SECRET_TWIN: &str = "ftp://ab:secretpw@host";

#[cfg(test)]
mod tests {
    use super::*;

    /// `proxy::access_line`'s test of remembered fields relies on this pair sharing a slot
    /// (same length, same first and last eight bytes): only the byte-for-byte comparison
    /// tells them apart.
    #[test]
    fn a_clean_text_and_its_secret_twin_share_a_slot() {
        assert_eq!(slot_of(CLEAN_TWIN.as_bytes()), slot_of(SECRET_TWIN.as_bytes()));
        assert_ne!(CLEAN_TWIN, SECRET_TWIN);
    }
}
