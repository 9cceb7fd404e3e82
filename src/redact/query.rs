//! Query strings in log fields: only allow-listed parameters keep their
//! values (design §9). `page=2&code=abc&x` → `page=2&code=[REDACTED]&x`; a name
//! that does not look like a parameter name (it could be a bare token) is
//! replaced whole.

use std::borrow::Cow;

/// Parameters whose values are logged: pagination, ordering and format,
/// never free text or identifiers a client chose.
pub const LOGGED_PARAMS: &[&str] = &["page", "page_size", "per_page", "limit", "offset", "ordering", "sort", "format"];

/// `query` with every value outside [`LOGGED_PARAMS`] replaced.
pub fn filter_query(query: &str) -> Cow<'_, str> {
    if super::disabled_for_test() {
        return Cow::Borrowed(query);
    }
    let plain_name = |n: &str| n.len() <= 32 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-[]".contains(&b));
    let keep = |pair: &str| match pair.split_once('=') {
        Some((name, _)) => LOGGED_PARAMS.contains(&name),
        None => pair.is_empty() || plain_name(pair),
    };
    if query.split('&').all(keep) {
        return Cow::Borrowed(query); // no alloc: the common `page=2`
    }
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            _ if keep(pair) => out.push_str(pair),
            Some((name, _)) if plain_name(name) => {
                out.push_str(name);
                out.push_str("=[REDACTED]");
            }
            _ => out.push_str("[REDACTED]"),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::filter_query;

    #[test]
    fn only_allow_listed_values_are_logged() {
        let rows = [
            ("page=2", "page=2"),
            ("page=2&ordering=-date&format=json", "page=2&ordering=-date&format=json"),
            ("code=abc&state=xyz", "code=[REDACTED]&state=[REDACTED]"),
            ("q=acme&page=3", "q=[REDACTED]&page=3"),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig&page=1", "[REDACTED]&page=1"),
            ("debug&page=1", "debug&page=1"),
            ("%73ecret=x", "[REDACTED]"),
        ];
        for (input, expected) in rows {
            assert_eq!(filter_query(input), expected, "{input}");
        }
    }
}
