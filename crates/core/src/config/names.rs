//! The one rule for app names and numeric ids, used by every way in (CLI flags, ecosystem files, the
//! JS API, the daemon's requests).
//!
//! A name is refused when it is empty (or only spaces), or holds a control character (newline, tab,
//! ESC, DEL, the C1 range) or a Unicode line/paragraph separator: such a name would break the list
//! table, the log prefix and `rpm2 logs`. Names that look like paths (`a/b`, `../x`) stay allowed:
//! their log file names are sanitized ([`crate::base::paths`]).

/// Why `name` cannot be an app name, as one line for people; None when it can.
pub fn name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some(format!("name {name:?} cannot be used: a name must not be empty"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        return Some(format!(
            "name {name:?} cannot be used: it holds the control character U+{:04X}; use letters, digits, '-', '_' or '.'",
            c as u32
        ));
    }
    None
}

/// `name` when it is a valid app name, else the one-line reason ([`name_problem`]).
pub fn check_name(name: &str) -> Result<&str, String> {
    match name_problem(name) {
        Some(p) => Err(p),
        None => Ok(name),
    }
}

/// `text` as a process id (pm_id), or one line saying what was expected (`what` names the argument).
pub fn parse_id(text: &str, what: &str) -> Result<u32, String> {
    text.trim().parse::<u32>().map_err(|_| format!("{what} must be a process id (a number such as 0), got {text:?}"))
}

/// A `scale` count: `N`, `+N` or `-N`; else one line saying what was expected.
pub fn parse_scale(text: &str) -> Result<(char, u32), String> {
    let t = text.trim();
    let (sign, digits) = match t.chars().next() {
        Some(c @ ('+' | '-')) => (c, &t[1..]),
        _ => ('=', t),
    };
    match digits.parse::<u32>() {
        Ok(n) if !digits.starts_with('+') && !digits.starts_with('-') => Ok((sign, n)),
        _ => Err(format!("the instance count must be a number N, +N or -N, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["api", "my app", "a/b", "../x", "caf\u{e9}", "w:1", "\u{1F600}"] {
            assert_eq!(check_name(ok), Ok(ok), "{ok:?}");
        }
        for bad in ["", "  ", "two\nlines", "tab\there", "esc\u{1b}[31m", "del\u{7f}", "c1\u{85}", "ls\u{2028}"] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("cannot be used") && !e.contains('\n'), "{bad:?}: {e}");
        }
    }

    #[test]
    fn ids_and_counts() {
        assert_eq!(parse_id("3", "id"), Ok(3));
        assert_eq!(parse_id(" 12 ", "id"), Ok(12));
        for bad in ["abc", "", "-1", "1.5", "0x1"] {
            assert!(parse_id(bad, "the id").unwrap_err().starts_with("the id must be"), "{bad:?}");
        }
        assert_eq!(parse_scale("3"), Ok(('=', 3)));
        assert_eq!(parse_scale("+2"), Ok(('+', 2)));
        assert_eq!(parse_scale("-1"), Ok(('-', 1)));
        for bad in ["abc", "", "+", "--1", "+-1", "2x", "1.5"] {
            assert!(parse_scale(bad).is_err(), "{bad:?}");
        }
    }
}
