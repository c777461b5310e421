//! Box-drawn tables as PM2 prints them, with widths computed on visible text (ANSI codes ignored).

/// Visible width of `s` in terminal columns: ANSI escape sequences count for nothing, wide characters
/// (CJK, most emoji) for two, combining marks and other zero-width characters for none, every other
/// character for one (East Asian "ambiguous" characters count as narrow, as in most terminals).
pub fn visible_width(s: &str) -> usize {
    use unicode_width::UnicodeWidthChar;
    let mut w = 0;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            if c.is_ascii_alphabetic() {
                esc = false;
            }
        } else if c == '\x1b' {
            esc = true;
        } else {
            w += c.width().unwrap_or(0);
        }
    }
    w
}

/// Renders rows under a header as a box-drawn table (`┌─┬─┐`), one space of padding each side.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| visible_width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(visible_width(c));
        }
    }
    let line = |l: &str, m: &str, r: &str| {
        let mut s = String::from(l);
        for (i, w) in widths.iter().enumerate() {
            s.push_str(&"─".repeat(w + 2));
            s.push_str(if i + 1 == n { r } else { m });
        }
        s.push('\n');
        s
    };
    let row = |cells: &[String]| {
        let mut s = String::from("│");
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).map(String::as_str).unwrap_or("");
            s.push(' ');
            s.push_str(c);
            s.push_str(&" ".repeat(w - visible_width(c) + 1));
            s.push('│');
        }
        s.push('\n');
        s
    };
    let mut out = line("┌", "┬", "┐");
    out.push_str(&row(header));
    if !rows.is_empty() {
        out.push_str(&line("├", "┼", "┤"));
        for r in rows {
            out.push_str(&row(r));
        }
    }
    out.push_str(&line("└", "┴", "┘"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_on_visible_width() {
        let t = render(&["id".into(), "status".into()], &[vec!["0".into(), "\x1b[32monline\x1b[0m".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5);
        let w: Vec<usize> = lines.iter().map(|l| visible_width(l)).collect();
        assert!(w.iter().all(|x| *x == w[0]), "{t}");
        assert!(t.contains("│ 0  │ \x1b[32monline\x1b[0m │"));
    }

    #[test]
    fn wide_names_keep_columns_aligned() {
        assert_eq!(visible_width("api"), 3);
        assert_eq!(visible_width("服务器"), 6);
        assert_eq!(visible_width("🚀app"), 5);
        assert_eq!(visible_width("\x1b[1m日本\x1b[0m"), 4);
        let rows = vec![
            vec!["0".to_string(), "服务器".to_string(), "online".to_string()],
            vec!["1".to_string(), "🚀api".to_string(), "online".to_string()],
            vec!["2".to_string(), "worker".to_string(), "stopped".to_string()],
        ];
        let t = render(&["id".into(), "name".into(), "status".into()], &rows);
        let lines: Vec<&str> = t.lines().collect();
        let w: Vec<usize> = lines.iter().map(|l| visible_width(l)).collect();
        assert!(w.iter().all(|x| *x == w[0]), "{t}");
        // Every column separator sits at the same terminal column on every line.
        let seps = |l: &str| {
            let mut col = 0;
            let mut at = vec![];
            for c in l.chars() {
                if "│┬┼┴┌┐├┤└┘".contains(c) {
                    at.push(col);
                }
                col += visible_width(&c.to_string());
            }
            at
        };
        assert!(lines.iter().all(|l| seps(l) == seps(lines[0])), "{t}");
        assert!(t.contains("│ 0  │ 服务器 │ online  │"), "{t}");
    }

    #[test]
    fn empty_table_has_header_only() {
        let t = render(&["a".into()], &[]);
        assert_eq!(t.lines().count(), 3);
    }
}
